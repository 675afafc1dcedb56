-- PostgreSQL twin of migrations/2026-12-04-000001_users_email_case_insensitive: one account
-- per email whatever its letter case. The repository stores emails trimmed and lowercased;
-- rows written before this are lowercased here, and the index refuses a mixed-case duplicate
-- written around the repository. If two existing rows differ only in case, this fails
-- (duplicate key value violates unique constraint "users_email_key") and changes nothing:
--   SELECT lower(email), count(*) FROM users GROUP BY lower(email) HAVING count(*) > 1;
UPDATE users SET email = lower(email) WHERE email <> lower(email);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
