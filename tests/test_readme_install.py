"""The README's install path, followed from a clean DESTDIR to a login.

Run with /usr/bin/python3 tests/test_readme_install.py (tests/run does).
Every step is the README's "Install" section, in its order, with the
installed files only (make install into a temporary DESTDIR; /etc and
/var/lib moved under it): dingauth init; the console's values filled in
(the fake DingTalk's); lighttpd from the installed example, with its root
set to the installed programs; dingauth doctor; dingauth sync; dingauth
callback register (DingTalk's check_url through the server); then an
employee signs in through the server and reaches a protected file.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, T, free_port, http, wait_port  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
TMP = tempfile.mkdtemp(prefix="dingauth-readme-")
SAN = os.environ.get("SAN", "")
DEST = os.path.join(TMP, "dest")
PREFIX = os.path.join(DEST, "usr/local")
LIBEXEC = os.path.join(PREFIX, "lib/dingauth")
EXAMPLES = os.path.join(PREFIX, "share/dingauth/examples")
DINGAUTH = os.path.join(PREFIX, "bin/dingauth")
CONF = os.path.join(DEST, "etc/dingauth.conf")
DB = os.path.join(DEST, "var/lib/dingauth/dingauth.db")
SECRET_TEXT = "the protected file\n"


def make(*args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT,
                           "SAN=" + SAN] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)


def dingauth(*args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DINGTALK_", "DINGAUTH_"))}
    env["DINGAUTH_CONFIG"] = CONF
    return subprocess.run([DINGAUTH] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300)


def header(hs, name):
    for k, v in hs:
        if k.lower() == name.lower():
            return v
    return None


def set_cookie(hs, name):
    for k, v in hs:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1] or None
    return None


def start_lighttpd(port):
    d = os.path.join(TMP, "lighttpd")
    www = os.path.join(d, "www")
    os.makedirs(os.path.join(www, "protected"))
    with open(os.path.join(www, "protected", "file.txt"), "w") as f:
        f.write(SECRET_TEXT)
    conf = os.path.join(d, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            'server.modules = ( "mod_access" )',
            'server.document-root = "%s"' % www,
            'server.bind = "127.0.0.1"',
            'server.port = %d' % port,
            'server.errorlog = "%s/error.log"' % d,
            # The README: the examples' one path, set to the install.
            'var.dingauth_root = "%s"' % LIBEXEC,
            'var.dingauth_config = "%s"' % CONF,
            'var.dingauth_sockets = "%s"' % d,
            'include "%s"' % os.path.join(EXAMPLES, "lighttpd",
                                          "dingauth.conf"),
            ""]))
    proc = subprocess.Popen(["/usr/sbin/lighttpd", "-D", "-f", conf],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "stderr.log"), "w"),
                            start_new_session=True)
    return proc, d


def logs(d):
    out = ""
    for n in ("error.log", "stderr.log"):
        try:
            with open(os.path.join(d, n), errors="replace") as f:
                out += "== %s\n%s" % (n, f.read()[-3000:])
        except OSError:
            pass
    return out


# make install into a clean DESTDIR.
r = make("install", "DESTDIR=" + DEST)
t.check("readme: make install into a clean DESTDIR", r.returncode == 0,
        r.stdout)
os.makedirs(os.path.dirname(CONF))

# 1. dingauth init.
r = dingauth("init", "--config", CONF, "--db", DB)
t.check("readme 1: dingauth init writes the config and the database, "
        "prints the next steps",
        r.returncode == 0 and os.path.isfile(CONF) and os.path.isfile(DB)
        and "Next steps" in r.stdout, r.stdout)

proc = None
with FakeDingTalk() as fake:
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    # 2. The console's values into the configuration.
    corp = fake.corp()
    apps = corp["apps"]
    with open(CONF, "a", encoding="utf-8") as f:
        f.write("\n".join("%s = %s" % kv for kv in [
            ("DINGTALK_APP_KEY", apps["appkey"]),
            ("DINGTALK_CORP_SECRET", apps["appsecret"]),
            ("DINGTALK_CORP_ID", corp["corp_id"]),
            ("DINGAUTH_PUBLIC_URL", url),
            ("DINGAUTH_COOKIE_SECURE", "0"),     # plain http on loopback
            ("DINGTALK_OAPI_URL", fake.url), ("DINGTALK_API_URL", fake.url),
            ("DINGTALK_LOGIN_URL", fake.url),
            ("DINGTALK_DDLOGIN_JS", fake.url + "/ddlogin.js")]) + "\n")
    try:
        # 3. The web server from the installed example.
        proc, ldir = start_lighttpd(port)
        t.check("readme 3: lighttpd starts from the installed example",
                wait_port(port), logs(ldir))
        # 4. doctor.
        r = dingauth("doctor")
        t.check("readme 4: dingauth doctor passes",
                r.returncode == 0 and re.search(r"^0 failed", r.stdout, re.M),
                r.stdout)
        # 5. sync.
        r = dingauth("sync")
        t.check("readme 5: dingauth sync copies the directory",
                r.returncode == 0, r.stdout)
        # 6. callback register: DingTalk's check_url through the server.
        r = dingauth("callback", "register")
        t.check("readme 6: dingauth callback register (check_url answered "
                "through lighttpd)", r.returncode == 0, r.stdout + logs(ldir))
        # 7. the worker (one pass, as cron runs it): then healthz is green.
        r = dingauth("worker", "--once")
        t.check("readme 7: dingauth worker --once", r.returncode == 0,
                r.stdout)
        st, hs, body = http("GET", url + "/dingauth/healthz")
        t.check("readme 7: GET /dingauth/healthz through lighttpd: 200 ok",
                st == 200 and b'"status":"ok"' in body, (st, body[:400]))
        # An employee signs in and reaches the protected file.
        target = "/protected/file.txt"
        st, hs, body = http("GET", url + target)
        loc = header(hs, "Location") or ""
        t.check("readme: a protected file sends the browser to the login page",
                st == 302 and loc.startswith("/dingauth/login?"), (st, hs))
        st, hs, body = http("GET", url + loc)
        state = set_cookie(hs, "dingauth_state")
        t.check("readme: the login page answers and sets a state",
                st == 200 and state, (st, hs, body[:300], logs(ldir)))
        # The default flow, oauth2: DingTalk returns with an authCode.
        code = fake.code(userid="u001", kind="oauth")["code"]
        st, hs, body = http("GET", url + "/dingauth/exchange?" +
                            urllib.parse.urlencode({"authCode": code,
                                                    "state": state or ""}),
                            headers={"Cookie": "dingauth_state=%s" % state})
        sid = set_cookie(hs, "dingauth_session")
        t.check("readme: the exchange opens a session and returns to the file",
                st == 302 and header(hs, "Location") == target and sid,
                (st, hs, body[:300], logs(ldir)))
        st, hs, body = http("GET", url + target,
                            headers={"Cookie": "dingauth_session=%s" % sid})
        t.check("readme: with the session the protected file is served",
                st == 200 and body.decode() == SECRET_TEXT, (st, body[:200]))
        st, hs, body = http("GET", url + "/dingauth/static/login.css")
        t.check("readme: the installed static files are served",
                st == 200 and len(body) > 0, st)
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

shutil.rmtree(TMP, ignore_errors=True)
t.done()
