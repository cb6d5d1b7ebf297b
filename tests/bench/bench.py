# -*- coding: utf-8 -*-
"""make bench: speed and memory of the dingauth programs, as ratios to
ceilings measured side by side in the same run (issue 7).

Run through tests/bench/run (it compiles the ceiling programs and sets
DINGAUTH_* and BENCH_TOOLS). One lighttpd on 127.0.0.1 serves, with
FastCGI "max-procs" => 2 for every program:

  static       /static/index.html                      a static file (ceiling)
  min          /bench/min        min_responder          plain FastCGI responder (ceiling)
  insert       /bench/insert     insert_responder       + one durable SQLite insert (ceiling;
                                 DB=pg: pg_insert_responder, one durable PostgreSQL insert)
  minauth      /minauth/...      min_responder as a lighttpd authorizer, then the
                                 static file (the authorizer-mode ceiling, for diagnosis)
  callback     /dingauth/callback   unique signed+encrypted user_leave_org pushes
  replay       /dingauth/callback   the same pushes again (the dedupe path)
  authorizer   /protected/...    authorize.fcgi, "mode" => "authorizer", valid
                                 session cookies, then the static file
  login        GET /dingauth/login?rd=/app   (creates a login state)
  exchange     GET /dingauth/exchange?code=&state= full sns logins against the fake
  insert32     /bench/insert     the insert ceiling again, wrk -c32 (BENCH_GROUP_CONNECTIONS)
  group        /dingauth/callback   unique pushes as callback, wrk -c32: durable
                                 acknowledgements per second under 32 concurrent pushes
                                 against one fsync per request (insert32), target 2.0
                                 (issue 11: group commit)
  slowins      /slowdisk/insert  insert32 on a slow disk: insert_responder with
                                 fsync_gate.so preloaded (FSYNC_DELAY_US =
                                 BENCH_FSYNC_DELAY_US, 5000, before every fsync), its own file
  slowcb       /slowdisk/callback   group on that slow disk: callback.fcgi preloading
                                 the shim, a database of its own (a second Env, seeded
                                 alike), against slowins, target 2.0; and its worst
                                 round's p99 against DingTalk's 1500 ms

wrk drives everything through tests/bench/pool.lua (pre-generated request
pools). Rounds are interleaved (round 1 of every workload, then round 2 ...),
each program right after its ceiling and the insert ceiling on both sides of
callback and login, so that the machine's noise hits a program and its
ceiling alike; a ratio is computed per round and reported as median
(min-max). A run whose answers differ from the checked ones is left out,
and so is a run of unique pushes (callback, group, slowcb) that stored
fewer events than it got answers. The slow-disk rows count the fsyncs of
their processes (FSYNC_GATE_DIR) and report fsyncs per answer; before
them, 8 pushes sent while those fsyncs are held must get no answer until
released (no push acknowledged before its fsync). The
slow-disk pair is SQLite only. BENCH_ONLY names rows; each brings its
ceiling along.
Then memory: VmRSS of every FastCGI process after warm-up, after the rounds
and after a top-up towards BENCH_MEM_REQUESTS requests (time-capped), and
sync (tests/bench/sync.py, if present).

Prints one table and writes it as JSON (BENCH_OUT). Benchmarks report: the
exit status is 0 unless the bench itself could not run (130 when stopped by
Ctrl-C or SIGTERM, after stopping everything it started).

make bench DB=pg (DB=pg here): the same rows with DINGAUTH_DB on a
PostgreSQL of the bench's own (tests/pgtest.py: initdb in a temporary
directory, 127.0.0.1 only, durable: fsync, synchronous_commit and
full_page_writes on), against the same ceilings measured in the same run:
static and min are the same programs, and the insert ceiling becomes
pg_insert_responder, one durable INSERT per request on that same server
(its own database, bench_ceiling), so callback and login are compared with
what one commit on PostgreSQL costs there. No sync or Stream run. JSON in
build/bench-pg.json, and a table of the ratios beside those of the last
SQLite run (build/bench.json) when there is one.
"""

import base64
import hashlib
import http.client
import json
import os
import platform
import re
import secrets
import signal
import socket
import sqlite3
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("DINGAUTH_ROOT") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import harness  # noqa: E402
import pgtest  # noqa: E402
from harness import Env, Lighttpd  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
import fake_dingtalk  # noqa: E402  (its CallbackCrypto signs and encrypts pushes)


def knob(name, default, cast=int):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


ROUNDS = knob("BENCH_ROUNDS", 5)
SECONDS = knob("BENCH_SECONDS", 5)
WARMUP = knob("BENCH_WARMUP", 2)
THREADS = knob("BENCH_THREADS", 2)
CONNECTIONS = knob("BENCH_CONNECTIONS", 16)
GROUP_CONNECTIONS = knob("BENCH_GROUP_CONNECTIONS", 32)
FSYNC_DELAY_US = knob("BENCH_FSYNC_DELAY_US", 5000)
MEM_REQUESTS = knob("BENCH_MEM_REQUESTS", 100000)
MEM_SECONDS = knob("BENCH_MEM_SECONDS", 60)
SYNC_TIMEOUT = knob("BENCH_SYNC_TIMEOUT", 330)
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
PROCS = 2
TOOLS = os.environ.get("BENCH_TOOLS") or os.path.join(harness.BUILD, "bench")
PG_MODE = os.environ.get("DB") == "pg"
SQLITE_OUT = os.path.join(harness.BUILD, "bench.json")
OUT = os.environ.get("BENCH_OUT") or (os.path.join(harness.BUILD, "bench-pg.json")
                                      if PG_MODE else SQLITE_OUT)
POOL_LUA = os.path.join(HERE, "pool.lua")
FSYNC_GATE = os.path.join(harness.BUILD, "preload", "fsync_gate.so")
SYNC_PY = os.path.join(HERE, "sync.py")

AUTHZ_SESSIONS = 200        # round-robin cookies; each is touched at most once a minute
CALLBACK_USERS = 40000      # user_leave_org targets, reactivated before every round
EXCHANGE_USERS = ["u001", "u002", "u003", "u004", "u006"]    # the fake's active demo users
SNS_FLOW_CALLS = {"/sns/get_persistent_code": 1, "/topapi/user/getbyunionid": 1}
TOKEN_PATHS = ("/gettoken", "/sns/gettoken", "/v1.0/oauth2/accessToken")
DEADLINE_MS = 1500          # DingTalk's wait for a push's answer
HELD_PUSHES = 8             # pushes sent at once while the slow disk holds every fsync
HELD_SECONDS = 0.5          # how long it holds them
STATIC_BODY = "<!DOCTYPE html><title>bench</title><p>a small static page behind the authorizer.</p>\n"

# name: label, lighttpd entry (memory accounting), ceiling, target ratio.
WORKLOADS = [
    ("static", "static file", None, None, None),
    ("min", "min responder", "min", None, None),
    ("authorizer", "authorizer + static", "authz0", "min", 0.80),
    ("minauth", "min authorizer + static", "minauth", "min", None),
    ("insert", "insert responder", "insert", None, None),
    ("callback", "callback (unique pushes)", "callback", "insert", 0.90),
    ("login", "login page", "login", "insert", 0.85),
    # A replay writes nothing and calls nobody: compared with the plain responder.
    ("replay", "callback (replays)", "callback", "min", 0.80),
    ("exchange", "exchange (full logins)", "exchange", None, None),
    # Group commit (issue 11): durable acknowledgements per second under
    # GROUP_CONNECTIONS concurrent pushes, against one fsync per request
    # at the same concurrency; then both again on a slow disk (fsync_gate.so).
    ("insert32", "insert responder -c%d" % GROUP_CONNECTIONS, "insert", None, None),
    ("group", "group commit: pushes -c%d" % GROUP_CONNECTIONS, "callback", "insert32", 2.0),
    ("slowins", "slow disk: insert -c%d" % GROUP_CONNECTIONS, "slowins", None, None),
    ("slowcb", "slow disk: pushes -c%d" % GROUP_CONNECTIONS, "slowcb", "slowins", 2.0),
]
# The order inside a round: each program right after its ceiling, and the
# insert ceiling measured on both sides of the two programs compared with it
# (their ceiling is the mean of the two), since disk latency drifts most.
ORDER = ["static", "min", "authorizer", "minauth", "insert", "callback", "login", "insert",
         "replay", "exchange", "insert32", "group", "insert32", "slowins", "slowcb", "slowins"]
# Extra ratios, for diagnosis (JSON and a note line; no target).
ALSO = {"authorizer": "minauth", "replay": "callback", "group": "callback"}
LABEL = {w[0]: w[1] for w in WORKLOADS}
if PG_MODE:
    LABEL["insert"] = "insert responder (pg)"
ENTRY = {w[0]: w[2] for w in WORKLOADS}
CEILING = {w[0]: w[3] for w in WORKLOADS}
TARGET = {w[0]: w[4] for w in WORKLOADS}
PROGRAM = {"callback": "callback.fcgi", "replay": "callback.fcgi", "authorizer": "authorize.fcgi",
           "login": "login.fcgi", "exchange": "exchange.fcgi", "group": "callback.fcgi",
           "slowcb": "callback.fcgi"}
