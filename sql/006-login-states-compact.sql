-- Version 6: login states in a rowid table. Anyone may ask for the login
-- page, so states are capped (session.h STATE_MAX) and stored compactly:
-- in a WITHOUT ROWID table a row with a long rd spills into an overflow
-- page of its own (4 KiB for a 1.5 KB rd); here two such rows share a page.
CREATE TABLE login_states_v6 (
	state_hash	BLOB NOT NULL UNIQUE,
	rd		TEXT NOT NULL DEFAULT '/',
	created_at	INTEGER NOT NULL,
	expires_at	INTEGER NOT NULL
);
INSERT INTO login_states_v6 (state_hash, rd, created_at, expires_at)
    SELECT state_hash, rd, created_at, expires_at FROM login_states;
DROP TABLE login_states;
ALTER TABLE login_states_v6 RENAME TO login_states;
CREATE INDEX login_states_expires ON login_states (expires_at);
