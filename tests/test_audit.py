"""The audit trail (docs/contract.md: dingauth audit): logins with time,
userid/unionid, flow, outcome and reason, client address and user agent;
sign-outs; offboardings by event and by sync; syncs with counts; operator
actions. Each row goes with what it records; each login's log line carries
the same fields (DINGAUTH_LOG_FORMAT=json too); the worker prunes old rows.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
UA = "Mozilla/5.0 (AuditTest) \"quoted\""
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def js(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def login(env, fk, userid, extra_env=None):
    r = env.cgi("login.fcgi", path="/dingauth/login")
    state = r.cookies().get("dingauth_state", (None,))[0]
    code = fk.code(userid=userid, kind="tmp")["code"]
    env_extra = {"REMOTE_ADDR": "192.0.2.44"}
    env_extra.update(extra_env or {})
    return env.cgi("exchange.fcgi", path="/dingauth/exchange",
                   query=qs(code=code, state=state),
                   headers={"Cookie": "dingauth_state=" + state, "User-Agent": UA},
                   extra_env=env_extra)


def rows(env, where="1", params=()):
    return env.sql("SELECT event, userid, unionid, flow, outcome, reason, source,"
                   " remote_addr, user_agent, detail FROM audit WHERE %s ORDER BY id"
                   % where, params)


with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_LOGIN_FLOW="sns",
                               DINGAUTH_UNKNOWN_USER="review",
                               DINGAUTH_SYNC_MAX_DEACTIVATE=50) as env:
    # -- a sync -----------------------------------------------------------------
    t.eq("sync: exit 0", env.cmd("sync").returncode, 0)
    run_id = env.sql("SELECT max(id) FROM sync_runs")[0][0]
    got = rows(env, "event = 'sync'")
    t.check("a sync leaves one audit row: outcome, its run, its counts",
            len(got) == 1 and got[0][4] == "ok" and got[0][6] == "sync %d" % run_id
            and "users=6" in got[0][9] and "added=6" in got[0][9], got)
    env.cmd("sync", "--dry-run")
    t.eq("a dry run leaves none", len(rows(env, "event = 'sync'")), 1)

    # -- logins -----------------------------------------------------------------
    n_sessions = env.sql("SELECT count(*) FROM sessions")[0][0]
    r = login(env, fk, "u001")
    t.eq("u001 signs in: 302", r.status, 302)
    got = rows(env, "event = 'login'")
    t.check("a login: time, userid, unionid, flow, outcome, client address, user agent",
            len(got) == 1 and got[0][:5] == ("login", "u001", "un001", "sns", "ok")
            and got[0][7] == "192.0.2.44" and got[0][8] == UA, got)
    t.eq("...with its session", env.sql("SELECT count(*) FROM sessions")[0][0],
         n_sessions + 1)
    line = [ln for ln in r.stderr.splitlines() if ": login " in ln]
    t.check("...and one log line with the same fields",
            len(line) == 1 and "outcome=ok" in line[0] and "userid=u001" in line[0]
            and "unionid=un001" in line[0] and "flow=sns" in line[0]
            and "remote_addr=192.0.2.44" in line[0]
            and 'user_agent="Mozilla/5.0 (AuditTest) \\"quoted\\""' in line[0], r.stderr)
    session = r.cookies().get("dingauth_session", (None,))[0]

    env.sql("UPDATE users SET active = 0 WHERE userid = 'u005'")
    r = login(env, fk, "u005")                       # left the company
    got = rows(env, "event = 'login' AND userid = 'u005'")
    t.check("a refused login: its outcome and reason", r.status == 403 and len(got) == 1
            and got[0][4] == "inactive" and "left" in got[0][5], got)
    env.sql("DELETE FROM users WHERE userid = 'u003'")
    r = login(env, fk, "u003")
    got = rows(env, "event = 'login' AND userid = 'u003'")
    t.check("a login awaiting review: outcome waiting_for_approval, with its request",
            len(got) == 1 and got[0][4] == "waiting_for_approval"
            and env.sql("SELECT count(*) FROM login_requests WHERE userid = 'u003'")[0][0] == 1,
            got)
    lines = [ln for ln in r.stderr.splitlines() if "u003" in ln]
    t.check("...one log line for that login, its reason a new request",
            len(lines) == 1 and "outcome=waiting_for_approval" in lines[0]
            and 'reason="new request"' in lines[0], r.stderr)
    r = env.cgi("exchange.fcgi", path="/dingauth/exchange", query=qs(code="x", state="y"),
                headers={"Cookie": "dingauth_state=y", "User-Agent": UA})
    got = rows(env, "event = 'login' AND outcome = 'state_invalid'")
    t.check("a bad state is audited too (no user known)", r.status == 400 and len(got) == 1
            and got[0][1] == "" and got[0][8] == UA, got)

    r = login(env, fk, "u006", extra_env={"DINGAUTH_LOG_FORMAT": "json"})
    lines = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    ev = [o for o in lines if o.get("event") == "login"]
    t.check("DINGAUTH_LOG_FORMAT=json: every line is a JSON object",
            lines and len(lines) == len(r.stderr.splitlines()), r.stderr)
    t.check("...the login's line carries the audit row's fields", len(ev) == 1 and all(
        ev[0].get(k) == v for k, v in (("outcome", "ok"), ("userid", "u006"),
                                       ("unionid", "un006"), ("flow", "sns"),
                                       ("remote_addr", "192.0.2.44"), ("user_agent", UA)))
        and ISO.match(ev[0].get("time", "")) and ev[0].get("level") == "info", ev)

    # -- sign-out ---------------------------------------------------------------
    r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                headers={"Cookie": "dingauth_session=" + session, "User-Agent": UA,
                         "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"},
                extra_env={"REMOTE_ADDR": "192.0.2.45"})
    got = rows(env, "event = 'logout'")
    t.check("a sign-out: its user, address and agent", r.status in (302, 303)
            and len(got) == 1 and got[0][1] == "u001" and got[0][7] == "192.0.2.45"
            and got[0][8] == UA, (r.status, got))

    # -- offboardings -----------------------------------------------------------
    enc = fk.encrypt({"EventType": "user_leave_org", "UserId": ["u006"],
                      "eventId": "ev-audit-1"})
    r = env.cgi("callback.fcgi", "/dingauth/callback", method="POST", query=enc["query"],
                body=enc["body"], content_type="application/json")
    env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
    got = rows(env, "event = 'offboard' AND userid = 'u006'")
    t.check("an offboarding by event names the event", r.status == 200 and len(got) == 1
            and got[0][6].startswith("event user_leave_org") and "ev-audit-1" in got[0][6]
            and "1 session(s)" in got[0][9], got)
    fk.delete_user("u002")
    env.cmd("sync")
    run_id = env.sql("SELECT max(id) FROM sync_runs")[0][0]
    got = rows(env, "event = 'offboard' AND userid = 'u002'")
    t.check("an offboarding by sync names the run", len(got) == 1
            and got[0][6] == "sync %d" % run_id, got)
    got = rows(env, "event = 'sync' AND source = ?", ("sync %d" % run_id,))
    t.check("...and that sync's row counts it", len(got) == 1 and "deactivated=1" in got[0][9],
            got)

    # -- operator actions -------------------------------------------------------
    env.cmd("users", "disable", "u004")
    env.cmd("users", "enable", "u004")
    env.sql("DELETE FROM users WHERE userid = 'u003'")   # the sync added them
    login(env, fk, "u003")
    rid = env.sql("SELECT id FROM login_requests WHERE userid = 'u003'"
                  " AND status = 'pending'")[0][0]
    env.cmd("requests", "reject", str(rid))
    env.cmd("users", "approve", "u003")
    r2 = login(env, fk, "u004")
    env.cmd("sessions", "revoke", "--user", "u004")
    for event, userid in (("disable", "u004"), ("enable", "u004"), ("reject", "u003"),
                          ("approve", "u003"), ("revoke", "u004")):
        got = rows(env, "event = ? AND userid = ?", (event, userid))
        t.check("operator action %s: one row naming the operator" % event,
                len(got) == 1 and got[0][6].startswith("operator "), got)
    got = rows(env, "event = 'revoke'")
    t.check("revoke: how many sessions", got and got[-1][9].startswith("1 session"), got)

    # -- dingauth audit ---------------------------------------------------------
    r = env.cmd("audit", "--json")
    doc = js(r) or []
    t.check("audit --json: every row, oldest first", r.returncode == 0
            and len(doc) == env.sql("SELECT count(*) FROM audit")[0][0]
            and [o["id"] for o in doc] == sorted(o["id"] for o in doc), r.stdout[:300])
    t.check("audit --json: the fields, ISO times", doc and set(doc[0]) == {
        "id", "at", "event", "userid", "unionid", "flow", "outcome", "reason", "source",
        "remote_addr", "user_agent", "detail"} and ISO.match(doc[0]["at"]), doc[:1])
    r = env.cmd("audit", "--user", "u001", "--json")
    t.eq("audit --user u001: its login and sign-out",
         [o["event"] for o in js(r) or []], ["login", "logout"])
    r = env.cmd("audit", "--since", "1h", "--json")
    t.eq("audit --since 1h: all of them", len(js(r) or []), len(doc))
    r = env.cmd("audit", "--since", "2099-01-01", "--json")
    t.eq("audit --since a future date: none", js(r), [])
    r = env.cmd("audit", "--since", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                   time.gmtime(time.time() - 3600)), "--json")
    t.eq("audit --since an ISO time", len(js(r) or []), len(doc))
    r = env.cmd("audit", "--limit", "2", "--json")
    t.eq("audit --limit 2: the newest two", [o["id"] for o in js(r) or []],
         [o["id"] for o in doc[-2:]])
    r = env.cmd("audit")
    lines = r.stdout.splitlines()
    t.check("audit (text): a header and aligned columns", r.returncode == 0
            and lines[0].startswith("ID") and len({ln.find(" login ") for ln in lines
                                                   if " login " in ln}) == 1, r.stdout)
    r = env.cmd("audit", "--since", "yesterday")
    t.eq("audit --since nonsense: usage error", r.returncode, 2)
    r = env.cmd("audit", "--user", "nobody-here")
    t.check("audit for nobody: says so", r.returncode == 0 and "no audit rows" in r.stdout, r)

    # -- retention --------------------------------------------------------------
    old = int(time.time()) - 400 * 86400
    env.sql("INSERT INTO audit (at, event, userid) VALUES (?, 'login', 'ancient')", (old,))
    env.sql("INSERT INTO audit (at, event, userid) VALUES (?, 'login', 'recent')",
            (int(time.time()) - 20 * 86400,))
    env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
    t.eq("the worker prunes audit rows older than DINGAUTH_AUDIT_DAYS (365)",
         env.sql("SELECT userid FROM audit WHERE userid IN ('ancient', 'recent')"),
         [("recent",)])
    env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off",
                                           "DINGAUTH_AUDIT_DAYS": "7"})
    t.eq("...and DINGAUTH_AUDIT_DAYS=7 prunes a 20-day-old one",
         env.sql("SELECT count(*) FROM audit WHERE userid = 'recent'"), [(0,)])

t.done()
