CREATE TABLE posts (
    id         INTEGER PRIMARY KEY NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    published  BOOLEAN NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- A user's posts, newest first (also serves the foreign key's cascade lookups).
CREATE INDEX posts_user_id_created_at_id_idx ON posts (user_id, created_at, id);
-- Recent posts across all users.
CREATE INDEX posts_created_at_id_idx ON posts (created_at, id);
