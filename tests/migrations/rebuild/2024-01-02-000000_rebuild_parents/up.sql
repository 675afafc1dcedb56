-- SQLite's documented way to change a table (https://www.sqlite.org/lang_altertable.html):
-- create the new table, copy, drop the old one, rename the new one.
PRAGMA foreign_keys = OFF;
CREATE TABLE parents_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT);
INSERT INTO parents_new (id, name) SELECT id, name FROM parents;
DROP TABLE parents;
ALTER TABLE parents_new RENAME TO parents;
PRAGMA foreign_keys = ON;
