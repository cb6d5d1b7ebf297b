"""The database under faults (issue 12), through the real programs.

- Another process holds a write transaction for 10 s: the authorizer
  still decides at once (its idle-time touch skipped), the callback
  answers 503 well within DingTalk's 1500 ms (nothing stored; the push
  sent again afterwards is stored), the login page and the exchange
  answer 503 with Retry-After; the command waits and then succeeds.
- A missing database is never created by a program (only dingauth init),
  and the message says so; nothing they create has "other" bits.
- The database file deleted or replaced under running FastCGI programs
  (lighttpd): they follow the path (the file there now), and fail closed
  while there is none.

Run with /usr/bin/python3 tests/test_db_faults.py (tests/run does).
"""
import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploykit as dk  # noqa: E402
from harness import T, Env, Lighttpd, CGI_DIR, DINGAUTH, http  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
HOLD = 10          # seconds the other process holds the write lock
CALLBACK_LIMIT = 1.5   # DingTalk's limit, seconds (docs/dingtalk.md §a.8)


def open_session(env, userid, idle_for=0):
    """A session row as session_open writes it; last_seen idle_for ago."""
    sid = secrets.token_hex(32)
    now = int(time.time())
    env.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen,"
            " expires_at) VALUES (?, ?, ?, ?, ?)",
            (hashlib.sha256(sid.encode()).digest(), userid, now - idle_for,
             now - idle_for, now + 3600))
    return sid


def authorize(env, sid, extra_env=None):
    e = {"SCRIPT_NAME": "", "REQUEST_URI": "/protected/x", "QUERY_STRING": ""}
    e.update(extra_env or {})
    return env.cgi("authorize.fcgi", path="/", headers={
        "Cookie": "dingauth_session=" + sid}, role="AUTHORIZER", extra_env=e)


class Holder:
    """Another process holding a write transaction (BEGIN IMMEDIATE)."""

    def __init__(self, db, seconds):
        code = ("import sqlite3, sys, time\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "c.execute('UPDATE users SET updated_at = updated_at')\n"
                "print('locked', flush=True)\n"
                "time.sleep(float(sys.argv[2]))\n"
                "c.execute('COMMIT')\n")
        self.p = subprocess.Popen([sys.executable, "-c", code, db, str(seconds)],
                                  stdout=subprocess.PIPE, text=True)
        self.line = self.p.stdout.readline().strip()
        self.since = time.monotonic()

    def wait(self):
        self.p.wait(60)


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def section_busy():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        dk.seed(env)
        fresh = open_session(env, "u001")
        due = open_session(env, "u002", idle_for=600)   # its touch is due
        r = env.cgi("login.fcgi", path="/dingauth/login", query="rd=/x")
        state = r.cookies().get("dingauth_state", (None,))[0]
        code = fk.code(userid="u003", kind="tmp")["code"]
        push = fk.encrypt({"EventType": "user_leave_org", "UserId": ["u006"]})

        h = Holder(env.db, HOLD)
        t.eq("busy: the other process holds the write lock", h.line, "locked")

        r, s = timed(lambda: authorize(env, due))
        t.check("busy: authorizer grants a session whose touch is due, at once "
                "(%.2f s)" % s, r.status == 200 and s < 1.0, r.head + r.stderr)
        r, s = timed(lambda: authorize(env, fresh))
        t.check("busy: authorizer grants a fresh session at once (%.2f s)" % s,
                r.status == 200 and s < 1.0, r.head)
        r, s = timed(lambda: env.cgi("authorize.fcgi", path="/dingauth/whoami",
                                     headers={"Cookie": "dingauth_session=" + fresh}))
        t.check("busy: whoami answers at once (%.2f s)" % s,
                r.status == 200 and s < 1.0, r.head)

        r, s = timed(lambda: env.cgi("callback.fcgi", "/dingauth/callback",
                                     method="POST", query=push["query"],
                                     body=push["body"],
                                     content_type="application/json"))
        t.check("busy: callback answers 503 within DingTalk's 1500 ms (%.2f s)" % s,
                r.status == 503 and s < CALLBACK_LIMIT, r.head + r.stderr)
        t.eq("busy: the callback's 503 has Retry-After", r.header("Retry-After"), "5")

        r, s = timed(lambda: env.cgi("login.fcgi", path="/dingauth/login",
                                     query="rd=/y"))
        t.check("busy: login page answers 503 (%.2f s)" % s,
                r.status == 503 and s < 4.0, r.head + r.stderr)
        t.check("busy: login page's 503 has Retry-After and sets no state",
                r.header("Retry-After") is not None and
                "dingauth_state" not in r.cookies(), r.head)

        r, s = timed(lambda: env.cgi("exchange.fcgi", path="/dingauth/exchange",
                                     query="code=%s&state=%s" % (code, state),
                                     headers={"Cookie": "dingauth_state=" + state}))
        t.check("busy: exchange answers 503 with Retry-After (%.2f s)" % s,
                r.status == 503 and r.header("Retry-After") is not None and
                s < 4.0, r.head + r.stderr)

        # The command may wait: it finishes once the lock is gone.
        left = HOLD - (time.monotonic() - h.since)
        r, s = timed(lambda: env.cmd("users", "disable", "u007"))
        t.check("busy: the command waits for the lock, then succeeds "
                "(%.1f s, lock held %.1f s more)" % (s, left),
                r.returncode == 0 and s >= left - 0.5, r.stderr)
        h.wait()

        r = env.cgi("callback.fcgi", "/dingauth/callback", method="POST",
                    query=push["query"], body=push["body"],
                    content_type="application/json")
        t.eq("after: the push sent again is stored and answered 200", r.status, 200)
        t.eq("after: the leaver is out", env.sql(
            "SELECT active FROM users WHERE userid = 'u006'"), [(0,)])
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                    query="code=%s&state=%s" % (code, state),
                    headers={"Cookie": "dingauth_state=" + state})
        t.check("after: the same sign-in link works (the state was kept)",
                r.status == 302 and "dingauth_session" in r.cookies(),
                r.head + r.body[:300])
        t.check("after: the skipped touch is done on the next request",
                authorize(env, due).status == 200 and env.sql(
                    "SELECT last_seen > ? FROM sessions WHERE id_hash = ?",
                    (int(time.time()) - 60,
                     hashlib.sha256(due.encode()).digest()))[0][0] == 1)


