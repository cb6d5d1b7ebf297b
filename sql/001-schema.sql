-- dingauth schema, version 1.
-- Times are Unix seconds unless the column name says _ms.

-- DingTalk access tokens, shared by every process (docs/dingtalk.md §e).
CREATE TABLE tokens (
	app_key		TEXT PRIMARY KEY,	-- AppKey (corp) or appid (sns)
	kind		TEXT NOT NULL CHECK (kind IN ('corp', 'sns')),
	access_token	TEXT NOT NULL,
	expires_at	INTEGER NOT NULL,	-- as DingTalk said
	fetched_at	INTEGER NOT NULL
);

-- The company directory, copied by sync and kept fresh by callbacks.
CREATE TABLE departments (
	dept_id		INTEGER PRIMARY KEY,
	parent_id	INTEGER,		-- NULL for the root (1)
	name		TEXT NOT NULL DEFAULT '',
	updated_at	INTEGER NOT NULL
);
CREATE INDEX departments_parent ON departments (parent_id);

CREATE TABLE users (
	userid		TEXT PRIMARY KEY,
	unionid		TEXT,
	name		TEXT NOT NULL DEFAULT '',
	title		TEXT NOT NULL DEFAULT '',
	job_number	TEXT NOT NULL DEFAULT '',
	email		TEXT NOT NULL DEFAULT '',
	mobile		TEXT NOT NULL DEFAULT '',
	admin		INTEGER NOT NULL DEFAULT 0,
	active		INTEGER NOT NULL DEFAULT 1,	-- 0: left the company
	disabled	INTEGER NOT NULL DEFAULT 0,	-- 1: an operator said no
	source		TEXT NOT NULL DEFAULT 'sync',	-- sync|callback|admit|approve
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL,
	left_at		INTEGER
);
CREATE UNIQUE INDEX users_unionid ON users (unionid)
    WHERE unionid IS NOT NULL AND unionid <> '';

CREATE TABLE user_depts (
	userid		TEXT NOT NULL REFERENCES users (userid)
			    ON DELETE CASCADE,
	dept_id		INTEGER NOT NULL,
	PRIMARY KEY (userid, dept_id)
) WITHOUT ROWID;
CREATE INDEX user_depts_dept ON user_depts (dept_id);

-- Sessions: only the SHA-256 of the random id is stored.
CREATE TABLE sessions (
	id_hash		BLOB PRIMARY KEY,
	userid		TEXT NOT NULL REFERENCES users (userid)
			    ON DELETE CASCADE,
	created_at	INTEGER NOT NULL,
	last_seen	INTEGER NOT NULL,
	expires_at	INTEGER NOT NULL,	-- absolute end
	remote_addr	TEXT NOT NULL DEFAULT '',
	user_agent	TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX sessions_userid ON sessions (userid);

-- Login attempts: single-use, time-boxed, cookie-bound state.
CREATE TABLE login_states (
	state_hash	BLOB PRIMARY KEY,
	rd		TEXT NOT NULL DEFAULT '/',
	created_at	INTEGER NOT NULL,
	expires_at	INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX login_states_expires ON login_states (expires_at);

-- People DingTalk knows as colleagues but our directory does not:
-- waiting for an operator (DINGAUTH_UNKNOWN_USER=review).
CREATE TABLE login_requests (
	id		INTEGER PRIMARY KEY,
	userid		TEXT NOT NULL,
	unionid		TEXT NOT NULL DEFAULT '',
	name		TEXT NOT NULL DEFAULT '',
	status		TEXT NOT NULL DEFAULT 'pending'
			    CHECK (status IN ('pending', 'approved', 'rejected')),
	attempts	INTEGER NOT NULL DEFAULT 1,
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL,
	decided_at	INTEGER
);
CREATE UNIQUE INDEX login_requests_pending ON login_requests (userid)
    WHERE status = 'pending';

-- Callback events, stored before they are answered and applied after.
CREATE TABLE events (
	id		INTEGER PRIMARY KEY,
	dedupe_key	TEXT NOT NULL UNIQUE,	-- identical pushes collide
	event_type	TEXT NOT NULL,
	payload		TEXT NOT NULL,		-- decrypted JSON
	received_at	INTEGER NOT NULL,
	state		TEXT NOT NULL DEFAULT 'pending'
			    CHECK (state IN ('pending', 'applied', 'ignored')),
	attempts	INTEGER NOT NULL DEFAULT 0,
	last_error	TEXT,
	applied_at	INTEGER
);
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';

-- One row per directory sync run. outcome: running (under way),
-- interrupted (it never finished: killed), or what the run concluded:
-- ok|partial|refused|failed|dry-run (sync_outcome_name in src/sync.c).
CREATE TABLE sync_runs (
	id		INTEGER PRIMARY KEY,
	started_at	INTEGER NOT NULL,
	finished_at	INTEGER,
	outcome		TEXT NOT NULL DEFAULT 'running',
	departments	INTEGER NOT NULL DEFAULT 0,
	users		INTEGER NOT NULL DEFAULT 0,
	added		INTEGER NOT NULL DEFAULT 0,
	updated		INTEGER NOT NULL DEFAULT 0,
	deactivated	INTEGER NOT NULL DEFAULT 0,
	reactivated	INTEGER NOT NULL DEFAULT 0,
	requests	INTEGER NOT NULL DEFAULT 0,
	error		TEXT
);
