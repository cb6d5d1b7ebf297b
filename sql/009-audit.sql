-- Version 9: the audit trail (audit.h, dingauth audit). Each row is
-- written in the same transaction as what it records. event: login,
-- logout, offboard, sync, approve, reject, disable, enable, revoke.
CREATE TABLE audit (
	id		INTEGER PRIMARY KEY,
	at		INTEGER NOT NULL,
	event		TEXT NOT NULL,
	userid		TEXT NOT NULL DEFAULT '',	-- or '' (a sync)
	unionid		TEXT NOT NULL DEFAULT '',
	flow		TEXT NOT NULL DEFAULT '',	-- a login's
	outcome		TEXT NOT NULL DEFAULT '',	-- ok, or why not
	reason		TEXT NOT NULL DEFAULT '',	-- the details
	source		TEXT NOT NULL DEFAULT '',	-- event N, sync N,
							-- operator NAME
	remote_addr	TEXT NOT NULL DEFAULT '',
	user_agent	TEXT NOT NULL DEFAULT '',
	detail		TEXT NOT NULL DEFAULT ''	-- a sync's counts
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_userid ON audit (userid, at);