def listing(d):
    return sorted(n for n in os.listdir(d) if not n.startswith("dingauth.conf"))


def section_missing():
    with Env() as env:
        d = os.path.join(env.dir, "data")
        os.mkdir(d)
        missing = os.path.join(d, "dingauth.db")
        old = os.umask(0)
        try:
            for prog, path in (("authorize.fcgi", "/dingauth/whoami"),
                               ("login.fcgi", "/dingauth/login"),
                               ("callback.fcgi", "/dingauth/callback"),
                               ("exchange.fcgi", "/dingauth/exchange")):
                r = env.cgi(prog, path=path, extra_env={"DINGAUTH_DB": missing})
                t.check("missing database: %s answers 500 and creates nothing" % prog,
                        r.status == 500 and listing(d) == [], (r.status, listing(d)))
            r = env.cmd("users", "list", extra_env={"DINGAUTH_DB": missing})
            t.check("missing database: the command fails, names dingauth init, "
                    "creates nothing", r.returncode != 0 and "does not exist" in r.stderr
                    and "dingauth init" in r.stderr and listing(d) == [],
                    (r.stderr, listing(d)))
            # What they create beside an existing database is private.
            for n in os.listdir(env.dir):
                if n.startswith("dingauth.db-"):
                    os.unlink(os.path.join(env.dir, n))
            os.chmod(env.db, 0o640)
            # The worker keeps the database open (WAL, SHM) and its lock.
            w = subprocess.Popen([DINGAUTH, "worker"], env=env.environ(
                DINGAUTH_SYNC_AT="off", DINGTALK_APP_KEY="appkey",
                DINGTALK_CORP_SECRET="secret"), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            try:
                made = []
                for _ in range(50):
                    time.sleep(0.1)
                    made = [n for n in os.listdir(env.dir)
                            if n.startswith("dingauth.db")]
                    if len(made) >= 3:
                        break
                modes = {n: oct(os.stat(os.path.join(env.dir, n)).st_mode & 0o777)
                         for n in made}
            finally:
                w.terminate()
                w.wait(10)
            t.check("under umask 0, the database, WAL, SHM and the worker's lock "
                    "have no 'other' bits", len(made) >= 4 and
                    all(int(m, 8) & 0o007 == 0 for m in modes.values()), modes)
        finally:
            os.umask(old)


def section_replaced():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        dk.seed(env)
        sid = open_session(env, "u001")
        backup = os.path.join(env.dir, "backup.db")
        src = sqlite3.connect(env.db)
        dst = sqlite3.connect(backup)
        src.backup(dst)
        src.close()
        dst.close()
        with Lighttpd(env, protect={"/protected/": {}}) as lt:
            os.makedirs(os.path.join(lt.docroot, "protected"), exist_ok=True)
            with open(os.path.join(lt.docroot, "protected", "a.txt"), "w") as f:
                f.write("secret\n")
            cookie = {"Cookie": "dingauth_session=" + sid}
            st, _, _ = http("GET", lt.url + "/protected/a.txt", headers=cookie)
            t.eq("replaced: granted from the database first", st, 200)

            # A restore by rename: the backup, in which u001 has left.
            b = sqlite3.connect(backup)
            b.execute("UPDATE users SET active = 0 WHERE userid = 'u001'")
            b.commit()
            b.close()
            os.rename(backup, env.db)
            st, _, _ = http("GET", lt.url + "/protected/a.txt", headers=cookie)
            t.check("replaced: the running authorizer follows the file now at "
                    "the path (the leaver is out)", st in (302, 401, 403), st)

            # Deleted: fail closed, and nothing created in its place.
            os.unlink(env.db)
            for n in os.listdir(env.dir):
                if n.startswith("dingauth.db-"):
                    os.unlink(os.path.join(env.dir, n))
            st, _, _ = http("GET", lt.url + "/protected/a.txt", headers=cookie)
            t.check("deleted: the running authorizer fails closed",
                    st >= 500, st)
            push = fk.encrypt({"EventType": "user_leave_org", "UserId": ["u002"]})
            st, _, _ = http("POST", lt.url + "/dingauth/callback?" + push["query"],
                            body=push["body"],
                            headers={"Content-Type": "application/json"})
            t.check("deleted: a push is not acknowledged into a new, empty "
                    "database", st >= 500 and not os.path.exists(env.db),
                    (st, os.path.exists(env.db)))

            # dingauth init puts one back: the programs use it.
            r = env.init_db()
            t.check("deleted: dingauth init creates a new database",
                    r is not None and r.returncode == 0 and os.path.exists(env.db),
                    r.stderr if r else None)
            dk.seed(env)
            sid2 = open_session(env, "u002")
            st, _, _ = http("GET", lt.url + "/protected/a.txt",
                            headers={"Cookie": "dingauth_session=" + sid2})
            t.eq("deleted: after init, the programs serve from the new file", st, 200)


for name, fn in (("busy", section_busy), ("missing", section_missing),
                 ("replaced", section_replaced)):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        import traceback
        t.check("%s: ran without an exception" % name, False,
                traceback.format_exc())
t.done()
