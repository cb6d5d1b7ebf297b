"""dingauth sync against the fake DingTalk (tests/fake_dingtalk.py).

Run with /usr/bin/python3 tests/test_sync.py (tests/run does). Scenarios:
a deep and wide generated company copied exactly, with the fake's request
log showing no department or page fetched twice and the rate limit kept;
changes, leavers and a rehire; a mass disappearance refused without
--force; a department that fails to load (nobody leaves); retries on
rate limits, busy answers, transport faults and refused tokens; a run
killed mid-way (the previous directory intact, a rerun completes);
--dry-run changing nothing; the progress line only on a terminal.
"""
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DINGAUTH, Env, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

LISTSUB = "/topapi/v2/department/listsub"
USERLIST = "/topapi/v2/user/list"
DEPTGET = "/topapi/v2/department/get"
DIRECTORY_TABLES = ("users", "user_depts", "departments", "sessions")

t = T()


# -- helpers ---------------------------------------------------------------------

def fake_directory(fk):
    """What the directory must look like after a complete sync."""
    corp = fk.corp()
    users = {}
    for u in corp["users"]:
        depts = sorted(set(u["dept_id_list"]))
        if not depts:
            continue        # listed in no department: not visible
        users[u["userid"]] = {
            "unionid": u["unionid"], "name": u["name"],
            "title": u.get("title") or "", "job_number": u.get("job_number") or "",
            "email": u.get("email") or u.get("org_email") or "",
            "mobile": u.get("mobile") or "", "admin": bool(u.get("admin")),
            "active": True, "dept_ids": depts}
    depts = {d["dept_id"]: (None if d["dept_id"] == 1 else d["parent_id"], d["name"])
             for d in corp["departments"]}
    return users, depts


def our_directory(env, active_only=False):
    users = {}
    for row in env.sql("SELECT userid, unionid, name, title, job_number, email,"
                       " mobile, admin, active FROM users"):
        if active_only and not row[8]:
            continue
        users[row[0]] = {"unionid": row[1], "name": row[2], "title": row[3],
                         "job_number": row[4], "email": row[5], "mobile": row[6],
                         "admin": bool(row[7]), "active": bool(row[8]), "dept_ids": []}
    for userid, dept in env.sql("SELECT userid, dept_id FROM user_depts ORDER BY dept_id"):
        if userid in users:
            users[userid]["dept_ids"].append(dept)
    depts = {d: (p, n) for d, p, n in env.sql(
        "SELECT dept_id, parent_id, name FROM departments")}
    return users, depts


def diff(a, b, limit=10):
    out = []
    for k in sorted(set(a) | set(b), key=str):
        if a.get(k) != b.get(k):
            out.append("%r: ours %r / fake %r" % (k, a.get(k), b.get(k)))
            if len(out) >= limit:
                break
    return "\n".join(out)


def same_directory(name, env, fk):
    want_u, want_d = fake_directory(fk)
    got_u, got_d = our_directory(env, active_only=True)
    t.check(name + ": users as at DingTalk (%d)" % len(want_u), got_u == want_u,
            diff(got_u, want_u))
    t.check(name + ": departments as at DingTalk (%d)" % len(want_d), got_d == want_d,
            diff(got_d, want_d))


def sync(env, *args, timeout=300, **extra):
    """Run dingauth sync --json ARGS; returns (rc, summary dict or {}, stderr)."""
    r = env.cmd("sync", "--json", *args, timeout=timeout,
                extra_env={k: str(v) for k, v in extra.items()})
    try:
        summary = json.loads(r.stdout)
    except ValueError:
        summary = {}
    return r.returncode, summary, r.stderr


def directory_snapshot(env):
    snap = env.snapshot()
    return {k: snap.get(k) for k in DIRECTORY_TABLES}


def add_session(env, userid):
    now = int(time.time())
    env.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen, expires_at)"
            " VALUES (randomblob(32), ?, ?, ?, ?)", (userid, now, now, now + 3600))


