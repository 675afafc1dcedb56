DROP INDEX IF EXISTS posts_created_at_id_idx;
DROP INDEX IF EXISTS posts_user_id_created_at_id_idx;
DROP TABLE posts;
