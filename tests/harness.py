"""Shared helpers for the Python integration tests (run with /usr/bin/python3).

Every check prints "ok - NAME" or "not ok - NAME"; tests/run counts them.
Typical use:

    from harness import T, Env
    t = T()
    with Env(fake=fk) as env:            # temp dir, database, config
        r = env.cgi("login.fcgi", path="/dingauth/login", query="rd=/x")
        t.check("login page is 200", r.status == 200, r.head)
    t.done()
"""
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.environ.get("DINGAUTH_ROOT") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
CGI_DIR = os.environ.get("DINGAUTH_CGI_DIR") or os.path.join(ROOT, "cgi-bin")
BIN_DIR = os.environ.get("DINGAUTH_BIN_DIR") or os.path.join(ROOT, "bin")
BUILD = os.environ.get("DINGAUTH_BUILD") or os.path.join(ROOT, "build")
DINGAUTH = os.path.join(BIN_DIR, "dingauth")
sys.path.insert(0, os.path.join(ROOT, "tests"))

# DB=pg: the base URI of the run's private PostgreSQL (tests/run starts it
# with tests/pgtest.py); every Env gets a database of its own there, copied
# from the migrated template. Unset: SQLite files, as always.
PG = os.environ.get("DINGAUTH_TEST_PG") or None

# The callback crypto settings used by the default fake corp and tests.
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN = "tok123456"


class T:
    """Counts checks and prints one line each."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=None):
        if cond:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            print("not ok - %s" % name, flush=True)
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print("#   %s" % line, flush=True)
        return bool(cond)

    def eq(self, name, got, want):
        return self.check(name, got == want, "got:  %r\nwant: %r" % (got, want))

    def done(self):
        sys.exit(1 if self.failed else 0)


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def watch_cgi():
    """From now on every Env.cgi run is watched for a crash or a sanitizer
    report (make test SAN=1); returns the list the findings go to, for
    the file's last check."""
    findings = []
    plain = Env.cgi

    def watched(self, prog, path, **kw):
        r = plain(self, prog, path, **kw)
        if r.rc != 0 or any(m in r.stderr for m in SANITIZER_MARKS):
            findings.append("%s %s %s rc=%d\n%s" % (
                prog, kw.get("method", "GET"), path, r.rc, r.stderr[-3000:]))
        return r

    Env.cgi = watched
    return findings


