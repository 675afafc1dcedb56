DROP INDEX IF EXISTS users_active_id_idx;