def max_per_second(times):
    """Most requests in any one-second window."""
    times = sorted(times)
    best = j = 0
    for i, x in enumerate(times):
        while x - times[j] >= 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def last_run(env):
    rows = env.sql("SELECT outcome, departments, users, added, updated, deactivated,"
                   " reactivated, requests, error, finished_at FROM sync_runs"
                   " ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def tree_depth(corp):
    parent = {d["dept_id"]: d["parent_id"] for d in corp["departments"]}
    best = 0
    for d in parent:
        n, x = 0, d
        while x != 1 and n < 100:
            x, n = parent[x], n + 1
        best = max(best, n)
    return best


# -- scenarios -------------------------------------------------------------------

def test_big_tree():
    """A deep, wide company at the default 20 QPS: exact copy, no double fetch."""
    gen = "depts=120,users=2500,depth=8,seed=7"
    with FakeDingTalk(generate=gen, qps=20) as fk, Env(fake=fk) as env:
        corp = fk.corp()
        members = {}
        for u in corp["users"]:
            for d in u["dept_id_list"]:
                members[d] = members.get(d, 0) + 1
        t.check("generated tree is at least 6 deep (%d)" % tree_depth(corp),
                tree_depth(corp) >= 6)
        t.check("some users are in several departments",
                sum(1 for u in corp["users"] if len(u["dept_id_list"]) > 1) > 10)
        t.check("some departments need more than one page",
                sum(1 for n in members.values() if n > 100) >= 2, members)

        start = time.time()
        rc, s, err = sync(env, DINGAUTH_SYNC_QPS=20)
        took = time.time() - start
        print("# big tree: %d departments, %d users, %s requests in %.1f s"
              % (s.get("departments", 0), s.get("users", 0), s.get("requests"), took))
        t.eq("big sync exits 0", rc, 0)
        if rc != 0:
            print("# " + err[-2000:].replace("\n", "\n# "))
        t.eq("big sync outcome", s.get("outcome"), "ok")
        want_u, want_d = fake_directory(fk)
        t.eq("summary counts users", s.get("users"), len(want_u))
        t.eq("summary counts departments", s.get("departments"), len(want_d))
        t.eq("everyone was added", s.get("added"), len(want_u))
        same_directory("big sync", env, fk)

        log = fk.log()
        ok = [e for e in log if e["status"] == 200 and not e["rate_limited"]
              and e["errcode"] in (None, 0)]
        listsub = [e["json"]["dept_id"] for e in ok if e["path"] == LISTSUB]
        t.eq("every department's children fetched once", sorted(listsub), sorted(want_d))
        pages = [(e["json"]["dept_id"], e["json"]["cursor"]) for e in ok
                 if e["path"] == USERLIST]
        t.eq("no member page fetched twice", len(pages), len(set(pages)))
        t.eq("every department's members fetched", sorted({d for d, c in pages}),
             sorted(want_d))
        t.check("departments paged beyond the first page",
                sum(1 for d, c in pages if c > 0) >= 2)
        t.check("page size is 100",
                all(e["json"]["size"] == 100 for e in ok if e["path"] == USERLIST))
        t.eq("root department read once",
             [e["json"]["dept_id"] for e in ok if e["path"] == DEPTGET], [1])
        t.eq("no request was rate limited",
             [e["path"] for e in log if e["rate_limited"]], [])
        for path in (LISTSUB, USERLIST):
            peak = max_per_second([e["t"] for e in log if e["path"] == path])
            t.check("%s: at most 20 requests in any second (peak %d)" % (path, peak),
                    peak <= 20)
        t.check("requests ran in parallel (%d connections)"
                % len({e["conn"] for e in log}), len({e["conn"] for e in log}) > 1)
        t.eq("request count in the summary matches the log",
             s.get("requests"), len(log))
        run = last_run(env)
        t.check("sync_runs records the run", run is not None and run[0] == "ok"
                and run[1] == len(want_d) and run[2] == len(want_u)
                and run[3] == len(want_u) and run[7] == len(log) and run[9], run)

        rc, s, err = sync(env, DINGAUTH_SYNC_QPS=20)
        t.check("a second sync changes nothing", rc == 0 and s.get("added") == 0
                and s.get("updated") == 0 and s.get("deactivated") == 0, s)


SMALL = "depts=30,users=400,depth=6,seed=5"
FAST = {"DINGAUTH_SYNC_QPS": 100}


def pick_users(fk, n, exclude_dept=None):
    users = [u for u in fk.corp()["users"] if u["dept_id_list"]
             and (exclude_dept is None or exclude_dept not in u["dept_id_list"])]
    return users[5:5 + n]


def test_changes_leavers_rehire():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("first sync exits 0", rc, 0)
        same_directory("first sync", env, fk)

        # A rename, a move, a new department with a new member.
        a, b, c = pick_users(fk, 3)
        a = dict(a, name="Renamed Person", title="New Title")
        fk.put_user(a)
        b = dict(b, dept_id_list=[1])
        fk.put_user(b)
        fk.put_dept({"dept_id": 9001, "name": "New Dept", "parent_id": 3})
        fk.put_user({"userid": "newbie", "name": "New Hire", "dept_id_list": [9001, 1]})
        # c leaves; they had two sessions.
        add_session(env, c["userid"])
        add_session(env, c["userid"])
        add_session(env, a["userid"])
        fk.delete_user(c["userid"])
        rc, s, err = sync(env, **FAST)
        t.eq("sync after changes exits 0", rc, 0)
        t.check("summary: 1 added, 2 updated, 1 deactivated, 1 department added",
                s.get("added") == 1 and s.get("updated") == 2
                and s.get("deactivated") == 1 and s.get("departments_added") == 1, s)
        t.eq("the leaver's two sessions ended (summary)", s.get("sessions_ended"), 2)
        same_directory("after changes", env, fk)
        row = env.sql("SELECT active, left_at FROM users WHERE userid = ?", (c["userid"],))
        t.check("the leaver stays as an inactive row with left_at",
                row and row[0][0] == 0 and row[0][1], row)
        t.eq("the leaver has no sessions left", env.sessions_of(c["userid"]), 0)
        t.eq("others keep their sessions", env.sessions_of(a["userid"]), 1)
        t.eq("new member's departments", env.sql(
            "SELECT dept_id FROM user_depts WHERE userid = 'newbie' ORDER BY 1"),
            [(1,), (9001,)])

        # A department disappears; its members were moved first.
        fk.put_user(dict(fk.corp()["users"][-1], userid="newbie", name="New Hire",
                         dept_id_list=[1]))
        fk.delete_dept(9001)
        rc, s, err = sync(env, **FAST)
        t.check("a removed department is removed", rc == 0
                and s.get("departments_removed") == 1
                and not env.sql("SELECT 1 FROM departments WHERE dept_id = 9001"), s)
        same_directory("after department removal", env, fk)

        # The leaver comes back: a rehire.
        fk.put_user(c)
        rc, s, err = sync(env, **FAST)
        t.check("rehire: reactivated 1", rc == 0 and s.get("reactivated") == 1
                and s.get("added") == 0, s)
        row = env.sql("SELECT active, left_at FROM users WHERE userid = ?", (c["userid"],))
        t.eq("rehired person is active, left_at cleared", row, [(1, None)])
        run = last_run(env)
        t.check("sync_runs counts the rehire", run and run[6] == 1, run)
        same_directory("after rehire", env, fk)

        # A disabled user stays disabled through syncs.
        env.sql("UPDATE users SET disabled = 1 WHERE userid = ?", (a["userid"],))
        rc, s, err = sync(env, **FAST)
        t.eq("an operator's disable survives a sync", env.sql(
            "SELECT disabled FROM users WHERE userid = ?", (a["userid"],)), [(1,)])


def test_mass_disappearance():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("mass: first sync exits 0", rc, 0)
        active = len(fake_directory(fk)[0])
        gone = [u["userid"] for u in fk.corp()["users"][: active // 5]]
        for uid in gone:
            add_session(env, uid)
            fk.delete_user(uid)
        before = directory_snapshot(env)

        r = env.cmd("sync", "--dry-run", extra_env={k: str(v) for k, v in FAST.items()})
        t.eq("dry run of a mass disappearance exits 0", r.returncode, 0)
        t.check("dry run lists the leavers",
                sum(1 for l in r.stdout.splitlines() if l.startswith("deactivate user "))
                == len(gone), r.stdout[-1500:])
        t.check("dry run warns that a real run would be refused",
                "would be refused" in r.stderr, r.stderr)
        t.check("dry run changed nothing", directory_snapshot(env) == before)
        t.eq("dry run is recorded as such", last_run(env)[0], "dry-run")

        rc, s, err = sync(env, **FAST)
        t.eq("over the limit: exit 1", rc, 1)
        t.eq("over the limit: refused", s.get("outcome"), "refused")
        t.check("refusal says why and how to override",
                "--force" in err and "DINGAUTH_SYNC_MAX_DEACTIVATE" in err, err)
        t.check("refused run changed nothing", directory_snapshot(env) == before)
        t.eq("refused run recorded", last_run(env)[0], "refused")

        rc, s, err = sync(env, DINGAUTH_SYNC_MAX_DEACTIVATE=25, **FAST)
        t.check("a higher DINGAUTH_SYNC_MAX_DEACTIVATE lets it through",
                rc == 0 and s.get("deactivated") == len(gone), s)
        rc, s, err = sync(env, **FAST)
        t.check("nothing more to do", rc == 0 and s.get("deactivated") == 0, s)


def test_force():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        users = [u["userid"] for u in fk.corp()["users"]]
        gone = users[: len(users) // 2]
        for uid in gone:
            add_session(env, uid)
            fk.delete_user(uid)
        rc, s, err = sync(env, **FAST)
        t.eq("half the company gone: refused", (rc, s.get("outcome")), (1, "refused"))
        rc, s, err = sync(env, "--force", **FAST)
        t.check("--force deactivates them", rc == 0 and s.get("outcome") == "ok"
                and s.get("deactivated") == len(gone), s)
        t.eq("--force ends their sessions", env.sql(
            "SELECT count(*) FROM sessions")[0][0], 0)
        same_directory("after --force", env, fk)


def test_department_fails():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("dept failure: first sync exits 0", rc, 0)
        leaver = pick_users(fk, 1)[0]
        fk.delete_user(leaver["userid"])
        renamed = dict(pick_users(fk, 2, exclude_dept=1)[1], name="Changed While Broken")
        fk.put_user(renamed)
        fk.put_user({"userid": "joiner", "name": "Joiner", "dept_id_list": [2]})
        depts_before = env.sql("SELECT * FROM departments ORDER BY 1")
        # The root's first member page fails, with no retries allowed
        # (matched by its body: under load another page may go first).
        fk.fault(USERLIST, "http500", count=1, match={"dept_id": "1", "cursor": "0"})
        rc, s, err = sync(env, DINGAUTH_HTTP_RETRIES=0, **FAST)
        t.eq("a department failing: exit 1", rc, 1)
        t.eq("a department failing: outcome partial", s.get("outcome"), "partial")
        t.eq("the failed department is named", s.get("failed_department_ids"), [1])
        t.check("stderr says nobody was deactivated", "nobody was deactivated" in err, err)
        row = env.sql("SELECT active FROM users WHERE userid = ?", (leaver["userid"],))
        t.eq("nobody deactivated when a department failed", row, [(1,)])
        t.eq("no deactivation counted", s.get("deactivated"), 0)
        t.eq("what loaded was applied (rename)", env.sql(
            "SELECT name FROM users WHERE userid = ?", (renamed["userid"],)),
            [("Changed While Broken",)])
        t.eq("what loaded was applied (joiner)", env.sql(
            "SELECT active FROM users WHERE userid = 'joiner'"), [(1,)])
        t.eq("departments were not removed", env.sql(
            "SELECT * FROM departments ORDER BY 1"), depts_before)
        t.eq("the run is recorded as partial", last_run(env)[0], "partial")
        rc, s, err = sync(env, **FAST)
        t.check("the next complete sync deactivates the leaver",
                rc == 0 and s.get("deactivated") == 1, s)
        same_directory("after recovery", env, fk)


def test_overlong_userid():
    """A userid longer than dingauth stores is refused, never cut to another key."""
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("over-long userid: first sync exits 0", rc, 0)
        long_id = "u" * 127 + "-and-more"
        fk.put_user({"userid": long_id, "name": "Long Id", "dept_id_list": [2]})
        before = env.sql("SELECT count(*) FROM users")
        rc, s, err = sync(env, **FAST)
        t.eq("over-long userid: the department fails, exit 1", rc, 1)
        t.eq("over-long userid: outcome partial", s.get("outcome"), "partial")
        t.eq("over-long userid: its department is named",
             s.get("failed_department_ids"), [2])
        t.check("...with the reason", "longer than dingauth stores" in
                err + str(s.get("reason")), err[-500:])
        t.eq("no user stored under the long id or a cut one", env.sql(
            "SELECT count(*) FROM users WHERE userid LIKE 'uuuu%'"), [(0,)])
        t.eq("nobody else added", env.sql("SELECT count(*) FROM users"), before)


def test_retries():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        fk.fault(LISTSUB, "rate_limit", count=2)
        fk.fault(USERLIST, "http500", count=1)
        fk.fault(USERLIST, "drop", count=1)
        fk.fault(USERLIST, "errcode", count=1, errcode=-1)
        fk.fault(USERLIST, "errcode", count=1, errcode=90002, errmsg="global qps")
        rc, s, err = sync(env, **FAST)
        t.eq("faults retried: exit 0", rc, 0)
        t.eq("faults retried: outcome ok", s.get("outcome"), "ok")
        # Six faults; libcurl itself re-sends a request whose reused
        # connection closed without an answer ("drop"), so 5 or 6 are ours.
        t.check("retries counted (%s)" % s.get("retries"), (s.get("retries") or 0) >= 5, s)
        t.eq("every injected fault was met", fk.faults(), [])
        t.check("rate-limit answers counted", (s.get("rate_limited") or 0) >= 4, s)
        same_directory("after faults", env, fk)
        log = fk.log(path=LISTSUB)
        limited = [e for e in log if e["rate_limited"]]
        if limited:
            after = [e for e in log if e["t"] > limited[-1]["t"]]
            t.check("after 90018 the API waits about a second",
                    after and after[0]["t"] - limited[-1]["t"] >= 0.9,
                    [(e["t"], e["rate_limited"]) for e in log[:6]])
        again = [(e["json"]["dept_id"]) for e in log if not e["rate_limited"]]
        t.eq("a rate-limited department is fetched again, once", len(again), len(set(again)))

    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        fk.fault(USERLIST, "invalid_token", count=1)
        rc, s, err = sync(env, **FAST)
        t.check("a refused token is refreshed once and the sync completes",
                rc == 0 and s.get("token_refreshes") == 1, (s, err[-500:]))
        gettoken = [e for e in fk.log(path="/gettoken")]
        t.eq("two token fetches in all (start, refresh)", len(gettoken), 2)
        before = directory_snapshot(env)
        fk.delete_user(pick_users(fk, 1)[0]["userid"])
        fk.revoke_tokens()
        rc, s, err = sync(env, **FAST)
        t.eq("tokens refused for good: exit 1", rc, 1)
        t.check("...with the reason", "token" in err.lower(), err)
        t.check("...and the directory unchanged", directory_snapshot(env) == before)
        t.eq("...recorded as failed", last_run(env)[0], "failed")
        fk.restore_tokens()

    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        fk.fault(USERLIST, "http500", count=1000)
        rc, s, err = sync(env, DINGAUTH_HTTP_RETRIES=1, **FAST)
        t.check("every member page failing: partial, nobody added",
                rc == 1 and s.get("outcome") == "partial" and s.get("added") == 0
                and s.get("failed_departments") == 30, s)
        fk.clear_faults()
        fk.fault(LISTSUB, "http500", count=1000)
        rc, s, err = sync(env, DINGAUTH_HTTP_RETRIES=1, **FAST)
        t.check("the root's children failing: the sync fails",
                rc == 1 and s.get("outcome") == "failed", (s, err[-300:]))
        t.eq("...and changes nothing", env.sql("SELECT count(*) FROM users"), [(0,)])


def test_timeouts():
    """DingTalk's documented timeout answers on a sync page (docs/dingtalk.md
    §h.2), each injected once: asked again, and the sync completes. An HTML
    throttling page counts as rate limiting, not as garbage."""
    forms = (("errcode 15 isp.top-remote-connection-timeout", "errcode",
              {"errcode": 15, "sub_code": "isp.top-remote-connection-timeout",
               "errmsg": "Remote service error"}),
             ("errcode 88 without a sub_code", "errcode",
              {"errcode": 88, "sub_code": "", "errmsg": "ding talk error"}),
             ("HTTP 504", "http504", {}))
    for name, kind, opts in forms:
        for path in (LISTSUB, USERLIST):
            with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
                fk.fault(path, kind, count=1, **opts)
                rc, s, err = sync(env, **FAST)
                faulted = [e for e in fk.log(path=path) if e["fault"]]
                t.check("%s on %s: asked again, the sync completes" % (name, path),
                        rc == 0 and s.get("outcome") == "ok" and len(faulted) == 1 and
                        (s.get("retries") or 0) >= 1 and fk.faults() == [],
                        (rc, s, err[-600:]))
                same_directory("after %s on %s" % (name, path), env, fk)
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        fk.fault(USERLIST, "throttle_html", count=1)
        rc, s, err = sync(env, **FAST)
        # An IP ban lasts minutes: the sync stops (nothing changed) and says why.
        t.check("an HTML throttling page is an IP ban, not garbage",
                rc == 1 and "throttled this IP" in (s.get("reason") or "") and
                "not a JSON" not in err and env.sql("SELECT count(*) FROM users") == [(0,)],
                (rc, s, err[-600:]))


def test_killed():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("kill: first sync exits 0", rc, 0)
        for u in pick_users(fk, 3):
            fk.delete_user(u["userid"])
        fk.put_user({"userid": "latecomer", "name": "Late", "dept_id_list": [1]})
        before = directory_snapshot(env)
        fk.fault(USERLIST, "slow", count=100000, delay_ms=1500)
        fk.clear_log()
        p = subprocess.Popen([DINGAUTH, "sync"], env=env.environ(**{
            k: str(v) for k, v in FAST.items()}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline and len(fk.log(path=USERLIST)) < 3 \
                and p.poll() is None:
            time.sleep(0.1)
        time.sleep(0.5)
        running = p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()
        t.check("the sync was killed mid-run", running)
        t.check("a killed sync leaves the previous directory intact",
                directory_snapshot(env) == before)
        t.eq("its sync_runs row says running", last_run(env)[0], "running")
        fk.clear_faults()
        rc, s, err = sync(env, **FAST)
        t.check("a rerun completes", rc == 0 and s.get("outcome") == "ok"
                and s.get("deactivated") == 3 and s.get("added") == 1, (s, err[-500:]))
        same_directory("after the rerun", env, fk)
        t.eq("the killed run is marked interrupted", env.sql(
            "SELECT outcome FROM sync_runs ORDER BY id"), [("ok",), ("interrupted",), ("ok",)])


def push_event(env, fk, event):
    """callback.fcgi as plain CGI, to the end of its work; True if answered success."""
    enc = fk.encrypt(event)
    r = env.cgi("callback.fcgi", "/dingauth/callback", method="POST", query=enc["query"],
                body=enc["body"], content_type="application/json")
    if r.status != 200:
        return False
    try:
        d = fk.decrypt(json.loads(r.body))
    except ValueError:
        return False
    return bool(d.get("ok")) and d.get("plaintext") == "success"


def test_events_during_sync():
    """Events stored while a sync fetches are newer than its copy: a leave
    is not undone (the leaver was fetched before), a person we never had
    who leaves is not added, a hire is not taken for a leaver."""
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        t.eq("during: first sync exits 0", rc, 0)
        a, = pick_users(fk, 1)
        add_session(env, a["userid"])
        fk.put_user({"userid": "stranger", "name": "Never Seen", "dept_id_list": [1]})
        fk.fault(USERLIST, "slow", count=100000, delay_ms=400)
        fk.clear_log()
        p = subprocess.Popen([DINGAUTH, "sync", "--json"], env=env.environ(**{
            k: str(v) for k, v in FAST.items()}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline and not fk.log(path=USERLIST) and p.poll() is None:
            time.sleep(0.05)
        # DingTalk still lists a and the stranger to this run (fetched
        # before their leave); the late hire is gone from its lists.
        left = push_event(env, fk, {"EventType": "user_leave_org", "UserId": [a["userid"]]})
        gone = push_event(env, fk, {"EventType": "user_leave_org", "UserId": ["stranger"]})
        fk.put_user({"userid": "latehire", "name": "Late Hire", "dept_id_list": [1]})
        hired = push_event(env, fk, {"EventType": "user_add_org", "UserId": ["latehire"]})
        fk.delete_user("latehire")
        t.check("the pushes were answered while the sync was fetching",
                left and gone and hired and p.poll() is None, (left, gone, hired, p.poll()))
        t.eq("the leave ended the session at once", env.sessions_of(a["userid"]), 0)
        out, errout = p.communicate(timeout=120)
        fk.clear_faults()
        try:
            summary = json.loads(out)
        except ValueError:
            summary = {}
        t.check("the sync completes", p.returncode == 0 and summary.get("outcome") == "ok",
                (p.returncode, out[-300:], errout[-500:]))
        t.eq("the leaver stays out (not reactivated from the older copy)", env.sql(
            "SELECT active FROM users WHERE userid = ?", (a["userid"],)), [(0,)])
        t.eq("the leaver's sessions stay ended", env.sessions_of(a["userid"]), 0)
        t.check("a person who left during the run is not added", env.sql(
            "SELECT 1 FROM users WHERE userid = 'stranger' AND active = 1") == [], None)
        t.eq("a hire during the run is not taken for a leaver", env.sql(
            "SELECT active FROM users WHERE userid = 'latehire'"), [(1,)])
        # The next run sees DingTalk as it now is.
        fk.delete_user(a["userid"])
        fk.delete_user("stranger")
        fk.put_user({"userid": "latehire", "name": "Late Hire", "dept_id_list": [1]})
        rc, s, err = sync(env, **FAST)
        t.check("the next sync has nothing to undo", rc == 0 and s.get("reactivated") == 0
                and s.get("deactivated") == 0, s)
        same_directory("after events during a sync", env, fk)


def test_dry_run():
    with FakeDingTalk(generate=SMALL, qps=100) as fk, Env(fake=fk) as env:
        rc, s, err = sync(env, **FAST)
        leaver = pick_users(fk, 1)[0]
        fk.delete_user(leaver["userid"])
        renamed = dict(pick_users(fk, 1)[0], name="Dry Name")
        fk.put_user(renamed)
        fk.put_user({"userid": "dryhire", "name": "Dry Hire", "dept_id_list": [1]})
        fk.put_dept({"dept_id": 777, "name": "Dry Dept", "parent_id": 1})
        add_session(env, leaver["userid"])
        before = directory_snapshot(env)
        r = env.cmd("sync", "--dry-run", extra_env={k: str(v) for k, v in FAST.items()})
        t.eq("--dry-run exits 0", r.returncode, 0)
        lines = r.stdout.splitlines()
        t.check("--dry-run prints the new user", "add user dryhire Dry Hire" in lines, r.stdout)
        t.check("--dry-run prints the leaver",
                any(l.startswith("deactivate user %s " % leaver["userid"]) for l in lines),
                r.stdout)
        t.check("--dry-run prints the change",
                "update user %s Dry Name" % renamed["userid"] in lines, r.stdout)
        t.check("--dry-run prints the new department", "add department 777 Dry Dept" in lines,
                r.stdout)
        t.check("--dry-run says nothing changed", "dry run: nothing changed" in r.stdout)
        t.check("--dry-run changed nothing", directory_snapshot(env) == before)
        rc, s, err = sync(env, "--dry-run", **FAST)
        t.check("--dry-run --json counts", s.get("outcome") == "dry-run"
                and s.get("added") == 1 and s.get("updated") == 1
                and s.get("deactivated") == 1 and s.get("departments_added") == 1, s)
        t.check("still nothing changed", directory_snapshot(env) == before)
        rc, s, err = sync(env, **FAST)
        t.check("the real run does what the dry run said", rc == 0
                and (s.get("added"), s.get("updated"), s.get("deactivated")) == (1, 1, 1), s)


def test_output():
    with FakeDingTalk(generate="depts=12,users=150,depth=6,seed=9", qps=100) as fk, \
            Env(fake=fk) as env:
        r = env.cmd("sync", extra_env={k: str(v) for k, v in FAST.items()})
        t.eq("text sync exits 0", r.returncode, 0)
        t.check("text summary", r.stdout.startswith("sync ok: 12 departments, 150 users")
                and "users: add 150" in r.stdout and " requests " in r.stdout, r.stdout)
        t.check("no progress line in a pipe", "\r" not in r.stderr and
                "req/s" not in r.stderr, r.stderr)
        r = env.cmd("sync", "--bogus")
        t.eq("unknown option: exit 2", r.returncode, 2)
        r = env.cmd("sync", "extra")
        t.eq("unexpected argument: exit 2", r.returncode, 2)
        r = env.cmd("sync", "--help")
        t.check("sync --help: exit 0 with usage", r.returncode == 0
                and "usage: dingauth sync" in r.stdout, r)
        r = env.cmd("sync", extra_env={"DINGTALK_APP_KEY": ""})
        t.check("missing app key: exit 1 naming the key", r.returncode == 1
                and "DINGTALK_APP_KEY" in r.stderr, r.stderr)

        # On a terminal: a progress line, erased at the end.
        fk.fault(USERLIST, "slow", count=6, delay_ms=400)
        master, slave = pty.openpty()
        p = subprocess.Popen([DINGAUTH, "sync", "--dry-run"], env=env.environ(
            DINGAUTH_SYNC_CONCURRENCY="1"), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        tty = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
        out, _ = p.communicate(timeout=60)
        os.close(master)
        text = tty.decode("utf-8", "replace")
        t.check("a progress line on a terminal", "\rsync: departments " in text
                and "req/s, ETA " in text, repr(text[-400:]))
        t.check("the progress line is erased at the end", "\r\x1b[K" in text, repr(text[-200:]))
        t.eq("stdout keeps the plan and summary only", p.returncode, 0)


test_big_tree()
test_changes_leavers_rehire()
test_mass_disappearance()
test_force()
test_department_fails()
test_overlong_userid()
test_retries()
test_timeouts()
test_killed()
test_events_during_sync()
test_dry_run()
test_output()
t.done()
