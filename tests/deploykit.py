# -*- coding: utf-8 -*-
"""Fixtures for the authorizer and deployment tests (test_authorize.py,
test_deploy_*.py): a small company directory written straight into an Env's
database, sessions stored the way src/session.c stores them, FastCGI
programs under spawn-fcgi, and a protected CGI app that prints what it sees.

The directory mirrors the fake DingTalk's demo company (the same department
ids), with a deeper department, a leaver and an operator-disabled user:

    1 Demo Co
    +- 2 研发部 R&D           u006 Alice Smith
    |  +- 4 平台组            u002 李四 (also in 6), u005 赵六 (left)
    |  |  +- 7 平台 SRE       u007 孙七
    |  +- 5 前端组            u003 王五
    +- 3 销售部 Sales
       +- 6 华东销售          u004 <script>… O'Hara, u002
    (1)                       u001 张三, u008 周八 (disabled by an operator)
"""
import hashlib
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time

from harness import CGI_DIR, ROOT, free_port, kill_tree, wait_port

DEPLOY = os.path.join(ROOT, "deploy")

DEPTS = [
    (1, None, "Demo Co"),
    (2, 1, "研发部 R&D"),
    (3, 1, "销售部 Sales"),
    (4, 2, "平台组"),
    (5, 2, "前端组"),
    (6, 3, "华东销售"),
    (7, 4, "平台 SRE"),
]

# userid: (unionid, name, dept ids, active, disabled)
USERS = {
    "u001": ("un001", "张三", [1], 1, 0),
    "u002": ("un002", "李四", [4, 6], 1, 0),
    "u003": ("un003", "王五", [5], 1, 0),
    "u004": ("un004", "<script>alert(\"x\")</script> O'Hara & \"Q\"", [6], 1, 0),
    "u005": ("un005", "赵六", [4], 0, 0),
    "u006": ("un006", "Alice Smith", [2], 1, 0),
    "u007": ("un007", "孙七", [7], 1, 0),
    "u008": ("un008", "周八", [1], 1, 1),
}


def ensure_schema(env):
    """The database dingauth init made (Env) opens in a program."""
    r = env.cgi("authorize.fcgi", path="/dingauth/whoami")
    if r.status not in (401, 200):
        raise RuntimeError("authorize.fcgi could not open the database:\n%s%s"
                           % (r.raw[:500], r.stderr))


def seed(env):
    ensure_schema(env)
    now = int(time.time())
    for dept_id, parent, name in DEPTS:
        env.sql("INSERT OR REPLACE INTO departments (dept_id, parent_id, name,"
                " updated_at) VALUES (?, ?, ?, ?)", (dept_id, parent, name, now))
    for userid, (unionid, name, depts, active, disabled) in USERS.items():
        add_user(env, userid, unionid, name, depts, active, disabled)


def add_user(env, userid, unionid, name, depts, active=1, disabled=0):
    now = int(time.time())
    env.sql("INSERT OR REPLACE INTO users (userid, unionid, name, active,"
            " disabled, source, created_at, updated_at, left_at)"
            " VALUES (?, ?, ?, ?, ?, 'sync', ?, ?, ?)",
            (userid, unionid, name, active, disabled, now, now,
             None if active else now))
    env.sql("DELETE FROM user_depts WHERE userid = ?", (userid,))
    for d in depts:
        env.sql("INSERT INTO user_depts (userid, dept_id) VALUES (?, ?)",
                (userid, d))


def session(env, userid, age=0, idle=0, ttl=28800):
    """Store a session for userid as session_open does; returns the cookie
    value. age: seconds since it was created; idle: since last use."""
    cookie = secrets.token_hex(32)
    now = int(time.time())
    env.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen,"
            " expires_at) VALUES (?, ?, ?, ?, ?)",
            (hashlib.sha256(cookie.encode()).digest(), userid, now - age,
             now - idle, now - age + ttl))
    return cookie


def leave(env, userid):
    """The user left the company (what sync or a user_leave_org push does)."""
    env.sql("UPDATE users SET active = 0, left_at = ? WHERE userid = ?",
            (int(time.time()), userid))


def cookie_header(value):
    return "dingauth_session=%s" % value