# Unique pushes: a fresh pool each run, every push a distinct event, and
# every answered one must be stored.
PUSHES = ("callback", "group", "slowcb")
# Served with fsync_gate.so preloaded (FSYNC_DELAY_US before every fsync),
# from their own databases: SQLite only.
SLOW = ("slowins", "slowcb")
# wrk's connections when not CONNECTIONS.
CONNS = {"insert32": GROUP_CONNECTIONS, "group": GROUP_CONNECTIONS,
         "slowins": GROUP_CONNECTIONS, "slowcb": GROUP_CONNECTIONS}
PUSH_PATH = {"callback": "/dingauth/callback", "group": "/dingauth/callback",
             "slowcb": "/slowdisk/callback"}
# BENCH_ONLY names rows; a row named brings its ceiling along.
ONLY += [CEILING[n] for n in ONLY if CEILING.get(n) and CEILING[n] not in ONLY]


class Stop(BaseException):
    """Ctrl-C or SIGTERM: a BaseException, so that the per-workload
    "except Exception" (a failed row is reported, the bench goes on) lets
    it through to main(), which stops everything."""


STOPPED = 130      # the exit status of a bench stopped by a signal (tests/bench/run stops too)
STOPPING = []      # set while Bench.stop() runs: a second Ctrl-C must not cut it short


def on_signal(signum, frame):
    if STOPPING:
        return
    raise Stop("signal %d" % signum)


