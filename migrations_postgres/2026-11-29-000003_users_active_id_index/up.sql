-- PostgreSQL twin of migrations/2026-11-29-000003_users_active_id_index. SQLite's index on
-- (active) is ordered by rowid within each value; PostgreSQL's heap has no such order, so the
-- id is spelled out: active users in id order with a limit is an index walk on both engines.
CREATE INDEX users_active_id_idx ON users (active, id);