# The protected app: a CGI script printing what the web server told it.
APP_CGI = r"""#!/bin/sh
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'REMOTE_USER=%s\n' "${REMOTE_USER-}"
printf 'DINGTALK_USERID=%s\n' "${DINGTALK_USERID-}"
printf 'DINGTALK_UNIONID=%s\n' "${DINGTALK_UNIONID-}"
printf 'DINGTALK_NAME=%s\n' "${DINGTALK_NAME-}"
printf 'DINGTALK_DEPT_IDS=%s\n' "${DINGTALK_DEPT_IDS-}"
printf 'HTTP_REMOTE_USER=%s\n' "${HTTP_REMOTE_USER-}"
printf 'HTTP_X_AUTH_REQUEST_USER=%s\n' "${HTTP_X_AUTH_REQUEST_USER-}"
printf 'HTTP_VARIABLE_REMOTE_USER=%s\n' "${HTTP_VARIABLE_REMOTE_USER-}"
printf 'REQUEST_METHOD=%s\n' "${REQUEST_METHOD-}"
if [ "${REQUEST_METHOD-}" = POST ]; then
	printf 'BODY='
	head -c "${CONTENT_LENGTH:-0}"
	printf '\n'
fi
"""

STATIC_TEXT = "protected static file\n"


def make_site(docroot, prefixes=("protected", "staff")):
    """docroot/<prefix>/{index.html,app.cgi,file.txt} for each prefix; every
    directory world-readable (servers drop root for their workers)."""
    os.makedirs(docroot, exist_ok=True)
    with open(os.path.join(docroot, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><title>public</title><p>public page\n")
    for p in prefixes:
        d = os.path.join(docroot, p)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write("<!DOCTYPE html><title>%s</title><p>%s area\n" % (p, p))
        with open(os.path.join(d, "file.txt"), "w") as f:
            f.write(STATIC_TEXT)
        app = os.path.join(d, "app.cgi")
        with open(app, "w") as f:
            f.write(APP_CGI)
        os.chmod(app, 0o755)
    open_up(docroot)


def open_up(path):
    """Make path and every directory above it (up to /) traversable, and the
    tree below it readable, for a web server worker that is not root."""
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for n in filenames:
            p = os.path.join(dirpath, n)
            os.chmod(p, os.stat(p).st_mode | 0o644)
    p = os.path.dirname(os.path.abspath(path))
    while p != "/":
        st = os.stat(p)
        if not st.st_mode & stat.S_IXOTH:
            os.chmod(p, st.st_mode | 0o711)
        p = os.path.dirname(p)


def parse_app(body):
    """The app's KEY=value lines as a dict."""
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def read_env_file(path):
    """KEY=value lines of a systemd EnvironmentFile (no quoting used)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


UNIT = os.path.join(DEPLOY, "systemd", "dingauth-fcgi@.service")
INSTALL_ROOT = "/usr/local/lib/dingauth"


def unit_command(name, spec, port, cgi_dir):
    """The ExecStart of deploy/systemd/dingauth-fcgi@.service for instance
    NAME, expanded as systemd expands it (%i, ${VAR} from Environment= and
    the instance's .env file), but with the given port and cgi_dir for the
    install root's cgi-bin. Returns (argv, the unit's environment)."""
    unit_env = {}
    exec_start = None
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Environment="):
                for kv in line[len("Environment="):].split():
                    k, _, v = kv.partition("=")
                    unit_env[k] = v
            elif line.startswith("ExecStart="):
                exec_start = line[len("ExecStart="):]
    unit_env.update(spec)
    unit_env["PORT"] = str(port)

    def expand(word):
        word = re.sub(r"\$\{(\w+)\}", lambda m: unit_env.get(m.group(1), ""),
                      word.replace("%i", name))
        return word.replace(INSTALL_ROOT + "/cgi-bin", cgi_dir)
    return [expand(w) for w in exec_start.split()], unit_env


class FcgiInstances:
    """The FastCGI programs of deploy/systemd/fcgi/*.env, each started with
    the ExecStart line of deploy/systemd/dingauth-fcgi@.service (spawn-fcgi
    on 127.0.0.1, PROCESSES copies through fcgi-children), but on an
    ephemeral port, from cgi_dir (the install root's cgi-bin). ports:
    instance name -> port; default_ports: instance name -> the port its
    .env file says."""

    def __init__(self, env, logdir, cgi_dir):
        self.env = env
        self.logdir = logdir
        self.cgi_dir = cgi_dir
        self.procs = {}
        self.ports = {}
        self.default_ports = {}
        d = os.path.join(DEPLOY, "systemd", "fcgi")
        self.specs = {}
        for n in sorted(os.listdir(d)):
            if n.endswith(".env"):
                self.specs[n[:-4]] = read_env_file(os.path.join(d, n))

    def start(self):
        for name, spec in self.specs.items():
            port = free_port()
            argv, unit_env = unit_command(name, spec, port, self.cgi_dir)
            penv = self.env.environ()
            for k, v in unit_env.items():
                if k not in ("PROGRAM", "PORT", "PROCESSES",
                             "DINGAUTH_CONFIG"):
                    penv[k] = v
            log = open(os.path.join(self.logdir, "fcgi-%s.log" % name), "w")
            self.procs[name] = subprocess.Popen(
                argv, env=penv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)
            self.ports[name] = port
            self.default_ports[name] = int(spec["PORT"])
        for name, port in self.ports.items():
            if not wait_port(port):
                raise RuntimeError("spawn-fcgi %s did not listen:\n%s"
                                   % (name, self.log()))
        return self

    def log(self):
        out = ""
        for n in sorted(os.listdir(self.logdir)):
            if n.startswith("fcgi-"):
                with open(os.path.join(self.logdir, n), errors="replace") as f:
                    out += "== %s\n%s" % (n, f.read()[-3000:])
        return out

    def stop(self):
        for p in self.procs.values():
            stop_group(p)
        self.procs = {}


class Fcgiwrap:
    """fcgiwrap on a TCP port (nginx's workers run as nobody), for the
    protected CGI app behind nginx. Its prefork children outlive a SIGTERM
    to the parent, so they are stopped by PID."""

    def __init__(self, logdir, children=2):
        self.port = free_port()
        self.children = children
        self.logdir = logdir
        self.proc = None

    def start(self):
        log = open(os.path.join(self.logdir, "fcgiwrap.log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/sbin/fcgiwrap", "-c", str(self.children), "-s",
             "tcp:127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError("fcgiwrap did not listen")
        return self

    def stop(self):
        if self.proc is None:
            return
        pids = children_of(self.proc.pid)
        kill_tree(self.proc)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


# The server first, then its process group: see harness.kill_tree.
stop_group = kill_tree


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def rewrite_ports(text, mapping):
    """Replace 127.0.0.1:DEFAULT by 127.0.0.1:EPHEMERAL for each pair."""
    def sub(m):
        port = int(m.group(1))
        return "127.0.0.1:%d" % mapping.get(port, port)
    return re.sub(r"127\.0\.0\.1:(\d+)", sub, text)


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def copy_deploy(sub, dest):
    """Copy deploy/SUB/* into dest; returns the list of names copied."""
    src = os.path.join(DEPLOY, sub)
    names = []
    for n in sorted(os.listdir(src)):
        p = os.path.join(src, n)
        if os.path.isfile(p):
            shutil.copy(p, os.path.join(dest, n))
            names.append(n)
    return names


def login_for(uri):
    import urllib.parse
    return "/dingauth/login?rd=" + urllib.parse.quote(uri, safe="")


def scenario(t, env, srv, server):
    """The checks every server must pass, through srv.get(path, cookie=,
    headers=, method=, body=) -> (status, headers, body). server names the
    server in check names. Returns the sessions it made, by userid."""
    import json
    S = server
    st, hs, body = srv.get("/protected/file.txt")
    t.eq("%s: static file without a session: 302" % S, st, 302)
    t.eq("%s: Location = the login page with rd" % S,
         header(hs, "Location"), login_for("/protected/file.txt"))
    t.check("%s: the file is not in the deny body" % S,
            STATIC_TEXT.encode() not in body, body[:200])
    t.check("%s: no Basic password prompt on a deny" % S,
            header(hs, "WWW-Authenticate") is None, hs)
    uri = "/protected/app.cgi?a=1&b=2"
    st, hs, body = srv.get(uri)
    t.eq("%s: CGI app without a session: 302, the query encoded in rd" % S,
         (st, header(hs, "Location")), (302, login_for(uri)))
    st, hs, body = srv.get("/protected/no-such-file.txt")
    t.eq("%s: a missing file under the prefix: 302 too (no probing)" % S,
         st, 302)
    st, hs, body = srv.get("/protected/app.cgi",
                           headers={"Accept": "application/json"})
    j = {}
    try:
        j = json.loads(body)
    except ValueError:
        pass
    t.check("%s: JSON client without a session: 401 application/json" % S,
            st == 401 and header(hs, "Content-Type") == "application/json"
            and j.get("login") == login_for("/protected/app.cgi"),
            (st, hs, body))
    st, hs, body = srv.get("/protected/app.cgi", method="POST", body="x=1",
                           headers={"Content-Type":
                                    "application/x-www-form-urlencoded"})
    t.eq("%s: POST without a session: 302, the app never runs" % S, st, 302)
    spoof = {"Variable-REMOTE_USER": "u001", "Remote-User": "u001",
             "X-Auth-Request-User": "u001",
             "Authorization": "Basic dTAwMTp4"}
    st, hs, body = srv.get("/protected/app.cgi", headers=spoof)
    t.eq("%s: spoofed identity headers and Basic credentials without a "
         "session: 302" % S, st, 302)
    st, hs, body = srv.get("/protected/app.cgi", cookie="0" * 64)
    t.eq("%s: a forged cookie: 302" % S, st, 302)

    c1 = session(env, "u001")
    st, hs, body = srv.get("/protected/file.txt", cookie=c1)
    t.eq("%s: static file with a session: 200 and the file" % S,
         (st, body), (200, STATIC_TEXT.encode()))
    t.check("%s: the grant leaks no header of the check" % S,
            not any(k.lower().startswith(("variable-", "x-auth-request")) or
                    k.lower() in ("set-cookie", "cache-control")
                    for k, _ in hs), hs)
    st, hs, body = srv.get("/protected/app.cgi", cookie=c1)
    app = parse_app(body)
    t.eq("%s: CGI app with a session: 200" % S, st, 200)
    t.eq("%s: the app sees REMOTE_USER = userid" % S,
         app.get("REMOTE_USER"), "u001")
    t.eq("%s: the app sees DINGTALK_NAME in UTF-8" % S,
         app.get("DINGTALK_NAME"), "张三")
    t.eq("%s: the app sees DINGTALK_USERID/UNIONID/DEPT_IDS" % S,
         (app.get("DINGTALK_USERID"), app.get("DINGTALK_UNIONID"),
          app.get("DINGTALK_DEPT_IDS")), ("u001", "un001", "1"))
    st, hs, body = srv.get("/protected/", cookie=c1)
    t.check("%s: the directory index with a session: 200" % S,
            st == 200 and b"protected area" in body, (st, body[:200]))
    st, hs, body = srv.get("/protected/app.cgi", cookie=c1, method="POST",
                           body="hello=1", headers={
                               "Content-Type":
                               "application/x-www-form-urlencoded"})
    t.eq("%s: a POST body reaches the app after the grant" % S,
         parse_app(body).get("BODY"), "hello=1")

    c3 = session(env, "u003")
    st, hs, body = srv.get("/protected/app.cgi", cookie=c3, headers=spoof)
    app = parse_app(body)
    t.eq("%s: spoofed headers and Basic credentials with a session: "
         "REMOTE_USER is the session's user" % S,
         (app.get("REMOTE_USER"), app.get("DINGTALK_USERID"),
          app.get("DINGTALK_NAME")), ("u003", "u003", "王五"))

    c6 = session(env, "u006")
    c7 = session(env, "u007")
    for who, c in (("u006 (dept 2)", c6), ("u003 (dept 5, below 2)", c3),
                   ("u007 (dept 7, two levels below)", c7)):
        st, hs, body = srv.get("/staff/app.cgi", cookie=c)
        t.check("%s: /staff/: %s granted" % (S, who),
                st == 200 and parse_app(body).get("REMOTE_USER") == who[:4],
                (st, body[:300]))
    st, hs, body = srv.get("/staff/app.cgi", cookie=c1)
    t.eq("%s: /staff/: u001 (dept 1 only) refused with 403" % S, st, 403)
    t.check("%s: /staff/: the 403 page says why" % S,
            body.startswith(b"<") and b"department 2" in body, body[:600])
    st, hs, body = srv.get("/staff/file.txt", cookie=c1)
    t.check("%s: /staff/: the static file is refused too" % S,
            st == 403 and STATIC_TEXT.encode() not in body, (st, body[:200]))
    st, hs, body = srv.get("/staff/app.cgi")
    t.eq("%s: /staff/ without a session: 302 to login" % S,
         (st, header(hs, "Location")), (302, login_for("/staff/app.cgi")))
    st, hs, body = srv.get("/protected/app.cgi", cookie=c1)
    t.eq("%s: u001 still passes /protected/ (rules are per location)" % S,
         st, 200)

    c2 = session(env, "u002")
    st, hs, body = srv.get("/protected/app.cgi", cookie=c2)
    t.eq("%s: u002 served before leaving" % S,
         parse_app(body).get("REMOTE_USER"), "u002")
    leave(env, "u002")
    st, hs, body = srv.get("/protected/app.cgi", cookie=c2)
    t.eq("%s: u002 refused on the very next request after leaving" % S,
         st, 302)
    st, hs, body = srv.get("/protected/file.txt", cookie=c2)
    t.eq("%s: ...also for static files" % S, st, 302)
    env.sql("UPDATE users SET disabled = 1 WHERE userid = 'u006'")
    st, hs, body = srv.get("/staff/app.cgi", cookie=c6)
    t.eq("%s: an operator-disabled user is refused at once" % S, st, 302)

    st, hs, body = srv.get("/dingauth/whoami", cookie=c1)
    t.check("%s: /dingauth/whoami with a session: the user as JSON" % S,
            st == 200 and json.loads(body).get("userid") == "u001",
            (st, body[:300]))
    st, hs, body = srv.get("/dingauth/whoami")
    t.eq("%s: /dingauth/whoami without a session: 401" % S, st, 401)
    st, hs, body = srv.get("/")
    t.eq("%s: the public page is served without a session" % S, st, 200)
    if os.path.exists(os.path.join(CGI_DIR, "login.fcgi")):
        st, hs, body = srv.get("/dingauth/login?rd=%2Fprotected%2F")
        t.check("%s: /dingauth/login is reachable without a session" % S,
                st == 200 and b"<" in body, (st, body[:300]))
    sd = os.path.join(ROOT, "static")
    statics = sorted(n for n in os.listdir(sd) if n.endswith((".css", ".js"))) \
        if os.path.isdir(sd) else []
    if statics:
        st, hs, body = srv.get("/dingauth/static/" + statics[0])
        t.eq("%s: /dingauth/static/%s is served" % (S, statics[0]), st, 200)
    # The monitors' routes, as the example configuration mounts them.
    st, hs, body = srv.get("/dingauth/healthz")
    j = {}
    try:
        j = json.loads(body)
    except ValueError:
        pass
    t.check("%s: /dingauth/healthz answers its four checks as JSON" % S,
            st in (200, 503) and set(j.get("checks", {})) ==
            {"database", "directory", "events", "worker"}
            and j.get("status") == ("ok" if st == 200 else "fail"),
            (st, body[:300]))
    st, hs, body = srv.get("/dingauth/metrics")
    t.check("%s: /dingauth/metrics from loopback: the shared counters, "
            "the authorizer's decisions among them" % S,
            st == 200 and b'dingauth_authorizer_decisions_total{role="' in body
            and b"# TYPE dingauth_logins_total counter" in body,
            (st, body[:300]))
    return {"u001": c1, "u002": c2, "u003": c3, "u006": c6, "u007": c7}


def install_cgi_bin(dest):
    """dest/: what the install root's cgi-bin/ holds, as links: this
    build's programs (also the sanitizer build) and cgi-bin/fcgi-children."""
    os.makedirs(dest)
    for n in sorted(os.listdir(CGI_DIR)):
        if n.endswith(".fcgi"):
            os.symlink(os.path.join(CGI_DIR, n), os.path.join(dest, n))
    os.symlink(os.path.join(ROOT, "cgi-bin", "fcgi-children"),
               os.path.join(dest, "fcgi-children"))


class WebServer:
    """A real web server on 127.0.0.1:ephemeral, in env.dir/NAME. Subclasses
    write the operator's main configuration around the deploy/ files and
    start the process; stop() ends it and everything else it started."""

    name = "server"
    logs = ("error.log", "stderr.log")

    def __init__(self, env, operator=""):
        from harness import free_port
        self.env = env
        # What an operator added to the configuration beside the shipped
        # files (each server says where it goes).
        self.operator = operator
        self.dir = os.path.join(env.dir, self.name)
        n = 1
        while os.path.exists(self.dir):     # several servers in one Env
            n += 1
            self.dir = os.path.join(env.dir, "%s-%d" % (self.name, n))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.helpers = []       # objects with stop(), stopped after proc
        os.makedirs(self.dir)
        # What the deploy files call the install root: cgi-bin/ (this
        # build's programs, also the sanitizer build) and static/.
        self.root = os.path.join(self.dir, "dingauth")
        os.makedirs(self.root)
        install_cgi_bin(os.path.join(self.root, "cgi-bin"))
        os.symlink(os.path.join(ROOT, "static"),
                   os.path.join(self.root, "static"))
        self.www = os.path.join(self.dir, "www")
        make_site(self.www)

    def spawn(self, argv):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "stderr.log"), "w"),
            start_new_session=True)
        if not wait_port(self.port):
            raise RuntimeError("%s did not start:\n%s" % (self.name, self.log()))

    def log(self):
        out = ""
        for n in self.logs:
            try:
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    out += "== %s\n%s" % (n, f.read()[-4000:])
            except OSError:
                pass
        for h in self.helpers:
            if hasattr(h, "log"):
                out += h.log()
        return out

    def stop(self):
        stop_group(self.proc)
        self.proc = None
        for h in self.helpers:
            h.stop()

    def get(self, path, cookie=None, headers=None, method="GET", body=None):
        from harness import http
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie_header(cookie)
        return http(method, self.url + path, body=body, headers=h)


class Lighttpd(WebServer):
    """lighttpd from deploy/lighttpd/dingauth.conf, unchanged. The test
    writes only what an operator's own lighttpd.conf holds (port, document
    root, mod_cgi for the app, the three var.dingauth_* settings), includes
    the shipped file, and then the operator's additions; lighttpd starts
    authorize.fcgi and the other programs itself ("bin-path")."""

    name = "lighttpd"
    conf = os.path.join(DEPLOY, "lighttpd", "dingauth.conf")

    def start(self):
        conf = os.path.join(self.dir, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "# The operator's lighttpd.conf (test instance).",
                'server.modules = ( "mod_access", "mod_cgi", "mod_expire" )',
                'server.document-root = "%s"' % self.www,
                'server.bind = "127.0.0.1"',
                'server.port = %d' % self.port,
                'server.errorlog = "%s/error.log"' % self.dir,
                'index-file.names = ( "index.html" )',
                'mimetype.assign = ( ".html" => "text/html; charset=utf-8",'
                ' ".txt" => "text/plain; charset=utf-8", ".css" => "text/css",'
                ' ".js" => "text/javascript", ".svg" => "image/svg+xml" )',
                'cgi.assign = ( ".cgi" => "" )',
                'var.dingauth_root = "%s"' % self.root,
                'var.dingauth_config = "%s"' % self.env.conf,
                'var.dingauth_sockets = "%s"' % self.dir,
                'include "%s"' % self.conf,
                self.operator,
                ""]))
        self.spawn(["/usr/sbin/lighttpd", "-D", "-f", conf])
        return self


class Apache(WebServer):
    """Apache (mod_authnz_fcgi) from deploy/apache/dingauth.conf, unchanged,
    with the FastCGI programs of deploy/systemd/fcgi/*.env started as
    deploy/systemd/dingauth-fcgi@.service starts them. The test writes only
    what an operator's apache2.conf holds (modules, ServerRoot, PidFile and
    ErrorLog in a temp dir, Listen on an ephemeral port, a document root
    with a mod_cgi app, Define lines for the ports and the install root),
    Includes the shipped file, and then the operator's additions. Apache
    runs in the foreground (-X); workers switch to www-data as root."""

    name = "apache"
    conf = os.path.join(DEPLOY, "apache", "dingauth.conf")
    modules = "/usr/lib/apache2/modules"

    def start(self):
        d = self.dir
        fcgi = FcgiInstances(self.env, d,
                             os.path.join(self.root, "cgi-bin"))
        self.helpers.append(fcgi)
        fcgi.start()
        mods = ["mpm_prefork", "authn_core", "authz_core", "authz_user",
                "authz_host", "authnz_fcgi", "proxy", "proxy_fcgi",
                "headers", "alias", "mime", "dir", "cgi", "expires"]
        lines = ["# The operator's apache2.conf (test instance).",
                 'ServerRoot "%s"' % d, "ServerName 127.0.0.1",
                 "Listen 127.0.0.1:%d" % self.port,
                 'PidFile "%s/httpd.pid"' % d, 'ErrorLog "%s/error.log"' % d,
                 "LogLevel warn", "Mutex file:%s default" % d]
        if os.getuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += ["LoadModule %s_module %s/mod_%s.so" % (m, self.modules, m)
                  for m in mods]
        lines += ['LogFormat "%h %u \\"%r\\" %>s" dingauth',
                  'CustomLog "%s/access.log" dingauth' % d,
                  "TypesConfig /etc/mime.types", "AddDefaultCharset utf-8",
                  'DocumentRoot "%s"' % self.www,
                  '<Directory "%s">' % self.www, "\tRequire all granted",
                  "\tOptions +ExecCGI", "\tAddHandler cgi-script .cgi",
                  "\tDirectoryIndex index.html", "</Directory>",
                  "Define DINGAUTH_ROOT %s" % self.root]
        for name, port in sorted(fcgi.ports.items()):
            lines.append("Define DINGAUTH_%s_PORT %d"
                         % (name.upper().replace("-", "_"), port))
        lines.append('Include "%s"' % self.conf)
        lines.append(self.operator)
        conf = os.path.join(d, "apache2.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.fcgi = fcgi
        self.spawn(["/usr/sbin/apache2", "-X", "-f", conf])
        return self

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log"),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_access_log(self, text, timeout=5.0):
        """Apache logs after the response: wait for the line."""
        end = time.time() + timeout
        while time.time() < end:
            if text in self.access_log():
                return True
            time.sleep(0.05)
        return False


class Nginx(WebServer):
    """nginx (auth_request) from deploy/nginx/*, unchanged but for the two
    things an operator edits too: the upstream ports in dingauth-http.conf
    (rewritten to ephemeral ones) and the install root in dingauth.conf.
    The FastCGI programs run as deploy/systemd/dingauth-fcgi@.service
    starts them; the protected CGI app runs under fcgiwrap on TCP. The
    operator's additions go in the server { } after the include. nginx
    runs in the foreground with its own prefix."""

    name = "nginx"

    def start(self):
        d = self.dir
        fcgi = FcgiInstances(self.env, d,
                             os.path.join(self.root, "cgi-bin"))
        self.helpers.append(fcgi)
        fcgi.start()
        app = Fcgiwrap(d)
        self.helpers.append(app)
        app.start()
        self.fcgi = fcgi
        ports = {fcgi.default_ports[n]: p for n, p in fcgi.ports.items()}
        ports[9106] = app.port          # example_cgi_app
        conf_dir = os.path.join(d, "conf")
        inc = os.path.join(conf_dir, "dingauth")
        os.makedirs(inc)
        for n in copy_deploy("nginx", inc):
            p = os.path.join(inc, n)
            with open(p) as f:
                text = f.read()
            if n == "dingauth-http.conf":
                text = rewrite_ports(text, ports)
            if n == "dingauth.conf":
                text = text.replace(INSTALL_ROOT, self.root)
            with open(p, "w") as f:
                f.write(text)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, "tmp", sub))
        open_up(os.path.join(d, "tmp"))
        conf = os.path.join(conf_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""# The operator's nginx.conf (test instance).
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 64; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	charset utf-8;
	access_log %(d)s/access.log;
	client_body_temp_path %(d)s/tmp/body;
	proxy_temp_path %(d)s/tmp/proxy;
	fastcgi_temp_path %(d)s/tmp/fastcgi;
	uwsgi_temp_path %(d)s/tmp/uwsgi;
	scgi_temp_path %(d)s/tmp/scgi;
	include dingauth/dingauth-http.conf;
	server {
		listen 127.0.0.1:%(port)d;
		server_name localhost;
		root %(www)s;
		index index.html;
		include dingauth/dingauth.conf;
%(operator)s
	}
}
""" % {"d": d, "port": self.port, "www": self.www,
       "operator": self.operator})
        self.spawn(["/usr/sbin/nginx", "-p", d, "-c", conf, "-e",
                    os.path.join(d, "error.log"), "-g", "daemon off;"])
        return self


def login_flow(t, srv, fake, userid, target):
    """Sign in as userid the way a browser does, through srv: the protected
    page sends us to the login page, which sets the state cookie; the
    fake DingTalk hands out a code for userid (the QR scan); exchange
    opens the session and sends us back. Returns the session cookie."""
    import urllib.parse
    S = srv.name
    st, hs, body = srv.get(target)
    loc = header(hs, "Location") or ""
    t.eq("%s: login flow: the protected page sends the browser to login" % S,
         (st, loc), (302, login_for(target)))
    st, hs, body = srv.get(loc)
    state = set_cookie(hs, "dingauth_state")
    t.check("%s: login flow: the login page answers through the server "
            "and sets a state" % S, st == 200 and state, (st, hs, body[:300]))
    code = fake.code(userid=userid)["code"]
    st, hs, body = srv.get("/dingauth/exchange?" + urllib.parse.urlencode(
        {"code": code, "state": state or ""}),
        headers={"Cookie": "dingauth_state=%s" % state})
    sid = set_cookie(hs, "dingauth_session")
    t.check("%s: login flow: exchange opens a session and returns to the "
            "protected URL" % S,
            st == 302 and header(hs, "Location") == target and sid,
            (st, hs, body[:300]))
    st, hs, body = srv.get(target, cookie=sid)
    t.check("%s: login flow: the protected app now sees %s" % (S, userid),
            st == 200 and parse_app(body).get("REMOTE_USER") == userid,
            (st, body[:300]))
    return sid


def set_cookie(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1] or None
    return None


def leave_by_callback(t, srv, fake, userid, sid, target):
    """DingTalk pushes user_leave_org to /dingauth/callback through srv: the
    leaver's next request is refused."""
    S = srv.name
    res = fake.push(srv.url + "/dingauth/callback",
                    {"EventType": "user_leave_org", "UserId": [userid],
                     "TimeStamp": str(int(time.time() * 1000))})
    t.check("%s: the callback push is answered with the encrypted success" % S,
            res.get("status") == 200 and res.get("reply_ok"), res)
    end = time.time() + 10
    st = None
    while time.time() < end:
        st, hs, body = srv.get(target, cookie=sid)
        if st == 302:
            break
        time.sleep(0.1)
    t.eq("%s: after DingTalk's user_leave_org push, %s is refused" % (S, userid),
         st, 302)


def run_server(t, server_class, extra_checks=None):
    """Seed a directory, start the fake DingTalk and the server, run the
    common scenario, a real login and a callback through the server, the
    server's own checks, and stop everything, also on failure."""
    from harness import Env
    from fakedt import FakeDingTalk
    with FakeDingTalk() as fake, Env(fake=fake) as env:
        seed(env)
        open_up(env.dir)
        open_up(os.path.join(ROOT, "static"))
        srv = None
        try:
            srv = server_class(env)
            srv.start()
            sessions = scenario(t, env, srv, srv.name)
            target = "/protected/app.cgi?x=1&y=%2F2"
            if all(os.path.exists(os.path.join(CGI_DIR, p)) for p in
                   ("login.fcgi", "exchange.fcgi", "callback.fcgi")):
                sid = login_flow(t, srv, fake, "u004", target)
                leave_by_callback(t, srv, fake, "u004", sid, target)
            if extra_checks is not None:
                extra_checks(t, env, srv, sessions)
        except Exception as e:
            t.check("%s scenario ran to the end" % server_class.name, False,
                    "%r\n%s" % (e, srv.log() if srv else ""))
        finally:
            if srv is not None:
                srv.stop()
        if srv is not None:
            logs = srv.log()
            t.check("%s: no sanitizer report or crash in the logs" % srv.name,
                    "Sanitizer" not in logs and "runtime error" not in logs,
                    logs[-3000:])
        if t.failed and srv is not None:
            print("# %s logs:" % srv.name)
            for line in srv.log().splitlines()[-60:]:
                print("#   " + line)
    t.done()
