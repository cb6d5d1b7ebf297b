-- Version 3: pruning expired sessions uses indexes, not a table scan.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