def say(msg):
    print("# " + msg, flush=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


# ---------------------------------------------------------------------------
# lighttpd with the programs and the ceilings
# ---------------------------------------------------------------------------

class BenchLighttpd(Lighttpd):
    """harness.Lighttpd (the shipped routes, max-procs 2, the authorizer in
    front of /protected/) plus the ceiling programs. Every FastCGI entry gets
    BENCH_ENTRY=<name> in its environment, so its processes can be found."""

    def __init__(self, env, docroot, insert_db, insert_pg=None, slow=None):
        self.insert_db = insert_db
        self.insert_pg = insert_pg          # DB=pg: the PostgreSQL ceiling's database
        self.slow = slow                    # SlowDisk: the slow-disk pair's entries, or None
        super().__init__(env, protect={"/protected/": {}}, docroot=docroot, procs=PROCS)

    def _fcgi(self, name, prog, mode="responder", extra=None):
        extra = dict(extra or {})
        extra["BENCH_ENTRY"] = name
        return super()._fcgi(name, prog, mode, extra)

    def _tool(self, name, path, mode="responder", extra=None):
        envs = {"BENCH_ENTRY": name}
        envs.update(extra or {})
        benv = ", ".join('"%s" => "%s"' % kv for kv in envs.items())
        return ('(( "bin-path" => "%s", "socket" => "%s/%s.sock", "mode" => "%s", '
                '"check-local" => "disable", "max-procs" => %d, "bin-environment" => ( %s ) ))'
                % (path, self.dir, name, mode, PROCS, benv))

    def config_text(self):
        minr = os.path.join(TOOLS, "min_responder")
        if self.insert_pg:
            ins = self._tool("insert", os.path.join(TOOLS, "pg_insert_responder"),
                             extra={"BENCH_INSERT_PG": self.insert_pg})
        else:
            ins = self._tool("insert", os.path.join(TOOLS, "insert_responder"),
                             extra={"BENCH_INSERT_DB": self.insert_db})
        self.extra_conf = "\n".join([
            '$HTTP["url"] =~ "^/bench/min$" { fastcgi.server = ( "/bench/min" => %s ) }'
            % self._tool("min", minr),
            '$HTTP["url"] =~ "^/bench/insert$" { fastcgi.server = ( "/bench/insert" => %s ) }'
            % ins,
            '$HTTP["url"] =~ "^/minauth/" { fastcgi.server = ( "/minauth/" => %s ) }'
            % self._tool("minauth", minr, "authorizer"),
        ])
        if self.slow:
            # Their own entries (processes, sockets, databases): the shim
            # delays only the processes that preload it.
            self.extra_conf += ('\n$HTTP["url"] =~ "^/slowdisk/insert$" { fastcgi.server = '
                                '( "/slowdisk/" => %s ) }' % self._tool(
                                    "slowins", os.path.join(TOOLS, "insert_responder"),
                                    extra=dict(self.slow.environ("slowins"),
                                               BENCH_INSERT_DB=self.slow.insert_db)))
            if os.access(os.path.join(harness.CGI_DIR, "callback.fcgi"), os.X_OK):
                self.extra_conf += ('\n$HTTP["url"] =~ "^/slowdisk/callback$" { fastcgi.server = '
                                    '( "/slowdisk/" => %s ) }' % self._fcgi(
                                        "slowcb", "callback.fcgi",
                                        extra=dict(self.slow.environ("slowcb"),
                                                   DINGAUTH_CONFIG=self.slow.env.conf)))
        return super().config_text()


class SlowDisk:
    """The slow-disk pair: insert_responder and callback.fcgi with
    fsync_gate.so preloaded, FSYNC_DELAY_US (BENCH_FSYNC_DELAY_US) before
    every fsync and fdatasync, each call counted in a file of its entry's
    (FSYNC_GATE_DIR: a line per call, a few microseconds against the
    delay). callback.fcgi has a database of its own (env: an Env made like
    the bench's, seeded with the same users), since WAL readers and
    writers of the same file that do not preload the shim would sync
    without the delay; insert_responder has its own file too."""

    def __init__(self, fake):
        self.env = Env(fake=fake)
        self.insert_db = os.path.join(self.env.dir, "insert-ceiling.db")
        self.gates = {}
        for name in SLOW:
            self.gates[name] = os.path.join(self.env.dir, "fsync-" + name)
            os.makedirs(self.gates[name])

    def environ(self, name):
        envs = {"LD_PRELOAD": FSYNC_GATE, "FSYNC_DELAY_US": str(FSYNC_DELAY_US),
                "FSYNC_GATE_DIR": self.gates[name]}
        # An ASan build wants its runtime first in the link order; the shim
        # comes first (harmless for a program without ASan).
        asan = os.environ.get("ASAN_OPTIONS")
        envs["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        return envs

    def fsyncs(self, name):
        """fsync and fdatasync calls so far by the entry's processes."""
        try:
            with open(os.path.join(self.gates[name], "calls"), "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def settled_fsyncs(self, name):
        """The count once it has not moved for 0.3 s (requests in flight
        when wrk stopped still sync), at most 5 s."""
        last, since, end = self.fsyncs(name), time.time(), time.time() + 5
        while time.time() < end and time.time() - since < 0.3:
            time.sleep(0.05)
            n = self.fsyncs(name)
            if n != last:
                last, since = n, time.time()
        return last


def preloads_gate(pid):
    """Whether fsync_gate.so is mapped in process pid."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return any(line.rstrip().endswith("/fsync_gate.so") for line in f)
    except OSError:
        return False


def fcgi_processes(lighttpd_pid):
    """{pid: entry} of lighttpd's FastCGI children."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != lighttpd_pid:
                continue
            with open("/proc/%s/environ" % d, "rb") as f:
                envs = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for e in envs:
            if e.startswith(b"BENCH_ENTRY="):
                out[int(d)] = e.split(b"=", 1)[1].decode()
    return out


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def raw_http(port, method, target, headers=None, body=None, timeout=30):
    """One HTTP/1.1 request on a kept-alive connection, as wrk sends it.
    Returns (status, [(name, value)], body, size of the whole answer): wrk
    reports only bytes and statuses above 399, so the answer's size is how
    a run shows that it got the answer the preflight saw (a 302 to the
    login page instead of a grant would have another size)."""
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    hdrs = {"Host": "127.0.0.1:%d" % port}
    hdrs.update(headers or {})
    if body:
        hdrs["Content-Length"] = str(len(body))
    req = ("%s %s HTTP/1.1\r\n" % (method, target) +
           "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n").encode() + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = [b""]

    def fill(n):
        while len(buf[0]) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed early")
            buf[0] += chunk

    def line_at(pos):
        while b"\r\n" not in buf[0][pos:]:
            fill(len(buf[0]) + 1)
        end = buf[0].index(b"\r\n", pos)
        return buf[0][pos:end], end + 2

    try:
        sock.sendall(req)
        while b"\r\n\r\n" not in buf[0]:
            fill(len(buf[0]) + 1)
        head_end = buf[0].index(b"\r\n\r\n") + 4
        lines = buf[0][:head_end - 4].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hs = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        hd = {k.lower(): v for k, v in hs}
        if method == "HEAD" or status in (204, 304):
            return status, hs, b"", head_end
        if "content-length" in hd:
            n = int(hd["content-length"])
            fill(head_end + n)
            return status, hs, buf[0][head_end:head_end + n], head_end + n
        if "chunked" in hd.get("transfer-encoding", "").lower():
            pos, out = head_end, b""
            while True:
                size_line, pos = line_at(pos)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, pos = line_at(pos)
                    return status, hs, out, pos
                fill(pos + size + 2)
                out += buf[0][pos:pos + size]
                pos += size + 2
        raise RuntimeError("answer has neither Content-Length nor chunked encoding")
    finally:
        sock.close()


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

def write_pool(path, lines):
    with open(path, "w") as f:
        for method, target, headers, body in lines:
            f.write("%s\t%s\t%s\t%s\n" % (method, target, "\x01".join(headers), body or ""))
    return path


def wrk_cmd(url, pool, seconds, connections=CONNECTIONS):
    return ["wrk", "-t", str(THREADS), "-c", str(connections), "-d", "%ds" % seconds,
            "--timeout", "10s", "-s", POOL_LUA, url + "/", "--", pool, str(THREADS)]


def wrk_parse(stdout):
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            res = json.loads(line[len("BENCH-RESULT "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0
            res["ok_requests"] = res["requests"] - res["errors"]["status"]
            return res
    raise RuntimeError("wrk printed no result:\n" + stdout[-2000:])


def wrk(url, pool, seconds, connections=CONNECTIONS):
    p = subprocess.run(wrk_cmd(url, pool, seconds, connections), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=seconds + 60)
    res = wrk_parse(p.stdout)
    res["connections"] = connections
    return res


# ---------------------------------------------------------------------------
# The bench's own SQL on PostgreSQL (DB=pg)
# ---------------------------------------------------------------------------

def pg_bench_sql(query):
    """The bench's SQL (SQLite's dialect) for PostgreSQL: harness.pg_sql,
    and PRAGMA data_version (changes when another connection commits a
    write) as the next transaction id (moves when any transaction starts
    writing; reads take none). Not the WAL's position: the server writes WAL
    on its own (pruning pages while reading them, autovacuum, checkpoints),
    so it would show replays writing when they only read."""
    if query.strip() == "PRAGMA data_version":
        return "SELECT pg_snapshot_xmax(pg_current_snapshot())::text"
    if query.startswith("INSERT OR REPLACE INTO user_depts"):
        return harness.pg_sql(query.replace("OR REPLACE ", "")) + " ON CONFLICT DO NOTHING"
    return harness.pg_sql(query)


# pg_insert_responder's table: insert_responder's row.
PG_CEILING_TABLE = ("CREATE TABLE bench_rows (id bigserial PRIMARY KEY,"
                    " dedupe_key text NOT NULL UNIQUE, payload text NOT NULL,"
                    " received_at bigint NOT NULL)")


def pg_settings(uri):
    """What makes the server durable, as it reports it."""
    with pgtest.Conn(uri + "postgres") as c:
        return ", ".join("%s=%s" % (n, c.execute("SHOW " + n)[0][0])
                         for n in ("fsync", "synchronous_commit", "full_page_writes"))


class PgCon:
    """What the bench uses of a sqlite3 connection, on PostgreSQL."""

    def __init__(self, uri):
        self.c = pgtest.Conn(uri)
        self.rows = []

    def execute(self, query, params=()):
        self.rows = self.c.execute(pg_bench_sql(query), params)
        return self

    def executemany(self, query, seq):
        q = pg_bench_sql(query)
        for params in seq:
            self.c.execute(q, params)

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def rows_written_since(self, xid):
        """Whether a transaction from xid on (PRAGMA data_version's text
        here) inserted or updated a row of dingauth's tables. The next
        transaction id alone is not enough: autoanalyze takes ids too
        (pg_statistic), and the ceiling's own database shares the counter."""
        for (table,) in self.c.execute("SELECT tablename FROM pg_tables"
                                       " WHERE schemaname = 'public'"):
            if self.c.execute("SELECT 1 FROM %s WHERE xmin::text::bigint >= $1 LIMIT 1"
                              % table, (xid,)):
                return True
        return False

    def close(self):
        self.c.close()


# ---------------------------------------------------------------------------
# The bench
# ---------------------------------------------------------------------------

class Bench:
    def __init__(self):
        self.fake = None
        self.env = None
        self.httpd = None
        self.pids = {}
        self.results = {w[0]: [] for w in WORKLOADS}     # per round
        self.skipped = {}                                # name -> why
        self.notes = {w[0]: [] for w in WORKLOADS}
        self.served = {}                                 # entry -> requests since baseline
        self.baseline = {}                               # pid -> rss
        self.expect_size = {}                            # name -> bytes of one good answer
        self.warm_rps = {}                               # name -> warm-up rate (valid runs)
        self.seen_rps = {}                               # name -> best rate of any run (pool sizes)
        self.callback_user = 0
        self.memory = {}
        self.sync = None
        self.tmp = None
        self.fake_conn = None
        self.pg = None                                   # DB=pg: the server
        self.slow = None                                 # SlowDisk, when its rows run
        self.held = None                                 # held_check()'s findings
        self.started = time.time()

    # -- setup -----------------------------------------------------------------
    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="dingauth-bench-")
        self.fake = FakeDingTalk(qps=0, code_ttl=3600).start()
        if PG_MODE:
            # Kept before it starts: stop() ends it whenever the bench stops.
            self.pg = pgtest.PgServer(durable=True)
            self.pg.init().start()
            self.pg.make_template(lambda uri: subprocess.run(
                [os.path.join(harness.BUILD, "tools", "db_migrate"), uri], check=True,
                stdout=subprocess.DEVNULL))
            with pgtest.Conn(self.pg.db_uri("postgres")) as c:
                c.execute("CREATE DATABASE bench_ceiling")
            with pgtest.Conn(self.pg.db_uri("bench_ceiling")) as c:
                c.execute(PG_CEILING_TABLE)
            harness.PG = self.pg.uri
            say("PostgreSQL %s (durable: %s) at %s" % (
                os.path.basename(os.path.dirname(self.pg.bindir)), pg_settings(self.pg.uri),
                self.pg.uri))
        self.env = Env(fake=self.fake)
        self.pooldir = os.path.join(self.env.dir, "pools")
        os.makedirs(self.pooldir)
        self.insert_db = os.path.join(self.env.dir, "insert-ceiling.db")
        self.corp = self.fake.corp()
        cb = self.corp["callback"]
        self.crypto = fake_dingtalk.CallbackCrypto(cb["token"], cb["aes_key"], self.corp["corp_id"])
        self.ensure_schema(self.env)
        self.seed()
        if PG_MODE:
            for name in SLOW:
                self.skipped[name] = "SQLite only (fsync_gate.so delays the programs' own fsync)"
        elif not os.path.exists(FSYNC_GATE):
            for name in SLOW:
                self.skipped[name] = "%s is not built: run make" % FSYNC_GATE
        elif not ONLY or any(n in ONLY for n in SLOW):
            self.slow = SlowDisk(self.fake)
            self.ensure_schema(self.slow.env)
            con = self.db(self.slow.env)
            con.execute("BEGIN")
            self.seed_callback_users(con, int(time.time()))
            con.execute("COMMIT")
            con.close()
        www = os.path.join(self.env.dir, "www")
        for d in ("static", "protected", "minauth"):
            os.makedirs(os.path.join(www, d), exist_ok=True)
            with open(os.path.join(www, d, "index.html"), "w") as f:
                f.write(STATIC_BODY)
        self.httpd = BenchLighttpd(self.env, www, self.insert_db,
                                   self.pg.db_uri("bench_ceiling") if self.pg else None,
                                   self.slow).start()
        self.url = self.httpd.url
        # lighttpd spawns max-procs processes per entry; wait for all of them.
        want = PROCS * self.httpd.config_text().count('"bin-path"')
        for _ in range(100):
            self.pids = fcgi_processes(self.httpd.proc.pid)
            if len(self.pids) >= want:
                break
            time.sleep(0.1)
        self.fake_conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=30)

    def ensure_schema(self, env):
        """The database (dingauth init, in Env) opens in a program."""
        for prog, path in (("authorize.fcgi", "/dingauth/whoami"), ("login.fcgi", "/dingauth/login"),
                           ("callback.fcgi", "/dingauth/callback"), ("exchange.fcgi", "/dingauth/exchange")):
            if os.access(os.path.join(harness.CGI_DIR, prog), os.X_OK):
                env.cgi(prog, path=path)
                if self.has_schema(env):
                    return
        r = env.cmd("users", "list", "--json")
        if not self.has_schema(env):
            raise RuntimeError("no program could create the database: %s" % r.stderr[-500:])

    @staticmethod
    def has_schema(env):
        try:
            return env.has_table("sessions")
        except (sqlite3.Error, pgtest.PgError):
            return False

    def db(self, env=None):
        env = env or self.env
        if PG_MODE:
            return PgCon(env.db)
        con = sqlite3.connect(env.db, timeout=60, isolation_level=None)
        return con

    def env_of(self, name):
        """The Env whose database workload name writes."""
        return self.slow.env if name in SLOW and self.slow else self.env

    def seed(self):
        now = int(time.time())
        con = self.db()
        con.execute("BEGIN")
        users = []
        for u in self.corp["users"]:
            if u["userid"] in EXCHANGE_USERS:
                users.append((u["userid"], u["unionid"], u["name"]))
        users += [("az%04d" % i, "unaz%04d" % i, "Authz User %d" % i) for i in range(AUTHZ_SESSIONS)]
        self.seed_callback_users(con, now, users)
        self.cookies = []
        for i in range(AUTHZ_SESSIONS):
            cookie = secrets.token_hex(32)
            con.execute("INSERT INTO sessions (id_hash, userid, created_at, last_seen, expires_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (hashlib.sha256(cookie.encode()).digest(), "az%04d" % i, now, now,
                         now + 28800))
            self.cookies.append(cookie)
        con.execute("COMMIT")
        con.close()

    @staticmethod
    def seed_callback_users(con, now, users=()):
        """The departments, users (and the callback's CALLBACK_USERS) in
        con's open transaction."""
        con.executemany("INSERT OR REPLACE INTO departments (dept_id, parent_id, name, updated_at)"
                        " VALUES (?, ?, ?, ?)",
                        [(1, None, "Bench Co", now), (2, 1, "R&D", now), (3, 1, "Sales", now)])
        users = list(users)
        users += [("cb%05d" % i, "uncb%05d" % i, "Callback User %d" % i) for i in range(CALLBACK_USERS)]
        con.executemany("INSERT OR REPLACE INTO users (userid, unionid, name, active, disabled,"
                        " source, created_at, updated_at) VALUES (?, ?, ?, 1, 0, 'sync', ?, ?)",
                        [(a, b, c, now, now) for a, b, c in users])
        con.executemany("INSERT OR REPLACE INTO user_depts (userid, dept_id) VALUES (?, ?)",
                        [(u[0], d) for u in users for d in (2, 3)])

    # -- pools -----------------------------------------------------------------
    def pool_path(self, name, tag):
        return os.path.join(self.pooldir, "%s-%s.pool" % (name, tag))

    def callback_lines(self, n, path="/dingauth/callback"):
        lines = []
        for _ in range(n):
            uid = "cb%05d" % (self.callback_user % CALLBACK_USERS)
            self.callback_user += 1
            ts = str(int(time.time() * 1000))
            event = {"EventType": "user_leave_org", "UserId": [uid], "CorpId": self.corp["corp_id"],
                     "TimeStamp": ts}
            e = self.crypto.envelope(json.dumps(event, separators=(",", ":")), timestamp=ts)
            q = urllib.parse.urlencode([("signature", e["msg_signature"]),
                                        ("timestamp", e["timeStamp"]), ("nonce", e["nonce"])])
            lines.append(("POST", path + "?" + q, ["Content-Type: application/json"],
                          json.dumps({"encrypt": e["encrypt"]})))
        return lines

    def reactivate_callback_users(self, env=None):
        con = self.db(env)
        con.execute("UPDATE users SET active = 1, left_at = NULL WHERE userid LIKE 'cb%' AND active = 0")
        con.close()

    def mint(self, userid):
        body = json.dumps({"userid": userid, "kind": "tmp"})
        for attempt in range(2):
            try:
                self.fake_conn.request("POST", "/_fake/code", body=body,
                                       headers={"Content-Type": "application/json"})
                r = self.fake_conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError("mint: HTTP %d %r" % (r.status, data[:200]))
                return json.loads(data)["code"]
            except (http.client.HTTPException, OSError):
                self.fake_conn.close()
                self.fake_conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=30)
                if attempt:
                    raise

    def exchange_lines(self, n):
        """n logins: a code minted at the fake and a login state stored as
        state_create stores it (SHA-256 of the 43-character base64url text)."""
        now = int(time.time())
        lines, rows = [], []
        for i in range(n):
            state = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            code = self.mint(EXCHANGE_USERS[i % len(EXCHANGE_USERS)])
            rows.append((hashlib.sha256(state.encode()).digest(), "/app", now, now + 600))
            q = urllib.parse.urlencode([("code", code), ("state", state)])
            lines.append(("GET", "/dingauth/exchange?" + q, ["Cookie: dingauth_state=" + state], ""))
        con = self.db()
        con.execute("BEGIN")
        con.executemany("INSERT INTO login_states (state_hash, rd, created_at, expires_at)"
                        " VALUES (?, ?, ?, ?)", rows)
        con.execute("COMMIT")
        con.close()
        return lines

    def static_pool(self, name, method, target, headers=(), body=""):
        return write_pool(self.pool_path(name, "fixed"), [(method, target, list(headers), body)])

    # -- preflight: one request each, checked, before anything is timed ----------
    def get(self, method, target, headers=None, body=None, expect_for=None):
        st, hs, data, size = raw_http(self.httpd.port, method, target, headers, body)
        if expect_for:
            self.expect_size[expect_for] = size
        return st, hs, data

    def preflight(self):
        checks = {}

        def need_program(name):
            prog = PROGRAM.get(name)
            if prog and not os.access(os.path.join(harness.CGI_DIR, prog), os.X_OK):
                raise RuntimeError("%s is not built yet" % prog)

        def static():
            st, _, body = self.get("GET", "/static/index.html", expect_for="static")
            assert st == 200 and body.decode() == STATIC_BODY, (st, body[:200])
            return self.static_pool("static", "GET", "/static/index.html")

        def minr():
            st, _, body = self.get("GET", "/bench/min", expect_for="min")
            assert st == 200 and body == b"ok\n", (st, body[:200])
            return self.static_pool("min", "GET", "/bench/min")

        def insert():
            st, _, body = self.get("GET", "/bench/insert", expect_for="insert")
            assert st == 200 and body == b"ok\n", (st, body[:200])
            return self.static_pool("insert", "GET", "/bench/insert")

        def minauth():
            st, _, body = self.get("GET", "/minauth/index.html", expect_for="minauth")
            assert st == 200 and body.decode() == STATIC_BODY, (st, body[:200])
            return self.static_pool("minauth", "GET", "/minauth/index.html")

        def slow_entry(name):
            # The shim is in every process of the entry, and it sees their fsyncs.
            assert self.slow, "no slow-disk entries"
            pids = [p for p, e in self.pids.items() if e == ENTRY[name]]
            assert pids, "no %s processes" % ENTRY[name]
            missing = [p for p in pids if not preloads_gate(p)]
            assert not missing, "fsync_gate.so is not loaded in %r" % missing

        def push(name):
            need_program(name)
            env = self.env_of(name)
            method, target, headers, body = self.callback_lines(1, PUSH_PATH[name])[0]
            calls = self.slow.fsyncs(name) if name in SLOW else None
            st, hs, data = self.get(method, target, {"Content-Type": "application/json"}, body,
                                    expect_for=name)
            ok, why = self.crypto.check_reply(st, data.decode("utf-8", "replace"))
            assert ok, "push answered %d %r (%s)" % (st, data[:200], why)
            # The event is applied after the answer has gone out.
            uid = "cb%05d" % ((self.callback_user - 1) % CALLBACK_USERS)
            for _ in range(50):
                row = env.sql("SELECT active FROM users WHERE userid = ?", (uid,))
                if row and row[0][0] == 0:
                    break
                time.sleep(0.1)
            assert row and row[0][0] == 0, "user_leave_org was not applied: %r" % row
            if calls is not None:
                assert self.slow.fsyncs(name) > calls, "the stored push made no fsync the shim saw"
            return None      # pools are made per round

        def callback():
            return push("callback")

        def group():
            return push("group")

        def slowcb():
            slow_entry("slowcb")
            push("slowcb")
            try:
                self.held_check()
            except Exception as e:      # noqa: BLE001  the row runs all the same
                self.held = {"met": None, "error": str(e)[:300]}
                say("held fsync: could not check: %s" % e)
            return None

        def insert32():
            st, _, body = self.get("GET", "/bench/insert", expect_for="insert32")
            assert st == 200 and body == b"ok\n", (st, body[:200])
            return self.static_pool("insert32", "GET", "/bench/insert")

        def slowins():
            slow_entry("slowins")
            calls = self.slow.fsyncs("slowins")
            st, _, body = self.get("GET", "/slowdisk/insert", expect_for="slowins")
            assert st == 200 and body == b"ok\n", (st, body[:200])
            assert self.slow.fsyncs("slowins") > calls, "the insert made no fsync the shim saw"
            return self.static_pool("slowins", "GET", "/slowdisk/insert")

        def replay():
            need_program("replay")
            # Pushes stored once (during warm-up), then sent again and again.
            lines = self.callback_lines(500)
            pool = write_pool(self.pool_path("replay", "fixed"), lines)
            for method, target, headers, body in lines:
                st, _, data = self.get(method, target, {"Content-Type": "application/json"}, body)
                assert st == 200, "storing the replay pool: %d %r" % (st, data[:200])
            st, _, data = self.get(lines[0][0], lines[0][1], {"Content-Type": "application/json"},
                                   lines[0][3], expect_for="replay")
            ok, why = self.crypto.check_reply(st, data.decode("utf-8", "replace"))
            assert ok, "replayed push answered %d %r (%s)" % (st, data[:200], why)
            return pool

        def authorizer():
            need_program("authorizer")
            st, hs, body = self.get("GET", "/protected/index.html",
                                    {"Cookie": "dingauth_session=" + self.cookies[0]},
                                    expect_for="authorizer")
            assert st == 200 and body.decode() == STATIC_BODY, (st, body[:300])
            st, hs, body = self.get("GET", "/protected/index.html")
            assert st == 302, "no cookie should be redirected, got %d" % st
            lines = [("GET", "/protected/index.html", ["Cookie: dingauth_session=" + c], "")
                     for c in self.cookies]
            return write_pool(self.pool_path("authorizer", "fixed"), lines)

        def login():
            need_program("login")
            st, hs, body = self.get("GET", "/dingauth/login?rd=%2Fapp", expect_for="login")
            cookies = [v for k, v in hs if k.lower() == "set-cookie"]
            assert st == 200 and any(c.startswith("dingauth_state=") for c in cookies), \
                (st, hs, body[:300])
            return self.static_pool("login", "GET", "/dingauth/login?rd=%2Fapp")

        def exchange():
            need_program("exchange")
            # Two logins warm the token cache (the sns app and the corp token).
            for line in self.exchange_lines(2):
                method, target, headers, _ = line
                st, hs, body = self.get(method, target, {"Cookie": headers[0].split(": ", 1)[1]},
                                        expect_for="exchange")
                cookies = [v for k, v in hs if k.lower() == "set-cookie"]
                assert st == 302 and any(c.startswith("dingauth_session=") and
                                         not c.startswith("dingauth_session=;") for c in cookies), \
                    (st, hs, body[:400])
            return None

        fns = {"static": static, "min": minr, "insert": insert, "minauth": minauth,
               "callback": callback, "replay": replay, "authorizer": authorizer, "login": login,
               "exchange": exchange, "insert32": insert32, "group": group, "slowins": slowins,
               "slowcb": slowcb}
        for name, *_ in WORKLOADS:
            if name in self.skipped:
                say("preflight %-10s SKIPPED: %s" % (name, self.skipped[name]))
                continue
            if ONLY and name not in ONLY:
                self.skipped[name] = "not in BENCH_ONLY"
                continue
            try:
                checks[name] = fns[name]()
                say("preflight %-10s ok" % name)
            except Exception as e:      # noqa: BLE001  a skipped row, not a failed bench
                self.skipped[name] = "preflight failed: %s" % str(e).splitlines()[0][:300]
                say("preflight %-10s SKIPPED: %s" % (name, e))
        self.fixed_pools = checks

    def held_check(self):
        """No push is answered before the fsync that covers it: with the
        slow entries' fsyncs held (FSYNC_GATE_DIR/hold), HELD_PUSHES
        pushes at once get no answer for HELD_SECONDS; released, each
        gets its success and is stored. Sets self.held; a push answered
        while held is reported (a target), the row still runs."""
        lines = self.callback_lines(HELD_PUSHES, PUSH_PATH["slowcb"])
        before = self.counts(self.slow.env)["events"]
        hold = os.path.join(self.slow.gates["slowcb"], "hold")
        answers = [None] * len(lines)

        def send(i):
            method, target, headers, body = lines[i]
            try:
                st, _, data, _ = raw_http(self.httpd.port, method, target,
                                          {"Content-Type": "application/json"}, body)
                answers[i] = (time.time(), self.crypto.check_reply(
                    st, data.decode("utf-8", "replace"))[0])
            except Exception:       # noqa: BLE001  counted as not answered
                answers[i] = (time.time(), False)

        threads = [threading.Thread(target=send, args=(i,), daemon=True)
                   for i in range(len(lines))]
        open(hold, "w").close()
        try:
            for t in threads:
                t.start()
            time.sleep(HELD_SECONDS)
            early = sum(1 for a in answers if a is not None)
        finally:
            os.unlink(hold)
        for t in threads:
            t.join(30)
        ok = sum(1 for a in answers if a is not None and a[1])
        stored = self.settle(self.slow.env)["events"] - before
        self.quiesce(self.slow.env)
        self.held = {"pushes": len(lines), "held_s": HELD_SECONDS,
                     "answered_while_held": early, "success_after_release": ok,
                     "stored": stored, "met": early == 0 and ok == len(lines) and stored >= ok}
        say("held fsync: %d pushes, %d answered while held, %d successes after, %d stored" % (
            len(lines), early, ok, stored))

    # -- one timed run -------------------------------------------------------------
    def pool_for(self, name, seconds, tag):
        # Unique pools sized from the best rate seen so far, with room to spare:
        # a pool that runs out makes the round invalid.
        if name in PUSHES:
            # Any run's rate counts here, one whose pool ran out too: the
            # slow disk's pushes may outrun their ceiling many times over.
            rate = max(self.max_rps(CEILING[name]) or 1500, self.seen_rps.get(name, 0))
            n = max(3000, int(rate * seconds * 2.5))
            self.reactivate_callback_users(self.env_of(name))
            return write_pool(self.pool_path(name, tag),
                              self.callback_lines(min(n, CALLBACK_USERS), PUSH_PATH[name]))
        if name == "exchange":
            rate = self.max_rps("exchange") or 400
            n = min(8000, max(1500, int(rate * seconds * 2.5)))
            return write_pool(self.pool_path(name, tag), self.exchange_lines(n))
        return self.fixed_pools[name]

    def max_rps(self, name):
        rs = [r["rps"] for r in self.results.get(name, []) if r.get("valid")]
        if name in self.warm_rps:
            rs.append(self.warm_rps[name])
        return max(rs) if rs else None

    def counts(self, env=None):
        con = self.db(env)
        try:
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
            sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
            pending = con.execute("SELECT count(*) FROM events WHERE state = 'pending'").fetchone()[0]
            version = con.execute("PRAGMA data_version").fetchone()[0]
        finally:
            con.close()
        return {"events": events, "sessions": sessions, "pending": pending, "data_version": version}

    def settle(self, env=None):
        """Counts once they stop moving: lighttpd finishes the requests that
        were in flight when wrk closed its connections."""
        last = self.counts(env)
        for _ in range(50):
            time.sleep(0.2)
            now = self.counts(env)
            if (now["events"], now["sessions"], now["pending"]) == \
                    (last["events"], last["sessions"], last["pending"]):
                return now
            last = now
        return last

    def run(self, name, seconds, tag, count=True):
        """One wrk run of workload name; count: add its requests to the
        memory accounting of the program's processes."""
        pool = self.pool_for(name, seconds, tag)
        if name == "replay":
            self.drain_pending()
        before_stats = self.fake.stats() if name == "exchange" else None
        # A connection held open across the run sees any other connection's commit.
        watch = None
        if name == "replay":
            watch = self.db()
            v0 = watch.execute("PRAGMA data_version").fetchone()[0]
            c0 = watch.execute("SELECT count(*) FROM events").fetchone()[0]
        env = self.env_of(name)
        before = self.counts(env) if name in PUSHES + ("exchange",) else None
        calls = self.slow.fsyncs(name) if name in SLOW else None
        res = wrk(self.url, pool, seconds, CONNS.get(name, CONNECTIONS))
        res["tag"] = tag
        self.seen_rps[name] = max(self.seen_rps.get(name, 0), res["rps"])
        if name in PUSHES + ("exchange",):
            after = self.settle(env)    # requests in flight when wrk stopped still finish
            if name in PUSHES:
                res["stored"] = after["events"] - before["events"]
                res["pending_after"] = after["pending"]
            else:
                res["sessions_opened"] = after["sessions"] - before["sessions"]
        if watch is not None:
            if PG_MODE:
                res["writes_seen"] = watch.rows_written_since(v0)
            else:
                res["writes_seen"] = watch.execute("PRAGMA data_version").fetchone()[0] != v0
            res["stored"] = watch.execute("SELECT count(*) FROM events").fetchone()[0] - c0
            watch.close()
        if name == "exchange":
            after_stats = self.fake.stats()
            res["fake"] = self.fake_delta(before_stats, after_stats)
        self.quiesce(env)
        if calls is not None:
            # After the quiet spell: every answered request's fsync is in.
            res["fsyncs"] = self.slow.settled_fsyncs(name) - calls
        entry = ENTRY[name]
        if entry and count:
            self.served[entry] = self.served.get(entry, 0) + res["requests"]
        return res

    @staticmethod
    def fake_delta(a, b):
        paths = {}
        for p, n in b["by_path"].items():
            d = n - a["by_path"].get(p, 0)
            if d:
                paths[p] = d
        return {"api_connections": b["api_connections"] - a["api_connections"],
                "requests": b["requests"] - a["requests"], "by_path": paths}

    def check(self, name, res):
        """Notes on a run that make its number suspect; res["valid"] is False
        when the run did not measure what it claims (its rate is left out of
        the medians and ratios)."""
        notes = []
        e = res["errors"]
        n = max(1, res["requests"])
        invalid = False
        if e["status"]:
            notes.append("%d answers with status >= 400" % e["status"])
            invalid = invalid or e["status"] > 0.01 * n
        # wrk counts the connections it cuts at the end as read errors.
        sock = e["connect"] + e["write"] + e["timeout"] + max(0, e["read"] - res["connections"])
        if sock:
            notes.append("socket errors %r" % e)
            invalid = invalid or sock > 0.01 * n
        want = self.expect_size.get(name)
        if want and res["requests"]:
            got = res["bytes"] / float(res["requests"])
            res["bytes_per_answer"] = round(got, 1)
            if abs(got - want) > max(24, 0.1 * want):
                notes.append("answers average %.0f bytes, the checked answer had %d: "
                             "not the same answer" % (got, want))
                invalid = True
        if name in PUSHES + ("exchange",) and res["wraps"]:
            notes.append("pool ran out (%d wraps): some requests were repeats" % res["wraps"])
            invalid = True
        if name in PUSHES and res.get("stored", 0) < res["ok_requests"]:
            notes.append("stored %d events for %d answers" % (res["stored"], res["ok_requests"]))
            invalid = True
        if name == "replay" and (res.get("writes_seen") or res.get("stored")):
            notes.append("replays wrote to the database (stored %d)" % res.get("stored", 0))
        if name == "exchange" and res.get("sessions_opened", 0) < 0.99 * res["ok_requests"]:
            notes.append("%d sessions for %d answers" % (res["sessions_opened"], res["ok_requests"]))
            invalid = True
        res["valid"] = not invalid
        if invalid:
            notes.append("run left out of the medians")
        return notes

    def active(self, order=False):
        names = ORDER if order else [w[0] for w in WORKLOADS]
        return [n for n in names if n not in self.skipped]

    def quiesce(self, env=None):
        """Wait until nothing commits to the database for 0.3 s: requests in
        flight when wrk closed its connections still finish (and write), and
        must not land in the next workload's run."""
        con = self.db(env)
        try:
            last, stable_since, end = None, time.time(), time.time() + 5
            while time.time() < end:
                v = con.execute("PRAGMA data_version").fetchone()[0]
                if v != last:
                    last, stable_since = v, time.time()
                elif time.time() - stable_since >= 0.3:
                    break
                time.sleep(0.05)
        finally:
            con.close()

    def drain_pending(self):
        """Events a callback round left pending are applied by the next push;
        the replay round must not be the one that does it."""
        if not self.counts()["pending"]:
            return
        method, target, headers, body = self.callback_lines(1)[0]
        self.get(method, target, {"Content-Type": "application/json"}, body)
        for _ in range(50):
            if not self.counts()["pending"]:
                break
            time.sleep(0.1)
        self.quiesce()

    def warmup(self):
        for name in self.active():
            try:
                res = self.run(name, WARMUP, "warmup", count=False)
                n = self.check(name, res)
                if res["valid"]:
                    self.warm_rps[name] = res["rps"]
                say("warm-up  %-10s %8.0f req/s%s" % (name, res["rps"], ("  [" + "; ".join(n) + "]") if n else ""))
            except Exception as e:      # noqa: BLE001
                self.skipped[name] = "warm-up failed: %s" % e
                say("warm-up  %-10s FAILED: %s" % (name, e))
        self.served = {}
        self.pids = fcgi_processes(self.httpd.proc.pid)
        self.baseline = {pid: rss_kb(pid) for pid in self.pids}

    def rounds(self):
        for rnd in range(1, ROUNDS + 1):
            for name in self.active(order=True):
                try:
                    res = self.run(name, SECONDS, "r%d" % rnd)
                except Exception as e:      # noqa: BLE001
                    self.notes[name].append("round %d failed: %s" % (rnd, e))
                    say("round %d %-10s FAILED: %s" % (rnd, name, e))
                    continue
                res["notes"] = self.check(name, res)
                self.results[name].append(res)
                extra = ""
                if name == "exchange":
                    f = res["fake"]
                    logins = max(1, res.get("sessions_opened", 0))
                    extra = "  calls/login %.2f  new conns %d" % (f["requests"] / logins,
                                                                  f["api_connections"])
                say("round %d %-10s %8.0f req/s  p99 %7.2f ms%s%s" % (
                    rnd, name, res["rps"], res["latency_us"]["p99"] / 1000.0, extra,
                    ("  [" + "; ".join(res["notes"]) + "]") if res["notes"] else ""))
        self.after_rounds = {pid: rss_kb(pid) for pid in self.pids}
        self.served_rounds = dict(self.served)

    # -- memory ----------------------------------------------------------------------
    def memory_phase(self):
        """Top up each dingauth program to MEM_REQUESTS requests since the
        baseline (capped at MEM_SECONDS), then read VmRSS again. The
        replay, authorizer and login top-ups run at once, exchange's after
        them: every login page stores a state and at most STATE_MAX (1024,
        include/session.h) live ones are kept, the oldest evicted first, so
        a login flood alongside would evict the exchange pool's states and
        every exchange would fail."""
        topup = {"callback": "replay", "authz0": "authorizer", "login": "login",
                 "exchange": "exchange"}
        batches = ([], [])
        for entry, name in topup.items():
            if name in self.skipped or ENTRY[name] != entry:
                continue
            if self.served.get(entry, 0) >= MEM_REQUESTS:
                continue
            batches[name == "exchange"].append((entry, name))
        for batch in batches:
            self.topup(batch)

    def topup(self, batch):
        """The wrk runs of one batch of top-ups, at once (MEM_SECONDS)."""
        procs = []
        try:
            for entry, name in batch:
                if name == "exchange":
                    rate = self.max_rps("exchange") or 200
                    want = MEM_REQUESTS - self.served.get(entry, 0)
                    n = int(min(want, rate * MEM_SECONDS * 1.3, 10000))    # minting: ~1 ms each
                    pool = write_pool(self.pool_path(name, "mem"),
                                      self.exchange_lines(max(n, 100)))
                else:
                    pool = self.fixed_pools[name]
                procs.append((entry, name, subprocess.Popen(
                    wrk_cmd(self.url, pool, MEM_SECONDS), stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True)))
            deadline = time.time() + MEM_SECONDS + 60
            for entry, name, p in procs:
                try:
                    out, _ = p.communicate(timeout=max(1, deadline - time.time()))
                    res = wrk_parse(out)
                    self.served[entry] = self.served.get(entry, 0) + res["requests"]
                    say("memory top-up %-10s %8d requests (%d errors)" % (
                        name, res["requests"], res["errors"]["status"]))
                except Exception as e:      # noqa: BLE001
                    say("memory top-up %s failed: %s" % (name, e))
        finally:
            for _, _, p in procs:       # none outlives the bench, even on Ctrl-C
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def memory_read(self):
        """VmRSS of every FastCGI process after the top-ups."""
        time.sleep(0.5)
        now = fcgi_processes(self.httpd.proc.pid)
        for pid, entry in sorted(self.pids.items(), key=lambda kv: (kv[1], kv[0])):
            m = self.memory.setdefault(entry, {
                "requests": self.served.get(entry, 0),
                "topup_requests": self.served.get(entry, 0) - self.served_rounds.get(entry, 0),
                "processes": []})
            final = rss_kb(pid) if pid in now else None
            m["processes"].append({"pid": pid, "baseline_kb": self.baseline.get(pid),
                                   "after_rounds_kb": self.after_rounds.get(pid), "final_kb": final,
                                   "alive": pid in now})
        for pid, entry in now.items():
            if pid not in self.pids:
                self.memory.setdefault(entry, {"requests": 0, "processes": []})
                self.memory[entry].setdefault("respawned", []).append(pid)

    # -- sync (tests/bench/sync.py, another engineer's) ----------------------------------
    def sync_phase(self):
        """tests/bench/sync.py (its defaults: 50,000 users in 2,000 departments,
        the fake's rate limit and DINGAUTH_SYNC_QPS at 1000), run with the same
        fake as the rest of the bench. It prints one JSON object."""
        if ONLY and "sync" not in ONLY:
            self.sync = {"status": "skipped", "why": "not in BENCH_ONLY"}
            return
        if PG_MODE:
            self.sync = {"status": "skipped", "why": "SQLite only (make bench)"}
            return
        if not os.path.exists(SYNC_PY):
            self.sync = {"status": "missing", "why": "tests/bench/sync.py does not exist yet"}
            return
        say("sync: running tests/bench/sync.py (timeout %d s)" % SYNC_TIMEOUT)
        t0 = time.time()
        p = subprocess.Popen(["/usr/bin/python3", SYNC_PY], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=SYNC_TIMEOUT)
        except Stop:
            harness.kill_tree(p)        # its own session: Ctrl-C did not reach it
            raise
        except subprocess.TimeoutExpired:
            harness.kill_tree(p)
            out, err = p.communicate()
            self.sync = {"status": "timeout", "why": "sync.py ran over %d s (BENCH_SYNC_TIMEOUT)"
                         % SYNC_TIMEOUT, "output_tail": (out + err)[-1500:]}
            return
        try:
            data = json.loads(out)
        except ValueError:
            data = None
        self.sync = {"status": "ran" if p.returncode == 0 else "failed (exit %d)" % p.returncode,
                     "elapsed_s": round(time.time() - t0, 1), "result": data,
                     "output_tail": (out + err)[-1500:] if data is None or p.returncode else ""}

    # -- stop ------------------------------------------------------------------------
    def stop(self):
        """Ends everything the bench started (lighttpd and its programs, the
        fake, the run's directory, the PostgreSQL server), whatever state
        start() reached; a signal meanwhile is ignored."""
        STOPPING.append(True)
        try:
            if self.httpd is not None:
                kids = fcgi_processes(self.httpd.proc.pid) if self.httpd.proc else {}
                self.httpd.stop()
                # lighttpd ends its backends; any it left behind are ended by pid.
                for pid in set(kids) | set(self.pids):
                    try:
                        os.kill(pid, 0)
                    except OSError:
                        continue
                    try:
                        with open("/proc/%d/environ" % pid, "rb") as f:
                            if b"BENCH_ENTRY=" not in f.read():
                                continue
                        os.kill(pid, signal.SIGTERM)
                    except OSError:
                        pass
            try:
                self.fake_conn.close()
            except Exception:       # noqa: BLE001
                pass
            if self.fake is not None:
                self.fake.stop()
            for env in (self.env, self.slow.env if self.slow else None):
                if env is None:
                    continue
                if os.environ.get("BENCH_KEEP") == "1":
                    say("kept %s" % env.dir)
                else:
                    env.close()
        finally:
            if self.pg is not None:
                self.pg.close()
                self.pg = None
            STOPPING.clear()

    def cleanup(self):
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def fmt_rps(s):
    if s is None:
        return "-"
    return "%.0f (%.0f-%.0f)" % (s["median"], s["min"], s["max"])


def fmt_ratio(s):
    if s is None:
        return "-"
    return "%.2f (%.2f-%.2f)" % (s["median"], s["min"], s["max"])


def summarize(b):
    rows = {}
    by_tag = {}
    for name in b.results:
        for r in b.results[name]:
            if r.get("valid"):
                by_tag.setdefault(name, {}).setdefault(r["tag"], []).append(r["rps"])

    def ratios_to(rs, ceiling):
        out = []
        for r in rs:
            c = by_tag.get(ceiling, {}).get(r["tag"])
            if c and statistics.mean(c) > 0:
                out.append(r["rps"] / statistics.mean(c))
        return out

    for name, label, entry, ceiling, target in WORKLOADS:
        if name in b.skipped:
            rows[name] = {"label": label, "skipped": b.skipped[name]}
            continue
        all_rs = b.results[name]
        rs = [r for r in all_rs if r.get("valid")]
        row = {"label": label, "ceiling": ceiling, "target": target,
               "valid_runs": len(rs), "runs": len(all_rs),
               "rps": spread([r["rps"] for r in rs]),
               "p99_ms": spread([r["latency_us"]["p99"] / 1000.0 for r in rs]),
               "p50_ms": spread([r["latency_us"]["p50"] / 1000.0 for r in rs]),
               "rounds": [{k: r.get(k) for k in ("tag", "rps", "requests", "errors", "latency_us",
                                                 "wraps", "stored", "sessions_opened", "fake",
                                                 "writes_seen", "valid", "notes", "connections",
                                                 "fsyncs")} for r in all_rs],
               "notes": ["%s: %s" % (r["tag"], "; ".join(r["notes"])) for r in all_rs if r.get("notes")]
               + b.notes[name]}
        if name in ALSO and ALSO[name] not in b.skipped:
            row["ratio_to_" + ALSO[name]] = spread(ratios_to(rs, ALSO[name]))
        if ceiling and ceiling not in b.skipped:
            row["ratio"] = spread(ratios_to(rs, ceiling))
            if target is not None and row["ratio"]:
                row["met"] = row["ratio"]["median"] >= target
        if CONNS.get(name):
            row["connections"] = CONNS[name]
        if name in SLOW:
            row["fsync_delay_us"] = FSYNC_DELAY_US
            acks = sum(r["ok_requests"] for r in rs)
            row["fsyncs_per_ack"] = sum(r["fsyncs"] for r in rs) / acks if acks else None
        if name == "slowcb" and b.held:
            row["held"] = b.held
        if name == "slowcb" and rs:
            # DingTalk waits DEADLINE_MS for an answer: the worst round's p99.
            worst = max(r["latency_us"]["p99"] for r in rs) / 1000.0
            row["deadline_ms"] = DEADLINE_MS
            row["p99_worst_ms"] = worst
            row["p99_met"] = worst <= DEADLINE_MS
        if name == "exchange" and rs:
            logins = sum(r.get("sessions_opened", 0) for r in rs)
            calls, conns, paths = 0, 0, {}
            for r in rs:
                f = r["fake"]
                calls += f["requests"]
                conns += f["api_connections"]
                for p, n in f["by_path"].items():
                    paths[p] = paths.get(p, 0) + n
            per_login = {p: n / logins for p, n in sorted(paths.items())} if logins else {}
            token_calls = sum(paths.get(p, 0) for p in TOKEN_PATHS)
            row["logins"] = logins
            row["calls_per_login"] = calls / logins if logins else None
            row["calls_per_login_by_path"] = per_login
            row["token_calls"] = token_calls
            row["new_connections"] = conns
            row["new_connections_per_1000"] = 1000.0 * conns / logins if logins else None
            exact = set(paths) == set(SNS_FLOW_CALLS) and all(
                abs(per_login.get(p, 0) - n) < 0.02 for p, n in SNS_FLOW_CALLS.items())
            row["calls_met"] = bool(logins) and exact and token_calls == 0
            row["connections_met"] = bool(logins) and row["new_connections_per_1000"] <= PROCS
            row["met"] = row["calls_met"] and row["connections_met"]
        rows[name] = row
    mem = {}
    for entry, m in sorted(b.memory.items()):
        if not m["requests"]:
            continue        # an entry the bench does not drive (the /dingauth/auth responder)
        procs = []
        for p in m["processes"]:
            g = (p["final_kb"] - p["baseline_kb"]) if p["final_kb"] is not None and p["baseline_kb"] else None
            late = (p["final_kb"] - p["after_rounds_kb"]) if p["final_kb"] is not None and p["after_rounds_kb"] else None
            procs.append(dict(p, growth_kb=g, growth_after_rounds_kb=late))
        growths = [p["growth_kb"] for p in procs if p["growth_kb"] is not None]
        n = m["requests"]
        worst = max(growths) if growths else None
        dingauth = entry in ("callback", "authz0", "login", "exchange")
        alive = all(p["alive"] for p in procs) and not m.get("respawned")
        # Under MEM_REQUESTS requests a growth below 1 MB is only a partial
        # pass (ok*): RSS moves in steps (malloc trims, SQLite's page cache
        # fills up to its 2 MB default), so a linear extrapolation would
        # turn a one-off step into a leak. It is kept in the JSON for reference.
        met = None
        if dingauth:
            met = worst is not None and worst < 1024 and alive
        lates = [p["growth_after_rounds_kb"] for p in procs if p["growth_after_rounds_kb"] is not None]
        mem[entry] = {"requests": n, "processes": procs, "worst_growth_kb": worst,
                      "topup_requests": m.get("topup_requests", 0),
                      "worst_growth_during_topup_kb": max(lates) if lates else None,
                      "linear_extrapolation_per_100k_kb":
                          worst * MEM_REQUESTS / n if worst is not None and n else None,
                      "partial": n < MEM_REQUESTS, "respawned": m.get("respawned", []),
                      "met": met}
    return rows, mem


def held_text(h):
    if h.get("error"):
        return "not checked (%s)" % h["error"]
    return ("%d pushes sent at once, %d answered while held; released, %d successes, %d stored"
            % (h["pushes"], h["answered_while_held"], h["success_after_release"], h["stored"]))


def print_table(b, rows, mem, meta):
    print()
    print("dingauth bench (%s): %s" % ("PostgreSQL" if PG_MODE else "SQLite", meta["setup"]))
    head = "%-26s %-22s %-9s %-20s %-7s %-8s" % ("workload", "req/s median (min-max)", "ceiling",
                                                  "ratio median (min-max)", "target", "p99 ms")
    print(head)
    print("-" * len(head))
    for name, label, entry, ceiling, target in WORKLOADS:
        r = rows[name]
        if "skipped" in r:
            print("%-26s %s" % (label, "not run: " + r["skipped"]))
            continue
        met = ""
        if target is not None and r.get("ratio"):
            met = ">=%.2f %s" % (target, "ok" if r["met"] else "MISS")
        elif name == "exchange" and "met" in r:
            met = "see below"
        print("%-26s %-22s %-9s %-20s %-7s %-8s" % (
            label, fmt_rps(r["rps"]), ceiling or "-", fmt_ratio(r.get("ratio")), met or "-",
            "%.2f" % r["p99_ms"]["median"] if r["p99_ms"] else "-"))
        if r["valid_runs"] < r["runs"]:
            print("%-26s   ! %d of %d runs valid" % ("", r["valid_runs"], r["runs"]))
        if r.get("ratio_to_" + ALSO.get(name, "-")):
            print("%-26s   ratio to %s: %s" % ("", LABEL[ALSO[name]], fmt_ratio(r["ratio_to_" + ALSO[name]])))
        if name in ("group", "slowcb"):
            print("%-26s   durable acks/s under %d concurrent pushes vs one fsync per request"
                  % ("", CONNS[name]))
        if name in SLOW and r.get("fsyncs_per_ack") is not None:
            print("%-26s   fsync delayed %d us (fsync_gate.so): %.2f fsyncs per answer" % (
                "", r["fsync_delay_us"], r["fsyncs_per_ack"]))
        if r.get("held"):
            h = r["held"]
            print("%-26s   fsyncs held %.1f s: %s" % ("", HELD_SECONDS, held_text(h)))
        if "p99_met" in r:
            print("%-26s   p99 worst round %.1f ms: within DingTalk's %d ms -> %s" % (
                "", r["p99_worst_ms"], r["deadline_ms"], "ok" if r["p99_met"] else "MISS"))
        for n in r.get("notes", []):
            print("%-26s   ! %s" % ("", n))
    ex = rows.get("exchange", {})
    if "logins" in ex:
        print()
        print("exchange: %d logins; DingTalk calls per login %.2f (%s); token calls %d -> %s" % (
            ex["logins"], ex["calls_per_login"] or 0,
            ", ".join("%s %.2f" % (p, n) for p, n in ex["calls_per_login_by_path"].items()),
            ex["token_calls"], "ok" if ex["calls_met"] else "MISS"))
        print("exchange: new TCP connections to DingTalk %d = %.2f per 1,000 logins (target <= %d) -> %s" % (
            ex["new_connections"], ex["new_connections_per_1000"] or 0, PROCS,
            "ok" if ex["connections_met"] else "MISS"))
    print()
    s = b.sync or {}
    if s.get("checks"):
        for c in s["checks"]:
            print("sync: %s -> %s" % (c["text"], "ok" if c["met"] else "MISS"))
    else:
        print("sync: %s%s" % (s.get("status", "not run"), (" - " + s["why"]) if s.get("why") else ""))
    if s.get("output_tail"):
        for line in s["output_tail"].splitlines()[-10:]:
            print("sync:   %s" % line)
    print()
    print("memory (VmRSS per FastCGI process, kB: after warm-up -> after the rounds -> after the top-up)")
    print("%-10s %-9s %-50s %-22s %s" % ("entry", "requests", "per process: baseline -> rounds -> final (growth)",
                                          "top-up: requests, growth", "growth < 1 MB / %dk req" % (MEM_REQUESTS // 1000)))
    for entry, m in mem.items():
        ps = "; ".join("%s->%s->%s (%+d)" % (p["baseline_kb"], p["after_rounds_kb"], p["final_kb"],
                                              p["growth_kb"] or 0)
                       if p["final_kb"] is not None else "%s->died" % p["baseline_kb"]
                       for p in m["processes"])
        tu = "%d, %+d kB" % (m["topup_requests"], m["worst_growth_during_topup_kb"] or 0) \
            if m["topup_requests"] else "-"
        met = "-" if m["met"] is None else ("MISS" if not m["met"] else (
            "ok* (only %d requests)" % m["requests"] if m["partial"] else "ok"))
        print("%-10s %-9d %-50s %-22s %s" % (entry, m["requests"], ps, tu, met))
        if m["respawned"]:
            print("%-10s   ! processes respawned during the run: %s" % ("", m["respawned"]))
    print()
    print("targets:")
    for t in meta["targets"]:
        print("  %-4s %s" % (("ok*" if t.get("partial") else "ok") if t["met"] else
                             ("MISS" if t["met"] is False else "n/a"), t["text"]))


def targets(b, rows, mem):
    out = []

    def add(text, met, partial=False):
        out.append({"text": text, "met": met, "partial": partial})

    for name in ("callback", "authorizer", "login"):
        r = rows[name]
        if "skipped" in r:
            add("%s >= %.2f x %s ceiling: not run" % (name, TARGET[name], CEILING[name]), None)
        elif r.get("ratio"):
            add("%s >= %.2f x %s ceiling: %.2f" % (name, TARGET[name], CEILING[name],
                                                   r["ratio"]["median"]), r["met"])
    for name in ("group", "slowcb"):
        r = rows[name]
        what = "%s: durable acks/s under %d concurrent pushes >= %.2f x one fsync per request (%s)" % (
            name, CONNS[name], TARGET[name], CEILING[name])
        if name == "slowcb":
            what += ", fsync delayed %d us" % FSYNC_DELAY_US
        if "skipped" in r:
            add("%s: not run" % what, None)
        elif r.get("ratio"):
            add("%s: %.2f" % (what, r["ratio"]["median"]), r["met"])
        if r.get("held"):
            add("slowcb: no push answered before its fsync: %s" % held_text(r["held"]),
                r["held"]["met"])
        if "p99_met" in r:
            add("slowcb: p99 within DingTalk's %d ms, fsync delayed %d us: worst round %.1f ms"
                % (DEADLINE_MS, FSYNC_DELAY_US, r["p99_worst_ms"]), r["p99_met"])
    ex = rows["exchange"]
    if "logins" in ex:
        add("exchange: only the flow's calls (%s), no token calls while warm: %.2f calls/login, %d token calls"
            % (" + ".join(SNS_FLOW_CALLS), ex["calls_per_login"] or 0, ex["token_calls"]), ex["calls_met"])
        add("exchange: new connections per 1,000 logins <= %d: %.2f" % (
            PROCS, ex["new_connections_per_1000"] or 0), ex["connections_met"])
    else:
        add("exchange: not run", None)
    s = b.sync or {}
    if s.get("checks"):
        for c in s["checks"]:
            add(c["text"], c["met"])
    else:
        add("sync: %s%s" % (s.get("status", "not run"), (" - " + s["why"]) if s.get("why") else ""),
            None)
    for entry in ("callback", "authz0", "login", "exchange"):
        m = mem.get(entry)
        if m and m["met"] is not None:
            add("memory %s: RSS growth < 1 MB per process over %d requests: worst %+.0f kB over %d%s"
                % (entry, MEM_REQUESTS, m["worst_growth_kb"] or 0, m["requests"],
                   " (fewer requests than the target's)" if m["partial"] else ""),
                m["met"], m["partial"])
    return out


def sync_targets(b):
    """The issue's sync target for each run sync.py reports: wall time <=
    1.2 x (requests / QPS limit) + 5 s and peak RSS <= 64 MB."""
    s = b.sync or {}
    res = s.get("result") or {}
    qps = res.get("qps")
    checks = []
    for run in res.get("runs") or []:
        wall, reqs, rss = run.get("wall_seconds"), run.get("requests"), run.get("peak_rss_kb")
        if None in (wall, reqs, rss, qps) or run.get("exit") != 0:
            checks.append({"run": run.get("run"), "met": False,
                           "text": "%s: exit %s, no figures" % (run.get("run"), run.get("exit"))})
            continue
        limit = 1.2 * (reqs / float(qps)) + 5
        checks.append({
            "run": run.get("run"), "met": wall <= limit and rss <= 64 * 1024,
            "wall_met": wall <= limit, "rss_met": rss <= 64 * 1024, "limit_s": round(limit, 1),
            "text": "%s sync: wall %.1f s (limit 1.2 x %d/%d + 5 = %.1f s), peak RSS %.1f MB "
                    "(limit 64 MB), %s users, %s departments"
                    % (run.get("run"), wall, reqs, qps, limit, rss / 1024.0, run.get("users"),
                       run.get("departments"))})
    if checks:
        s["checks"] = checks


def beside_sqlite(rows):
    """DB=pg: each compared row beside the last SQLite run's (build/bench.json,
    same rows, same targets): the ratio to its ceiling measured in its own
    run (min: the same program on both; insert: each engine's own durable
    insert), and req/s for reference (absolute rates of two runs are not
    comparable). Printed, and returned for the JSON."""
    try:
        with open(SQLITE_OUT) as f:
            doc = json.load(f)
        sq, sq_date = doc.get("workloads", {}), doc.get("meta", {}).get("date", "?")
    except (OSError, ValueError):
        sq, sq_date = {}, None
    out = {}
    print()
    print("PostgreSQL beside SQLite (%s): ratio to the ceiling measured in the same run, "
          "median (min-max)" % ("build/bench.json of %s" % sq_date if sq else
                                "no SQLite run in build/bench.json: make bench first"))
    print("ceilings: min = the plain FastCGI responder on both; insert = one durable insert "
          "on the same engine (SQLite WAL synchronous=FULL / PostgreSQL fsync + synchronous_commit)")
    head = "%-26s %-8s %-19s %-19s %-6s %-20s %s" % (
        "row", "ceiling", "SQLite ratio", "PostgreSQL ratio", "target", "SQLite req/s",
        "PostgreSQL req/s")
    print(head)
    print("-" * len(head))
    for name in ("authorizer", "callback", "replay", "login", "exchange", "group", "min", "insert",
                 "insert32"):
        pg, s = rows.get(name) or {}, sq.get(name) or {}
        target = TARGET.get(name)
        out[name] = {"ceiling": CEILING.get(name), "target": target,
                     "sqlite": s.get("ratio"), "postgresql": pg.get("ratio"),
                     "sqlite_rps": s.get("rps"), "postgresql_rps": pg.get("rps")}
        print("%-26s %-8s %-19s %-19s %-6s %-20s %s" % (
            LABEL[name] if not name.startswith("insert") else LABEL[name].replace(" (pg)", ""), CEILING.get(name) or "-",
            fmt_ratio(s.get("ratio")), fmt_ratio(pg.get("ratio")),
            "%.2f" % target if target else "-", fmt_rps(s.get("rps")), fmt_rps(pg.get("rps"))))
    return out


def lighttpd_version():
    try:
        out = subprocess.run(["/usr/sbin/lighttpd", "-v"], stdout=subprocess.PIPE, text=True).stdout
        m = re.search(r"lighttpd/(\S+)", out)
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    b = Bench()
    rc = 0
    try:
        b.start()
        say("lighttpd %s on %s; FastCGI processes: %s" % (
            lighttpd_version(), b.url,
            ", ".join("%s:%d" % (e, p) for p, e in sorted(b.pids.items(), key=lambda kv: kv[1]))))
        b.preflight()
        b.warmup()
        b.rounds()
        b.memory_phase()
        b.memory_read()
    except Stop as e:
        say("stopped: %s" % e)
        rc = STOPPED
    except Exception as e:      # noqa: BLE001  report what we have
        import traceback
        traceback.print_exc()
        say("bench aborted: %s" % e)
        rc = 1
    finally:
        b.stop()
    try:
        if rc == 0:
            b.sync_phase()
            sync_targets(b)
    except Stop:
        rc = STOPPED
    finally:
        b.cleanup()
    rows, mem = summarize(b)
    meta = {
        "setup": "%d rounds x %d s (+%d s warm-up), wrk -t%d -c%d (-c%d: the -c%d rows), lighttpd %s, "
                 "FastCGI max-procs %d, %d CPUs, loopback" % (
                     ROUNDS, SECONDS, WARMUP, THREADS, CONNECTIONS, GROUP_CONNECTIONS,
                     GROUP_CONNECTIONS, lighttpd_version(), PROCS, os.cpu_count() or 0),
        "host": platform.node(), "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip(),
        "rounds": ROUNDS, "seconds": SECONDS, "threads": THREADS, "connections": CONNECTIONS,
        "mem_requests": MEM_REQUESTS, "group_connections": GROUP_CONNECTIONS,
        "fsync_delay_us": FSYNC_DELAY_US,
    }
    meta["targets"] = targets(b, rows, mem)
    meta["database"] = "postgresql" if PG_MODE else "sqlite"
    print_table(b, rows, mem, meta)
    doc = {"meta": meta, "workloads": rows, "memory": mem, "sync": b.sync}
    if PG_MODE:
        doc["beside_sqlite"] = beside_sqlite(rows)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print()
    print("JSON: %s  (%.0f s)" % (OUT, time.time() - b.started))
    return rc


if __name__ == "__main__":
    sys.exit(main())
