# -*- coding: utf-8 -*-
"""Two web nodes on one PostgreSQL (README "Several web nodes").

Runs in the PostgreSQL pass only (make test DB=pg; tests/run lists it in
PG_ONLY). It starts a PostgreSQL of its own (tests/pgtest.py), so that
restarting it disturbs no other suite, and two real lighttpd instances,
A and B, each starting its own FastCGI processes (four of each program),
all on one database:

  - a login on A is valid on B;
  - a leave pushed to B refuses the session on A at the next request;
  - the same push sent to A and to B is applied once;
  - eight exchanges across both nodes needing a stale corp token: one
    gettoken at the fake;
  - a worker on A holds the cluster's worker lock, one on B is refused;
  - PostgreSQL restarted: a request during the outage fails closed at
    once; both nodes serve again within seconds without a web server
    restart; the worker takes its lock again;
  - node A killed: B keeps serving.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T, Env, Lighttpd, BUILD, DINGAUTH, http, kill_tree, wait_for  # noqa: E402
import deploykit as dk  # noqa: E402
import pgtest  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
TARGET = "/protected/app.cgi"


class Node:
    """One web node: a lighttpd with its own FastCGI processes."""

    def __init__(self, name, env, docroot):
        self.name = name
        self.srv = Lighttpd(env, protect={"/protected/": {}},
                            docroot=docroot, procs=4)

    @property
    def url(self):
        return self.srv.url

    def start(self):
        self.srv.start()
        return self

    def stop(self):
        self.srv.stop()

    def log(self):
        return self.srv.log()

    def get(self, path, cookie=None, headers=None, method="GET", body=None):
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = dk.cookie_header(cookie)
        return http(method, self.url + path, body=body, headers=h)


def user_of(node, sid):
    """(status, REMOTE_USER the app saw) for sid's request through node."""
    st, hs, body = node.get(TARGET, cookie=sid)
    return st, dk.parse_app(body).get("REMOTE_USER") if st == 200 else None


def login_state(node):
    """The login page through node: its state cookie."""
    st, hs, body = node.get(dk.login_for(TARGET))
    return dk.set_cookie(hs, "dingauth_state")


def exchange(node, fake, userid, state, code=None):
    code = code or fake.code(userid=userid)["code"]
    st, hs, body = node.get("/dingauth/exchange?" + urllib.parse.urlencode(
        {"code": code, "state": state}),
        headers={"Cookie": "dingauth_state=%s" % state})
    return st, dk.set_cookie(hs, "dingauth_session"), body[:400]


def post_push(node, enc):
    """POST an encrypted push (fake.encrypt) to node's callback."""
    st, hs, body = http("POST", node.url + "/dingauth/callback?" +
                        enc["query"], body=enc["body"],
                        headers={"Content-Type": "application/json"})
    return st, body


def doctor(env):
    r = env.cmd("doctor", "--json")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"stdout": r.stdout, "stderr": r.stderr}


def lock_of(doc, name):
    for lk in (doc.get("backend") or {}).get("locks", []):
        if lk.get("name") == name:
            return lk
    return {}


def section_login_and_leave(env, fake, a, b):
    sid = dk.login_flow(t, a, fake, "u002", TARGET)
    t.eq("a login on A is valid on B", user_of(b, sid), (200, "u002"))
    t.eq("...and on A", user_of(a, sid), (200, "u002"))
    st, hs, body = b.get("/dingauth/whoami", cookie=sid)
    t.check("B's whoami names the user A signed in",
            st == 200 and json.loads(body).get("userid") == "u002",
            (st, body[:200]))

    res = fake.push(b.url + "/dingauth/callback",
                    {"EventType": "user_leave_org", "UserId": ["u002"],
                     "TimeStamp": str(int(time.time() * 1000))})
    t.check("a leave pushed to B is answered with the encrypted success",
            res.get("status") == 200 and res.get("reply_ok"), res)
    st, _ = user_of(a, sid)
    t.eq("A refuses the leaver's session at the next request", st, 302)
    st, _ = user_of(b, sid)
    t.eq("...and so does B", st, 302)


