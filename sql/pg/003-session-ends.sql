-- PostgreSQL version 3 (SQLite's sql/011): sessions ended because their
-- user left or was disabled, told once to the browser on the login page.
CREATE TABLE session_ends (
	id_hash		bytea PRIMARY KEY,
	why		text NOT NULL CHECK (why IN ('left', 'disabled')),
	expires_at	bigint NOT NULL
);
CREATE INDEX session_ends_expires_at ON session_ends (expires_at);
