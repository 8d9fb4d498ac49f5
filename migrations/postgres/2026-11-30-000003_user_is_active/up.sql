-- A disabled user keeps their row (and history) but can neither log in nor keep a session.
ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
