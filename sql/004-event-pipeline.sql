-- Version 4: events are applied one by one, each on its own schedule
-- (docs/architecture.md). A failure waits until next_attempt_at (a delay
-- that grows with attempts) instead of holding up the events after it; a
-- permanent one ends as 'failed' with its reason in last_error.
-- claimed_until: the process applying the event holds it until then (a
-- process that dies lets go). invalid_ids: the ids of a push that could
-- not be used (the others were applied). The table is rebuilt for the
-- new state in its CHECK.
CREATE TABLE events_v4 (
	id		INTEGER PRIMARY KEY,
	dedupe_key	TEXT NOT NULL UNIQUE,	-- identical pushes collide
	event_type	TEXT NOT NULL,
	payload		TEXT NOT NULL,		-- decrypted JSON
	received_at	INTEGER NOT NULL,
	state		TEXT NOT NULL DEFAULT 'pending'
			    CHECK (state IN ('pending', 'applied', 'ignored',
			    'failed')),
	attempts	INTEGER NOT NULL DEFAULT 0,
	last_error	TEXT,
	applied_at	INTEGER,
	next_attempt_at	INTEGER NOT NULL DEFAULT 0,
	claimed_until	INTEGER NOT NULL DEFAULT 0,
	invalid_ids	TEXT
);
INSERT INTO events_v4 (id, dedupe_key, event_type, payload, received_at,
    state, attempts, last_error, applied_at)
    SELECT id, dedupe_key, event_type, payload, received_at, state,
    attempts, last_error, applied_at FROM events;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_failed ON events (id) WHERE state = 'failed';
-- Retention: old finished events are pruned by the worker.
CREATE INDEX events_received ON events (received_at);
CREATE INDEX login_requests_decided ON login_requests (decided_at)
    WHERE status <> 'pending';

-- dingauth worker: its heartbeat, read by doctor and the health check.
CREATE TABLE worker_status (
	id		INTEGER PRIMARY KEY CHECK (id = 1),	-- one row
	pid		INTEGER NOT NULL,
	started_at	INTEGER NOT NULL,
	beat_at		INTEGER NOT NULL,	-- its last pass
	step		TEXT NOT NULL DEFAULT ''	-- what that pass did
);