def section_same_push(env, fake, a, b):
    enc = fake.encrypt({"EventType": "user_leave_org", "UserId": ["u003"],
                        "TimeStamp": str(int(time.time() * 1000))})
    sid = dk.session(env, "u003")
    before = env.sql("SELECT count(*) FROM events")[0][0]
    sa = post_push(a, enc)
    sb = post_push(b, enc)
    t.check("the same push to A and to B: both answered 200",
            sa[0] == 200 and sb[0] == 200, (sa, sb))
    t.check("...both with DingTalk's encrypted success",
            all(fake.decrypt(json.loads(s[1])).get("plaintext") == "success"
                for s in (sa, sb)), (sa, sb))
    t.eq("...stored once", env.sql("SELECT count(*) FROM events")[0][0],
         before + 1)
    rows = env.sql("SELECT count(*) FROM audit WHERE event = 'offboard'"
                   " AND userid = 'u003'")
    t.eq("...applied once (one offboard in the audit)", rows, [(1,)])
    t.eq("...and the leaver is out on both nodes",
         (user_of(a, sid)[0], user_of(b, sid)[0]), (302, 302))


def section_stale_token(env, fake, a, b):
    # Every node has asked DingTalk for the corp token by now; make it
    # stale (it expires within the refresh margin) for all of them.
    env.sql("UPDATE tokens SET expires_at = strftime('%s','now') + 200")
    users = ["u001", "u004", "u006", "u001"] * 2
    nodes = [a, b] * 4
    states = [login_state(n) for n in nodes]
    t.check("eight login pages across both nodes: eight states",
            all(states) and len(set(states)) == 8, states)
    codes = [fake.code(userid=u)["code"] for u in users]
    fake.clear_log()
    fake.fault("/gettoken", "slow", count=1, delay_ms=1500)
    out = [None] * 8

    def run(i):
        out[i] = exchange(nodes[i], fake, users[i], states[i], codes[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    t.check("eight exchanges at once across both nodes: eight sessions",
            all(o and o[0] == 302 and o[1] for o in out), out)
    t.eq("...and exactly one gettoken at DingTalk",
         len(fake.log(path="/gettoken")), 1)
    t.eq("...each session valid on the other node",
         [user_of(nodes[(i + 1) % 2], out[i][1])[1] if out[i] else None
          for i in range(8)], users)


def start_worker(env):
    return subprocess.Popen([DINGAUTH, "worker"], env=env.environ(
        DINGAUTH_SYNC_AT="off"), stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(env.dir, "worker.log"), "w"),
        start_new_session=True)


def lock_key(name):
    """src/db.c's lock_key: FNV-1a of "dingauth:" + name, halved."""
    h = 14695981039346656037
    for c in b"dingauth:" + name.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return h >> 1


def section_worker(env):
    w = start_worker(env)
    held = wait_for(lambda: lock_of(doctor(env), "worker").get("held"), 15)
    t.check("a worker on A holds the worker lock (doctor --json)", held,
            doctor(env))
    holder = lock_of(doctor(env), "worker").get("holder") or ""
    t.check("...doctor names the holder: its host and process id",
            ("dingauth %s %d" % (os.uname().nodename[:39], w.pid)) in holder,
            holder)
    r = env.cmd("worker", "--once", timeout=60)
    t.check("a second worker (node B) is refused: one per database",
            r.returncode == 1 and "one worker per database" in r.stderr, r)
    return w


def section_restart(env, srv, a, b, sid, worker):
    srv.stop("fast")
    t0 = time.time()
    st, hs, body = a.get(TARGET, cookie=sid)
    took = time.time() - t0
    t.check("PostgreSQL down: A's request fails closed (5xx, not a grant)",
            st >= 500, (st, body[:300]))
    t.check("...at once (%.2f s)" % took, took < 3, took)
    st, hs, body = b.get(TARGET, cookie=sid)
    t.check("...and so does B's", st >= 500, (st, body[:300]))
    srv.start()
    t0 = time.time()
    ok_a = wait_for(lambda: user_of(a, sid) == (200, "u001"), 20)
    ok_b = wait_for(lambda: user_of(b, sid) == (200, "u001"), 20)
    took = time.time() - t0
    t.check("PostgreSQL back: both nodes serve again (%.1f s), no web "
            "server restart" % took, ok_a and ok_b, (a.log()[-2000:],
                                                     b.log()[-2000:]))
    t.check("...within seconds", took < 10, took)
    ok = all(user_of(n, sid) == (200, "u001") for n in (a, b) * 4)
    t.check("...every FastCGI process of both: eight requests granted", ok)
    held = wait_for(lambda: lock_of(doctor(env), "worker").get("held"), 15)
    holder = lock_of(doctor(env), "worker").get("holder") or ""
    t.check("the worker connected again and holds its lock again",
            held and (" %d " % worker.pid) in holder and worker.poll() is None,
            (holder, worker.poll()))
    r = env.cmd("worker", "--once", timeout=60)
    t.check("...so another worker is still refused",
            r.returncode == 1 and "one worker per database" in r.stderr, r)


def section_lost_lock(env, worker):
    """The worker's connection drops and, before it connects again,
    another session takes the worker lock: the worker stops instead of
    working beside the new holder."""
    key = lock_key("worker")
    with pgtest.Conn(env.db) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE application_name LIKE $1", ("%% %d" % worker.pid,))
        end = time.time() + 10
        got = 0
        while time.time() < end and not got:
            got = c.execute("SELECT pg_try_advisory_lock($1::bigint)::int",
                            (key,))[0][0]
            time.sleep(0.05)
        t.check("the worker's session ended: another takes the lock", got)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            pass
        log = open(os.path.join(env.dir, "worker.log")).read()
        t.check("the worker that lost its lock stops (exit 1), saying why",
                worker.returncode == 1 and "took this one's lock" in log,
                (worker.returncode, log[-1500:]))
        c.execute("SELECT pg_advisory_unlock($1::bigint)", (key,))


def section_node_dies(env, fake, a, b, sid):
    a.stop()
    st, _ = user_of(b, sid)
    t.eq("node A killed: B keeps serving the session", st, 200)
    state = login_state(b)
    st, sid2, body = exchange(b, fake, "u006", state)
    t.check("...and signs people in", st == 302 and sid2, (st, body))


def main():
    if not harness.PG:
        t.check("two nodes: only with make test DB=pg", False)
        return
    srv = pgtest.PgServer().init().start()
    harness.PG = srv.uri
    a = b = worker = None
    try:
        srv.make_template(lambda uri: subprocess.run(
            [os.path.join(BUILD, "tools", "db_migrate"), uri], check=True,
            stdout=subprocess.DEVNULL))
        with FakeDingTalk() as fake, Env(fake=fake) as env:
            dk.seed(env)
            www = os.path.join(env.dir, "www")
            dk.make_site(www)
            a = Node("A", env, www).start()
            b = Node("B", env, www).start()
            section_login_and_leave(env, fake, a, b)
            section_same_push(env, fake, a, b)
            section_stale_token(env, fake, a, b)
            worker = section_worker(env)
            sid = dk.session(env, "u001")
            section_restart(env, srv, a, b, sid, worker)
            section_lost_lock(env, worker)
            section_node_dies(env, fake, a, b, sid)
            logs = a.log() + b.log()
            t.check("no sanitizer report or crash in either node's logs",
                    "Sanitizer" not in logs and "runtime error" not in logs,
                    logs[-3000:])
            kill_tree(worker)
            worker = None
            a.stop()
            b.stop()
    except Exception as e:
        import traceback
        t.check("two nodes: ran to the end", False, traceback.format_exc()
                + "\n" + repr(e))
    finally:
        kill_tree(worker)
        for n in (a, b):
            if n is not None:
                n.stop()
        srv.close()


main()
t.done()
