CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id) ON DELETE CASCADE
);
INSERT INTO parents (id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO children (parent_id) VALUES (1), (1), (2), (2), (2), (3), (3), (3), (3), (1);
