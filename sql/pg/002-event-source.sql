-- PostgreSQL version 2 (SQLite's sql/010): where an event came from,
-- 'http' (callback.fcgi, `dingauth callback failed`) or 'stream' (the
-- worker's Stream link); both share the dedupe key family.
ALTER TABLE events ADD COLUMN source text NOT NULL DEFAULT 'http'
    CHECK (source IN ('http', 'stream'));