def wait_for(cond, timeout=15.0, step=0.05):
    """cond()'s first true value within timeout seconds, else its last."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def catalog(name):
    """A message catalog of static/ (messages.en, messages.zh-CN) as a dict."""
    out = {}
    with open(os.path.join(ROOT, "static", name), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.rstrip("\n").partition("=")
            out[k.strip()] = v.strip()
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CGIResult:
    def __init__(self, raw, stderr, rc):
        self.raw = raw
        self.stderr = stderr.decode("utf-8", "replace")
        self.rc = rc
        head, _, body = raw.partition(b"\r\n\r\n")
        self.head = head.decode("utf-8", "replace")
        self.body = body.decode("utf-8", "replace")
        self.headers = []
        self.status = None
        for i, line in enumerate(self.head.split("\r\n")):
            if ":" not in line:
                continue
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k.lower() == "status":
                self.status = int(v.split()[0])
                self.status_first = (i == 0)
            self.headers.append((k, v))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def cookies(self):
        """Set-Cookie name -> (value, attribute string)."""
        out = {}
        for v in self.all("Set-Cookie"):
            first, _, attrs = v.partition(";")
            n, _, val = first.partition("=")
            out[n.strip()] = (val.strip(), attrs)
        return out

    def json(self):
        import json
        return json.loads(self.body)


class Env:
    """A temp dir with a config file and database for one test scenario.

    fake: a running fakedt.FakeDingTalk (its URL becomes DINGTALK_*_URL and
    its corp's credentials fill the config), or None.
    extra: more config keys.
    """

    def __init__(self, fake=None, **extra):
        self.dir = tempfile.mkdtemp(prefix="dingauth-test-")
        self.db = os.path.join(self.dir, "dingauth.db")
        self.pg = None
        if PG:
            import pgtest
            self.pgname = "t_" + secrets.token_hex(6)
            with pgtest.Conn(PG + "postgres") as c:
                c.execute("CREATE DATABASE %s TEMPLATE %s"
                          % (self.pgname, pgtest.TEMPLATE))
            self.db = PG + self.pgname
            self.pg = pgtest.Conn(self.db)
        self.conf = os.path.join(self.dir, "dingauth.conf")
        self.fake = fake
        cfg = {
            "DINGAUTH_DB": self.db,
            "DINGAUTH_PUBLIC_URL": "http://127.0.0.1:8080",
            "DINGAUTH_COOKIE_SECURE": "0",
            "DINGTALK_AES_TOKEN": AES_KEY,
            "DINGTALK_TOKEN": TOKEN,
            "DINGAUTH_HTTP_TIMEOUT": "5000",
            # English pages, which most tests read; tests/test_lang.py
            # covers both languages and the default (auto).
            "DINGAUTH_LANG": "en",
            # The sns flow, which most tests drive (its codes are the
            # fake's "tmp" kind); the built-in default is oauth2
            # (tests/test_pages.py), chosen per test with
            # DINGAUTH_LOGIN_FLOW=... (None: the default).
            "DINGAUTH_LOGIN_FLOW": "sns",
        }
        if fake is not None:
            corp = fake.corp()
            apps = corp["apps"]
            cfg.update({
                "DINGTALK_CORP_ID": corp["corp_id"],
                "DINGTALK_APP_KEY": apps["appkey"],
                "DINGTALK_CORP_SECRET": apps["appsecret"],
                "DINGTALK_APP_ID": apps["sns_appid"],
                "DINGTALK_APP_SECRET": apps["sns_appsecret"],
                "DINGTALK_AES_TOKEN": corp["callback"]["aes_key"],
                "DINGTALK_TOKEN": corp["callback"]["token"],
                "DINGTALK_OAPI_URL": fake.url,
                "DINGTALK_API_URL": fake.url,
                "DINGTALK_LOGIN_URL": fake.url,
                "DINGTALK_DDLOGIN_JS": fake.url + "/ddlogin.js",
                "DINGTALK_JSAPI_JS": fake.url + "/dingtalk.open.js",
            })
        else:
            cfg["DINGTALK_CORP_ID"] = "dingcorp0001"
        if self.pg is not None:
            # No database file to count beside: this "node's" own file.
            cfg["DINGAUTH_METRICS_FILE"] = os.path.join(self.dir,
                                                        "dingauth.metrics")
        cfg.update({k: str(v) for k, v in extra.items()})
        self.config = cfg
        self.write_config()
        self.init_db()

    def init_db(self):
        """Create the database the way an operator does: `dingauth init`
        with this config (the programs never create one). A config init
        cannot read (a test of a broken setup) leaves no database. On
        PostgreSQL the database is a copy of the migrated template."""
        if self.pg is not None or os.path.exists(self.db):
            return None
        return subprocess.run([DINGAUTH, "init", "--config", self.conf],
                              env=self.environ(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)

    def metrics_file(self):
        """Where this environment's programs count (metrics.h)."""
        return self.config.get("DINGAUTH_METRICS_FILE") or (
            self.db + ".metrics")

    def write_config(self):
        with open(self.conf, "w") as f:
            for k, v in self.config.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))

    def set(self, **kv):
        self.config.update({k: (None if v is None else str(v)) for k, v in kv.items()})
        self.write_config()

    def environ(self, **extra):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "DINGAUTH_CONFIG": self.conf}
        if os.environ.get("ASAN_OPTIONS"):
            env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
        env.update(extra)
        return env

    def cgi(self, prog, path, method="GET", query="", body=b"", headers=None,
            content_type=None, role=None, extra_env=None, timeout=30):
        """Run cgi-bin/PROG as plain CGI and parse its answer."""
        if isinstance(body, str):
            body = body.encode()
        env = self.environ()
        script, _, rest = path.partition("?")
        env.update({
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": script,
            "QUERY_STRING": query,
            "REQUEST_URI": script + ("?" + query if query else ""),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        })
        if role:
            env["FCGI_ROLE"] = role
        if body or method == "POST":
            env["CONTENT_LENGTH"] = str(len(body))
            env["CONTENT_TYPE"] = content_type or "application/x-www-form-urlencoded"
        for k, v in (headers or {}).items():
            env["HTTP_" + k.upper().replace("-", "_")] = v
        env.update(extra_env or {})
        p = subprocess.run([os.path.join(CGI_DIR, prog)], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return CGIResult(p.stdout, p.stderr, p.returncode)

    def cmd(self, *args, stdin=None, timeout=120, extra_env=None):
        """Run bin/dingauth ARGS; returns CompletedProcess (text)."""
        env = self.environ(**(extra_env or {}))
        return subprocess.run([DINGAUTH] + list(args), input=stdin, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def add_user(self, userid, unionid, name, active=1, disabled=0, depts=(1,)):
        """A person in the directory as a sync would leave them."""
        self.sql("INSERT INTO users (userid, unionid, name, active, disabled,"
                 " source, created_at, updated_at) VALUES (?,?,?,?,?,'sync',1,1)",
                 (userid, unionid, name, active, disabled))
        for d in depts:
            self.sql("INSERT INTO user_depts (userid, dept_id) VALUES (?,?)",
                     (userid, d))

    def open_session(self, userid):
        """A session row as session_open writes it (only the SHA-256 of the
        id is kept); returns the id a browser would carry."""
        sid = secrets.token_hex(32)
        now = int(time.time())
        self.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen,"
                 " expires_at) VALUES (?, ?, ?, ?, ?)",
                 (hashlib.sha256(sid.encode()).digest(), userid, now, now, now + 3600))
        return sid

    def sessions_of(self, userid):
        """How many sessions userid has."""
        return self.sql("SELECT count(*) FROM sessions WHERE userid = ?",
                        (userid,))[0][0]

    def sql(self, query, params=()):
        """Run SQL against the test database and return all rows (written
        in SQLite's dialect; on PostgreSQL through pg_sql())."""
        if self.pg is not None:
            return self.pg.execute(pg_sql(query), params)
        con = sqlite3.connect(self.db, timeout=30)
        try:
            cur = con.execute(query, params)
            rows = cur.fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def snapshot(self):
        """Every row of every table: to show that nothing changed."""
        if self.pg is not None:
            names = [r[0] for r in self.pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'dingauth_schema' ORDER BY 1")]
            return {n: sorted(map(repr, self.pg.execute(
                "SELECT * FROM %s" % n))) for n in names}
        if not os.path.exists(self.db):
            return {}
        con = sqlite3.connect(self.db, timeout=30)
        try:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            return {n: sorted(map(repr, con.execute("SELECT * FROM %s" % n)))
                    for n in names}
        finally:
            con.close()

    def written(self):
        """Whether anything was stored: the SQLite file exists; on
        PostgreSQL (the schema is there from the start), a row."""
        if self.pg is not None:
            return any(self.snapshot().values())
        return os.path.exists(self.db)

    def has_table(self, name):
        if self.pg is not None:
            return bool(self.pg.execute("SELECT 1 FROM pg_tables WHERE"
                                        " tablename = $1", (name,)))
        return os.path.exists(self.db) and bool(self.sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (name,)))

    def close(self):
        if self.pg is not None:
            import pgtest
            self.pg.close()
            self.pg = None
            try:
                with pgtest.Conn(PG + "postgres") as c:
                    c.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)"
                              % self.pgname)
            except pgtest.PgError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def pg_sql(query):
    """A test's SQL, written for SQLite, in PostgreSQL's dialect: ?
    parameters, hex(), strftime('%s','now'), X'..' blobs, json_extract."""
    n = [0]

    def param(m):
        n[0] += 1
        return "$%d" % n[0]
    q = re.sub(r"\?", param, query)
    while True:
        m = re.search(r"\bhex\(", q)
        if not m:
            break
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(q[i], 0)
            i += 1
        q = (q[:m.start()] + "upper(encode(" + q[m.end():i - 1] +
             ", 'hex'))" + q[i:])
    q = re.sub(r"strftime\('%s',\s*'now'\)",
               "extract(epoch from now())::bigint", q)
    q = re.sub(r"[xX]'([0-9A-Fa-f]*)'", r"'\\x\1'::bytea", q)
    q = re.sub(r"randomblob\(32\)", "decode(md5(random()::text) ||"
               " md5(random()::text), 'hex')", q)
    q = re.sub(r"json_extract\((\w+),\s*'\$\.(\w+)\[(\d+)\]'\)",
               r"(\1::json->'\2'->>\3)", q)
    m = re.match(r"\s*INSERT OR (REPLACE|IGNORE) INTO (\w+) \(([^)]*)\)", q)
    if m:
        # The first column named is the table's key in the tests' SQL.
        cols = [c.strip() for c in m.group(3).split(",")]
        q = "INSERT INTO" + q[m.end(1) + len(" INTO"):]
        if m.group(1) == "IGNORE":
            q += " ON CONFLICT DO NOTHING"
        else:
            q += " ON CONFLICT (%s) DO UPDATE SET %s" % (cols[0], ", ".join(
                "%s = excluded.%s" % (c, c) for c in cols[1:]))
    return q


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def kill_tree(proc):
    """Stop a server started with start_new_session=True: the server first,
    so that it stops its own children instead of respawning them, then
    whatever is left in its process group."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def qs(**kv):
    return urllib.parse.urlencode(kv)


class Lighttpd:
    """A real lighttpd on 127.0.0.1:PORT serving static/ and the FastCGI
    programs the way the shipped examples do:

      /dingauth/login, /dingauth/logout  -> login.fcgi
      /dingauth/exchange                 -> exchange.fcgi
      /dingauth/callback                 -> callback.fcgi
      /dingauth/auth, whoami, healthz,
                metrics              -> authorize.fcgi (responder)
      /dingauth/static/...               -> static/
      each prefix in protect             -> authorize.fcgi as authorizer,
                                            then files under docroot

    env: the Env whose config the programs read. protect: {prefix: {extra
    config env for that authorizer instance}}. cgi_bin: a dir under docroot
    that mod_cgi runs (for apps that print REMOTE_USER).
    """

    def __init__(self, env, protect=None, docroot=None, procs=1, extra_conf=""):
        self.env = env
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.dir = os.path.join(env.dir, "lighttpd-%d" % self.port)
        os.makedirs(self.dir)
        self.docroot = docroot or os.path.join(self.dir, "www")
        os.makedirs(self.docroot, exist_ok=True)
        self.protect = protect or {}
        self.procs = procs
        self.extra_conf = extra_conf
        self.proc = None
        self.errorlog = os.path.join(self.dir, "error.log")

    def _fcgi(self, name, prog, mode="responder", extra=None):
        envs = {"DINGAUTH_CONFIG": self.env.conf}
        if os.environ.get("ASAN_OPTIONS"):
            envs["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
        envs.update(extra or {})
        benv = ", ".join('"%s" => "%s"' % kv for kv in envs.items())
        return ('(( "bin-path" => "%s", "socket" => "%s/%s.sock", '
                '"mode" => "%s", "check-local" => "disable", '
                '"max-procs" => %d, "bin-environment" => ( %s ) ))'
                % (os.path.join(CGI_DIR, prog), self.dir, name, mode,
                   self.procs, benv))

    def config_text(self):
        c = []
        c.append('server.modules = ( "mod_access", "mod_alias", "mod_fastcgi", "mod_cgi", "mod_setenv" )')
        c.append('server.document-root = "%s"' % self.docroot)
        c.append('server.bind = "127.0.0.1"')
        c.append('server.port = %d' % self.port)
        c.append('server.errorlog = "%s"' % self.errorlog)
        c.append('server.tag = "lighttpd"')
        c.append('index-file.names = ( "index.html" )')
        c.append('mimetype.assign = ( ".html" => "text/html; charset=utf-8", '
                 '".css" => "text/css", ".js" => "text/javascript", '
                 '".json" => "application/json", ".txt" => "text/plain; charset=utf-8" )')
        c.append('alias.url = ( "/dingauth/static/" => "%s/static/" )' % ROOT)
        c.append('cgi.assign = ( ".cgi" => "" )')
        routes = [("login", "^/dingauth/(login|logout)$", "login.fcgi"),
                  ("exchange", "^/dingauth/exchange$", "exchange.fcgi"),
                  ("callback", "^/dingauth/callback$", "callback.fcgi"),
                  ("auth", "^/dingauth/(auth|whoami|healthz|metrics)$", "authorize.fcgi")]
        for name, rx, prog in routes:
            if not os.access(os.path.join(CGI_DIR, prog), os.X_OK):
                continue
            c.append('$HTTP["url"] =~ "%s" { fastcgi.server = ( "/dingauth/" => %s ) }'
                     % (rx, self._fcgi(name, prog)))
        for i, (prefix, extra) in enumerate(sorted(self.protect.items())):
            c.append('$HTTP["url"] =~ "^%s" { fastcgi.server = ( "%s" => %s ) }'
                     % (prefix, prefix, self._fcgi("authz%d" % i, "authorize.fcgi",
                                                   "authorizer", extra)))
        c.append(self.extra_conf)
        return "\n".join(c) + "\n"

    def start(self):
        conf = os.path.join(self.dir, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(self.config_text())
        self.proc = subprocess.Popen(["/usr/sbin/lighttpd", "-D", "-f", conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr.log"), "w"),
                                     start_new_session=True)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError("lighttpd did not start: %s" % self.log())
        return self

    def log(self):
        out = ""
        for n in ("error.log", "stderr.log"):
            try:
                out += open(os.path.join(self.dir, n)).read()
            except OSError:
                pass
        return out

    def stop(self):
        kill_tree(self.proc)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()


def http(method, url, body=None, headers=None, timeout=15):
    """One HTTP request without following redirects.
    Returns (status, headers as list of (k, v), body bytes)."""
    import http.client
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hs = r.getheaders()
    conn.close()
    return r.status, hs, data
