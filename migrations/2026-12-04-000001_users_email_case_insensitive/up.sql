-- One account per email whatever its letter case: `A@x.example` and `a@x.example` were two.
-- The repository stores emails trimmed and lowercased and looks them up the same way (the
-- unique constraint users_email_key then covers every letter, not only ASCII); rows written
-- before this are lowercased here, and the index below refuses a duplicate in other ASCII
-- letters written around the repository.
-- The index is SQLite's form of a unique index on lower(email): NOCASE folds exactly the
-- letters lower() folds (ASCII), and a conflict on it is reported as `users.email`, where an
-- index on the expression would be reported by its own name.
-- If two existing rows differ only in case, this migration fails (UNIQUE constraint failed:
-- users.email) and changes nothing: find them with
--   SELECT lower(email), count(*) FROM users GROUP BY lower(email) HAVING count(*) > 1;
-- and merge or rename them first.
UPDATE users SET email = lower(email) WHERE email <> lower(email);
CREATE UNIQUE INDEX users_email_lower_key ON users (email COLLATE NOCASE);
