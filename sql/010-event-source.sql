-- Version 10: where an event came from. 'http': a push to callback.fcgi
-- (or a failed push fetched by `dingauth callback failed`); 'stream':
-- DingTalk's Stream connection held by `dingauth worker` (docs/dingtalk.md,
-- Stream mode). Both share the dedupe key family ("event:" + eventId), so
-- an event that arrives both ways is stored once.
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'http'
    CHECK (source IN ('http', 'stream'));
