"""dingauth users|requests|sessions: the operator's commands (docs/contract.md).

Run with /usr/bin/python3 tests/test_operator.py (tests/run does). Uses the
fake DingTalk's demo company, copied with 'dingauth sync', then checks the
--json shapes, the text output, exit codes 0/1/2 and --help.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
NOW = int(time.time())
USER_KEYS = {"userid": str, "unionid": str, "name": str, "active": bool,
             "dept_ids": list, "title": str, "job_number": str, "email": str,
             "mobile": str, "admin": bool}


def js(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def shape_ok(obj):
    if not isinstance(obj, dict):
        return False
    for k, typ in USER_KEYS.items():
        if not isinstance(obj.get(k), typ):
            return False
    return all(isinstance(d, int) and not isinstance(d, bool) for d in obj["dept_ids"])


def add_session(env, userid, hash_hex, expires_in=3600, idle=0):
    env.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen, expires_at,"
            " remote_addr, user_agent) VALUES (?, ?, ?, ?, ?, '192.0.2.7', 'UA/1')",
            (bytes.fromhex(hash_hex), userid, NOW - 10, NOW - idle, NOW + expires_in))


def add_request(env, userid, name, status="pending"):
    env.sql("INSERT INTO login_requests (userid, unionid, name, status, attempts,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 2, ?, ?)",
            (userid, "un_" + userid, name, status, NOW - 100, NOW - 50))
    return env.sql("SELECT max(id) FROM login_requests")[0][0]


with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_SYNC_MAX_DEACTIVATE=50) as env:
    # -- help and usage ---------------------------------------------------------
    for args in (["users", "--help"], ["users", "list", "--help"],
                 ["users", "show", "-h"], ["requests", "--help"],
                 ["requests", "approve", "--help"], ["sessions", "--help"],
                 ["sessions", "revoke", "--help"], ["sync", "--help"]):
        r = env.cmd(*args)
        t.check("%s: exit 0 with usage on stdout" % " ".join(args),
                r.returncode == 0 and "usage" in r.stdout and r.stderr == "", r)
    for args in (["users"], ["users", "frobnicate"], ["users", "list", "--bogus"],
                 ["users", "show"], ["users", "show", "a", "b"], ["users", "disable"],
                 ["requests", "--bogus"], ["requests", "approve"],
                 ["requests", "approve", "abc"],
                 ["requests", "reject", "0"], ["requests", "list", "x"],
                 ["sessions", "revoke", "xyz"], ["sessions", "revoke"],
                 ["sessions", "revoke", "--all", "--user", "u001"],
                 ["sessions", "list", "--user"], ["sessions", "kill"]):
        r = env.cmd(*args)
        t.check("%s: usage error, exit 2" % " ".join(args),
                r.returncode == 2 and r.stderr.strip() != "", (r.returncode, r.stderr))

    r = env.cmd("users", "list")
    t.check("users list on an empty directory says so",
            r.returncode == 0 and "dingauth sync" in r.stdout, r)
    r = env.cmd("users", "list", "--json")
    t.eq("users list --json on an empty directory is []", (r.returncode, js(r)), (0, []))

    r = env.cmd("sync", "--json")
    t.eq("sync of the demo company exits 0", r.returncode, 0)

    # -- users list / show --------------------------------------------------------
    r = env.cmd("users", "list", "--json")
    users = js(r)
    t.check("users list --json: an array", r.returncode == 0 and isinstance(users, list),
            r.stdout[:300])
    users = users or []
    t.eq("users list --json: every demo user", sorted(u["userid"] for u in users),
         ["u001", "u002", "u003", "u004", "u005", "u006"])
    t.check("users list --json: docs/contract.md fields and types",
            all(shape_ok(u) for u in users), users[:2])
    by = {u["userid"]: u for u in users}
    t.eq("u002: two departments as numbers", by.get("u002", {}).get("dept_ids"), [4, 6])
    t.check("u001 is admin, u002 is not", by.get("u001", {}).get("admin") is True
            and by.get("u002", {}).get("admin") is False)
    t.check("u005 (not activated in DingTalk) is still an active employee",
            by.get("u005", {}).get("active") is True)
    t.eq("u004's name arrives as is", by.get("u004", {}).get("name"),
         "<script>alert(\"x\")</script> O'Hara & \"Q\"")
    t.eq("u001 fields", {k: by.get("u001", {}).get(k) for k in
                         ("unionid", "name", "title", "job_number", "email", "mobile")},
         {"unionid": "un001", "name": "张三", "title": "CEO", "job_number": "E001",
          "email": "zhangsan@demo.example", "mobile": "13800000001"})

    r = env.cmd("users", "show", "u002", "--json")
    one = js(r)
    t.check("users show --json: one object with the fields",
            r.returncode == 0 and shape_ok(one) and one["userid"] == "u002", r.stdout)
    t.eq("users show --json equals the list entry", one, by.get("u002"))
    r = env.cmd("users", "show", "u002")
    t.check("users show (text)", r.returncode == 0 and "userid:      u002" in r.stdout
            and "departments: 4,6" in r.stdout and "state:       active" in r.stdout,
            r.stdout)
    r = env.cmd("users", "show", "nobody")
    t.check("users show of an unknown user: exit 1", r.returncode == 1
            and "nobody" in r.stderr, r.stderr)
    r = env.cmd("users", "list")
    t.check("users list (text) has a header and a line per user", r.returncode == 0
            and r.stdout.splitlines()[0].startswith("USERID")
            and len(r.stdout.splitlines()) == 7, r.stdout)

    # A leaver stays as a row with active false.
    fk.delete_user("u006")
    r = env.cmd("sync")
    t.eq("sync with one leaver exits 0", r.returncode, 0)
    users = {u["userid"]: u for u in js(env.cmd("users", "list", "--json")) or []}
    t.check("a leaver stays in users list with active false",
            users.get("u006", {}).get("active") is False, users.get("u006"))
    r = env.cmd("users", "list", "--active", "--json")
    t.check("users list --active leaves the leaver out",
            "u006" not in [u["userid"] for u in js(r) or []] and len(js(r) or []) == 5)
    r = env.cmd("users", "show", "u006")
    t.check("users show of a leaver says left", "state:       left" in r.stdout
            and "left:" in r.stdout, r.stdout)

    # -- disable / enable ---------------------------------------------------------
    add_session(env, "u003", "aa" * 32)
    r = env.cmd("users", "disable", "u003")
    t.check("users disable: exit 0", r.returncode == 0 and "disabled u003" in r.stdout, r)
    t.eq("disabling ends the sessions", env.sql(
        "SELECT count(*) FROM sessions WHERE userid = 'u003'"), [(0,)])
    r = env.cmd("users", "list", "--active", "--json")
    t.check("a disabled user is not in --active", "u003" not in
            [u["userid"] for u in js(r) or []])
    one = js(env.cmd("users", "show", "u003", "--json"))
    t.check("show --json: disabled true, still active",
            one and one.get("disabled") is True and one.get("active") is True, one)
    r = env.cmd("sync")
    t.eq("a sync keeps the disable", env.sql(
        "SELECT disabled FROM users WHERE userid = 'u003'"), [(1,)])
    r = env.cmd("users", "enable", "u003")
    t.check("users enable: exit 0", r.returncode == 0, r)
    t.eq("enabled again", env.sql("SELECT disabled FROM users WHERE userid = 'u003'"),
         [(0,)])
    r = env.cmd("users", "disable", "ghost")
    t.check("disable an unknown user: exit 1", r.returncode == 1 and "ghost" in r.stderr, r)

    # -- users approve -------------------------------------------------------------
    fk.put_user({"userid": "u100", "unionid": "un100", "name": "Newcomer",
                 "title": "Analyst", "dept_id_list": [3]})
    r = env.cmd("users", "approve", "u100")
    t.check("users approve: exit 0, added", r.returncode == 0
            and "added to the directory" in r.stdout, (r.stdout, r.stderr))
    t.eq("approved user's row", env.sql(
        "SELECT name, title, active, source FROM users WHERE userid = 'u100'"),
        [("Newcomer", "Analyst", 1, "approve")])
    t.eq("approved user's department", env.sql(
        "SELECT dept_id FROM user_depts WHERE userid = 'u100'"), [(3,)])
    r = env.cmd("users", "approve", "nosuchperson")
    t.check("approve someone DingTalk does not know: exit 1",
            r.returncode == 1 and "nosuchperson" in r.stderr, r.stderr)

    # -- requests ------------------------------------------------------------------
    fk.put_user({"userid": "u101", "unionid": "un101", "name": "Waiting One",
                 "dept_id_list": [2]})
    id_ok = add_request(env, "u101", "Waiting One")
    id_gone = add_request(env, "u102", "Not In DingTalk")
    id_old = add_request(env, "u103", "Old", status="rejected")
    r = env.cmd("requests", "list", "--json")
    reqs = js(r)
    t.check("requests list --json: the pending ones",
            r.returncode == 0 and isinstance(reqs, list)
            and [q["id"] for q in reqs] == [id_ok, id_gone], r.stdout)
    t.check("request fields", reqs and set(reqs[0]) >= {
        "id", "userid", "unionid", "name", "status", "attempts", "created_at",
        "updated_at", "decided_at"} and reqs[0]["status"] == "pending"
        and reqs[0]["attempts"] == 2 and reqs[0]["decided_at"] is None, reqs)
    r = env.cmd("requests", "list")
    t.check("requests list (text)", r.returncode == 0 and "Waiting One" in r.stdout
            and "Old" not in r.stdout, r.stdout)
    r = env.cmd("requests", "list", "--all", "--json")
    t.eq("requests list --all includes decided ones", len(js(r) or []), 3)

    r = env.cmd("requests", "approve", str(id_ok))
    t.check("requests approve: exit 0", r.returncode == 0 and "u101" in r.stdout
            and "pending login request approved" in r.stdout, (r.stdout, r.stderr))
    t.eq("approved request's person is in the directory", env.sql(
        "SELECT name, active, source FROM users WHERE userid = 'u101'"),
        [("Waiting One", 1, "approve")])
    row = env.sql("SELECT status, decided_at IS NOT NULL FROM login_requests WHERE id = ?",
                  (id_ok,))
    t.eq("request marked approved", row, [("approved", 1)])
    r = env.cmd("requests", "approve", str(id_ok))
    t.check("approving it again: exit 1, already approved",
            r.returncode == 1 and "already approved" in r.stderr, r.stderr)
    r = env.cmd("requests", "approve", str(id_gone))
    t.check("approving someone DingTalk does not know: exit 1",
            r.returncode == 1 and "u102" in r.stderr, r.stderr)
    t.eq("...the request stays pending", env.sql(
        "SELECT status FROM login_requests WHERE id = ?", (id_gone,)), [("pending",)])
    r = env.cmd("requests", "reject", str(id_gone))
    t.check("requests reject: exit 0", r.returncode == 0 and "rejected" in r.stdout, r)
    t.eq("request marked rejected", env.sql(
        "SELECT status FROM login_requests WHERE id = ?", (id_gone,)), [("rejected",)])
    t.eq("...and nobody added", env.sql("SELECT count(*) FROM users WHERE userid = 'u102'"),
         [(0,)])
    r = env.cmd("requests", "reject", str(id_gone))
    t.eq("rejecting twice: exit 1", r.returncode, 1)
    r = env.cmd("requests", "reject", "99999")
    t.check("rejecting an unknown request: exit 1", r.returncode == 1
            and "99999" in r.stderr, r.stderr)
    r = env.cmd("requests", "list")
    t.check("no pending requests left", r.returncode == 0
            and "no pending login requests" in r.stdout, r.stdout)

    # -- sessions ------------------------------------------------------------------
    h1, h2, h3, h4 = "11" * 32, "22" * 32, "33" * 32, "44" * 32
    add_session(env, "u001", h1)
    add_session(env, "u001", h2)
    add_session(env, "u002", h3)
    add_session(env, "u002", h4, expires_in=-5)      # over: not listed
    r = env.cmd("sessions", "list", "--json")
    sess = js(r)
    t.check("sessions list --json: the live sessions",
            r.returncode == 0 and isinstance(sess, list) and len(sess) == 3, r.stdout)
    sess = sess or []
    t.check("session fields", all(set(s) >= {"ref", "userid", "name", "created_at",
                                             "last_seen", "expires_at", "remote_addr",
                                             "user_agent"} for s in sess), sess[:1])
    t.check("a session is shown by a 12-character reference",
            all(len(s["ref"]) == 12 for s in sess) and sess and sess[0]["ref"] == "11" * 6,
            [s.get("ref") for s in sess])
    full = [h.lower() for h in (h1, h2, h3, h4)] + [h.upper() for h in (h1, h2, h3, h4)]
    t.check("sessions list --json never shows a whole hash",
            not any(h in r.stdout for h in full))
    r = env.cmd("sessions", "list")
    t.check("sessions list (text)", r.returncode == 0 and "u001" in r.stdout
            and "192.0.2.7" in r.stdout and not any(h in r.stdout for h in full), r.stdout)
    r = env.cmd("sessions", "list", "--user", "u001", "--json")
    t.eq("sessions list --user", sorted(s["userid"] for s in js(r) or []), ["u001", "u001"])
    r = env.cmd("sessions", "revoke", "--user", "u001")
    t.check("sessions revoke --user: exit 0, 2 revoked", r.returncode == 0
            and "2 sessions revoked" in r.stdout, r)
    t.eq("u001 has no sessions", env.sql(
        "SELECT count(*) FROM sessions WHERE userid = 'u001'"), [(0,)])
    t.eq("u002 keeps theirs", env.sql(
        "SELECT count(*) FROM sessions WHERE userid = 'u002'"), [(2,)])
    r = env.cmd("sessions", "revoke", "--all")
    t.check("sessions revoke --all: exit 0", r.returncode == 0 and "revoked" in r.stdout, r)
    t.eq("no sessions left", env.sql("SELECT count(*) FROM sessions"), [(0,)])
    r = env.cmd("sessions", "list")
    t.check("sessions list when none", r.returncode == 0
            and "no live sessions" in r.stdout, r.stdout)
    r = env.cmd("sessions", "list", "--json")
    t.eq("sessions list --json when none", (r.returncode, js(r)), (0, []))


    # -- the CLI details of issue 15 -------------------------------------------------
    ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    idr = add_request(env, "u104", "Listed Bare")
    r = env.cmd("requests")
    t.check("requests without a subcommand lists the pending ones",
            r.returncode == 0 and "Listed Bare" in r.stdout, r)
    r = env.cmd("requests", "--json")
    t.check("requests --json lists as JSON", r.returncode == 0
            and [q["id"] for q in js(r) or []] == [idr], r.stdout)
    reqs = js(r) or [{}]
    t.check("requests JSON times are ISO 8601 like the text's",
            ISO.match(reqs[0].get("created_at") or "") and
            ISO.match(reqs[0].get("updated_at") or "") and
            reqs[0].get("decided_at") is None, reqs)
    env.sql("UPDATE login_requests SET name = ? WHERE id = ?", ("张三丰", idr))
    add_request(env, "u105-with-a-much-longer-userid", "Long One")
    r = env.cmd("requests")
    lines = r.stdout.splitlines()
    starts = [ln.find("pending") for ln in lines[1:]]
    t.check("requests text columns align (STATUS at the same column)",
            len(lines) == 3 and len(set(starts)) == 1 and starts[0] > 0
            and lines[0].find("STATUS") == starts[0], r.stdout)
    r = env.cmd("users", "list")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    cols = {ln.find("active") for ln in lines[1:] if "active" in ln}
    t.check("users list text columns align", len(cols) == 1
            and lines[0].find("STATE") in cols, r.stdout)
    r = env.cmd("users", "list", "--json")
    users = js(r) or [{}]
    t.check("users JSON times are ISO 8601", ISO.match(users[0].get("created_at") or "")
            and ISO.match(users[0].get("updated_at") or ""), users[:1])
    r = env.cmd("events")
    t.check("events without a subcommand lists", r.returncode == 0
            and "no events" in r.stdout and r.stderr == "", r)
    r = env.cmd("events", "--json")
    t.eq("events --json lists as JSON", (r.returncode, js(r)), (0, []))
    env.sql("INSERT INTO events (dedupe_key, event_type, payload, received_at)"
            " VALUES ('k-iso', 'user_add_org', '{\"UserId\":[\"u001\"]}', ?)", (NOW,))
    r = env.cmd("events", "list", "--json")
    ev = (js(r) or [{}])[0]
    t.check("events JSON times are ISO 8601", ISO.match(ev.get("received_at") or "")
            and ev.get("applied_at") is None, ev)
    env.sql("DELETE FROM events")

    add_session(env, "u001", "ab" * 32)
    add_session(env, "u001", "cd" * 32)
    r = env.cmd("sessions")
    t.check("sessions without a subcommand lists", r.returncode == 0
            and "abababababab" in r.stdout and "cdcdcdcdcdcd" in r.stdout, r)
    sess = js(env.cmd("sessions", "--json")) or [{}]
    t.check("sessions JSON times are ISO 8601", all(
        ISO.match(x.get(k) or "") for x in sess for k in ("created_at", "last_seen",
                                                          "expires_at")), sess)
    r = env.cmd("sessions", "revoke", "ABABABABABAB")
    t.check("sessions revoke REF: exit 0, that one session", r.returncode == 0
            and "1 session revoked for u001" in r.stdout, r)
    t.eq("...the other session stays", env.sql(
        "SELECT lower(hex(substr(id_hash, 1, 6))) FROM sessions"), [("cdcdcdcdcdcd",)])
    r = env.cmd("sessions", "revoke", "abababababab")
    t.check("revoking a reference nobody has: exit 1", r.returncode == 1
            and "abababababab" in r.stderr, r)
    r = env.cmd("sessions", "revoke", "cdcdcdcdcdcd", "--all")
    t.eq("a REF with --all: usage error", r.returncode, 2)
    env.sql("DELETE FROM sessions")

    # A pending request is resolved when a sync adds the person.
    fk.put_user({"userid": "u106", "name": "Joins Later", "dept_id_list": [1]})
    idj = add_request(env, "u106", "Joins Later")
    r = env.cmd("sync")
    t.eq("sync adding a waiting person: exit 0", r.returncode, 0)
    t.eq("...resolves their pending request", env.sql(
        "SELECT status, decided_at IS NOT NULL FROM login_requests WHERE id = ?",
        (idj,)), [("approved", 1)])
    r = env.cmd("requests", "--json")
    t.check("...and it is no longer listed", idj not in [q["id"] for q in js(r) or []],
            r.stdout)

    # token refresh keeps the valid token until a new one is fetched.
    r = env.cmd("token", "refresh", "corp")
    t.eq("token refresh corp: exit 0", r.returncode, 0)
    before = env.sql("SELECT access_token FROM tokens WHERE kind = 'corp'")
    fk.fault("/gettoken", "http500", count=50)
    r = env.cmd("token", "refresh", "corp")
    fk.clear_faults()
    t.check("token refresh with DingTalk failing: exit 1, the cached one kept",
            r.returncode == 1 and "kept" in r.stderr, r)
    t.eq("...the valid token is still cached", env.sql(
        "SELECT access_token FROM tokens WHERE kind = 'corp'"), before)
    r = env.cmd("token", "refresh", "corp")
    after = env.sql("SELECT access_token FROM tokens WHERE kind = 'corp'")
    t.check("token refresh when DingTalk answers: a token is cached",
            r.returncode == 0 and len(after) == 1, (r, after))
    r = env.cmd("token", "show", "--json")
    tok = (js(r) or [{}])[0]
    t.check("token show JSON times are ISO 8601", ISO.match(tok.get("expires_at") or "")
            and ISO.match(tok.get("fetched_at") or ""), tok)

    # -- failures: exit 1 ------------------------------------------------------------
    r = env.cmd("users", "list", extra_env={"DINGAUTH_DB": "/nonexistent/dir/x.db"})
    t.check("a database that cannot be opened: exit 1", r.returncode == 1
            and r.stderr.strip() != "", r.stderr)
    r = env.cmd("users", "approve", "u001", extra_env={"DINGTALK_CORP_SECRET": ""})
    t.check("approve without DingTalk credentials: exit 1 naming the key",
            r.returncode == 1 and "DINGTALK_CORP_SECRET" in r.stderr, r.stderr)

t.done()
