-- Emails lowercased by the up migration stay lowercased.
DROP INDEX users_email_lower_key;
