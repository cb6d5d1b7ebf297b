-- Version 8: the worker tells DINGAUTH_NOTIFY_USERIDS by DingTalk work
-- notification when a login awaits review (docs/dingtalk.md §i.2), once per
-- request: notified_at is set when DingTalk took the message; a failure
-- waits until notify_next_at (a delay growing with notify_attempts) and
-- keeps its reason in notify_error.
ALTER TABLE login_requests ADD COLUMN notified_at INTEGER;
ALTER TABLE login_requests ADD COLUMN notify_attempts INTEGER NOT NULL
    DEFAULT 0;
ALTER TABLE login_requests ADD COLUMN notify_next_at INTEGER NOT NULL
    DEFAULT 0;
ALTER TABLE login_requests ADD COLUMN notify_error TEXT;
CREATE INDEX login_requests_notify ON login_requests (notify_next_at)
    WHERE status = 'pending' AND notified_at IS NULL;
