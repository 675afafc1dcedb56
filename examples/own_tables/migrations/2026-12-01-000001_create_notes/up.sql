-- An application's own table: notes by author, listed newest first.
CREATE TABLE notes (
    id INTEGER PRIMARY KEY NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL CHECK (length(body) > 0),
    -- UTC, millisecond precision, in the text form litedal::DbTimestamp binds.
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX notes_author_created_at_id ON notes (author, created_at, id);
