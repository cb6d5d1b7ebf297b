-- Version 11: sessions ended because their user left or was disabled
-- (session.h, session_end_user_why). The login page, meeting such a
-- session's dead cookie, says why once and deletes the row; a row lives
-- no longer than the session would have (expires_at), then is pruned.
-- Only the id's hash and a fixed reason: nothing a user wrote.
CREATE TABLE session_ends (
	id_hash		BLOB PRIMARY KEY,
	why		TEXT NOT NULL CHECK (why IN ('left', 'disabled')),
	expires_at	INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX session_ends_expires_at ON session_ends (expires_at);
