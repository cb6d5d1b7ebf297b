-- Version 5: the token cache and its leases are keyed by kind and app. An
-- internal app used for QR login may have DINGTALK_APP_ID equal to
-- DINGTALK_APP_KEY: its corp token and its login-app token are different
-- tokens (docs/dingtalk.md §e, §c) and must not overwrite each other.
CREATE TABLE tokens_v5 (
	kind		TEXT NOT NULL CHECK (kind IN ('corp', 'sns')),
	app_key		TEXT NOT NULL,		-- AppKey (corp) or appid (sns)
	access_token	TEXT NOT NULL,
	expires_at	INTEGER NOT NULL,	-- as DingTalk said
	fetched_at	INTEGER NOT NULL,
	PRIMARY KEY (kind, app_key)
) WITHOUT ROWID;
INSERT INTO tokens_v5 (kind, app_key, access_token, expires_at, fetched_at)
    SELECT kind, app_key, access_token, expires_at, fetched_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v5 RENAME TO tokens;

-- A lease is short-lived: the old ones are simply forgotten.
DROP TABLE token_leases;
CREATE TABLE token_leases (
	kind		TEXT NOT NULL CHECK (kind IN ('corp', 'sns')),
	app_key		TEXT NOT NULL,
	holder		INTEGER NOT NULL,	-- process id, for diagnostics
	expires_at	INTEGER NOT NULL,	-- a holder that died is forgotten then
	PRIMARY KEY (kind, app_key)
) WITHOUT ROWID;
