-- Version 2: who is fetching a token right now. The process holding the
-- lease asks DingTalk without holding the database write lock, so other
-- writers (a callback storing an event) never wait on DingTalk; the others
-- wait for the token it stores.
CREATE TABLE token_leases (
	app_key		TEXT PRIMARY KEY,
	holder		INTEGER NOT NULL,	-- process id, for diagnostics
	expires_at	INTEGER NOT NULL	-- a holder that died is forgotten then
);
