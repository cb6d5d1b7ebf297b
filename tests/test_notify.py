"""Review notifications: when a login awaits review, dingauth worker tells
DINGAUTH_NOTIFY_USERIDS by DingTalk work notification (docs/dingtalk.md
§i.2), against the fake DingTalk's asyncsend_v2: once per request, retried
on failure, never blocking the login.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
NOTIFY = "/topapi/message/corpconversation/asyncsend_v2"


def login(env, fk, userid):
    """One sns login of userid through login.fcgi and exchange.fcgi."""
    r = env.cgi("login.fcgi", path="/dingauth/login")
    state = r.cookies().get("dingauth_state", (None,))[0]
    code = fk.code(userid=userid, kind="tmp")["code"]
    return env.cgi("exchange.fcgi", path="/dingauth/exchange",
                   query=qs(code=code, state=state),
                   headers={"Cookie": "dingauth_state=" + state})


def request_row(env, userid):
    rows = env.sql("SELECT id, notified_at IS NOT NULL, notify_attempts,"
                   " notify_error FROM login_requests WHERE userid = ?"
                   " AND status = 'pending'", (userid,))
    return rows[0] if rows else None


with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_LOGIN_FLOW="sns",
                               DINGAUTH_UNKNOWN_USER="review",
                               DINGTALK_AGENT_ID="1001",
                               DINGAUTH_NOTIFY_USERIDS="u001,u002") as env:
    t.eq("sync: exit 0", env.cmd("sync").returncode, 0)
    # Known to DingTalk, not (any more) to our directory: they wait.
    env.sql("DELETE FROM users WHERE userid IN ('u003', 'u006')")

    # The login never waits for the notification.
    fk.fault(NOTIFY, "slow", delay_ms=3000, count=5)
    fk.clear_log()
    t0 = time.time()
    r = login(env, fk, "u003")
    took = time.time() - t0
    t.check("a login awaiting review answers 403 waiting", r.status == 403
            and "waiting_for_approval" in r.head + r.body, (r.status, r.body[:300]))
    t.check("...at once, without asking DingTalk to notify (%.2f s)" % took,
            took < 2.5 and fk.log(path=NOTIFY) == [], took)
    fk.clear_faults()
    row = request_row(env, "u003")
    t.check("...a pending request, not notified yet", row is not None
            and row[1] == 0 and row[2] == 0, row)

    # The worker tells the operators, once.
    r = env.cmd("worker", "--once")
    t.eq("worker --once: exit 0", r.returncode, 0)
    sent = fk.notifications()
    t.eq("one work notification", len(sent), 1)
    note = sent[0] if sent else {"msg": {}}
    text = note["msg"].get("text", {}).get("content", "")
    t.check("...to DINGAUTH_NOTIFY_USERIDS from DINGTALK_AGENT_ID",
            note.get("userid_list") == ["u001", "u002"] and note.get("agent_id") == 1001,
            note)
    t.check("...naming the person and how to approve",
            note["msg"].get("msgtype") == "text" and "王五" in text and "u003" in text
            and ("dingauth requests approve %d" % row[0]) in text
            and ("dingauth requests reject %d" % row[0]) in text, text)
    t.check("...and no secret", not any(s in text for s in (
        env.config["DINGTALK_CORP_SECRET"], env.config["DINGTALK_APP_SECRET"])), text)
    t.eq("the request is marked notified", request_row(env, "u003")[1:3], (1, 1))
    log = fk.log(path=NOTIFY)
    t.check("asyncsend_v2 was called with the corp token, as JSON",
            len(log) == 1 and log[0]["query"].get("access_token")
            and log[0]["json"].get("userid_list") == "u001,u002", log)

    r = env.cmd("worker", "--once")
    login(env, fk, "u003")                      # asks again: attempts 2
    r = env.cmd("worker", "--once")
    t.eq("once per request: asking again and more passes send nothing more",
         len(fk.notifications()), 1)

    # DingTalk failing: kept for a later attempt, then sent.
    fk.fault(NOTIFY, "errcode", errcode=-1, count=20)
    login(env, fk, "u006")
    r = env.cmd("worker", "--once")
    fk.clear_faults()
    row = request_row(env, "u006")
    t.check("a failed notification: worker still exits 0", r.returncode == 0, r.stderr)
    t.check("...the request keeps the failure for a later attempt", row is not None
            and row[1] == 0 and row[2] == 1 and row[3], row)
    t.eq("...nothing was sent", len(fk.notifications()), 1)
    r = env.cmd("worker", "--once")
    t.eq("...not tried again before its time", (len(fk.notifications()),
                                                request_row(env, "u006")[2]), (1, 1))
    r = env.cmd("worker", "--once", extra_env={"DINGAUTH_TEST_TIME_OFFSET": "120"})
    sent = fk.notifications()
    t.check("...tried again later and sent", len(sent) == 2
            and "u006" in sent[-1]["msg"]["text"]["content"]
            and request_row(env, "u006")[1:3] == (1, 2), sent[-1:])

    # A request decided before its notification is not announced.
    env.sql("DELETE FROM users WHERE userid = 'u002'")
    login(env, fk, "u002")
    rid = request_row(env, "u002")[0]
    t.eq("requests reject: exit 0", env.cmd("requests", "reject", str(rid)).returncode, 0)
    env.cmd("worker", "--once")
    t.eq("a rejected request is not announced", len(fk.notifications()), 2)

    # Without DINGTALK_AGENT_ID nothing is sent.
    env.sql("DELETE FROM users WHERE userid = 'u004'")
    env.set(DINGTALK_AGENT_ID=None)
    login(env, fk, "u004")
    fk.clear_log()
    r = env.cmd("worker", "--once")
    t.check("without DINGTALK_AGENT_ID: no notification, no call",
            r.returncode == 0 and len(fk.notifications()) == 2
            and fk.log(path=NOTIFY) == [], r.stderr)
    env.set(DINGTALK_AGENT_ID="abc")
    r = env.cmd("worker", "--once")
    t.check("a DINGTALK_AGENT_ID that is not a number: exit 1 naming the key",
            r.returncode == 1 and "DINGTALK_AGENT_ID" in r.stderr, r.stderr)

t.done()
