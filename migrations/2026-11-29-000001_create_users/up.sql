-- Timestamps are UTC text with millisecond precision ("YYYY-MM-DD HH:MM:SS.SSS"),
-- which sorts chronologically and which diesel reads as chrono::NaiveDateTime.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Keyset paging in creation order, optionally restricted to active users.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_active_created_at_id_idx ON users (active, created_at, id);
