DROP INDEX IF EXISTS users_active_created_at_id_idx;
DROP INDEX IF EXISTS users_created_at_id_idx;
DROP TABLE users;
