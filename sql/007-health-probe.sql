-- Version 7: the health check proves the database writable by writing
-- this one row (GET /dingauth/healthz, dingauth doctor).
CREATE TABLE health_probe (
	id		INTEGER PRIMARY KEY CHECK (id = 1),	-- one row
	at		INTEGER NOT NULL
);
