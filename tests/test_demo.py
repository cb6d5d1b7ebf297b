"""make run's demo (scripts/demo) with the simulator, on a free port and in
a temporary directory (DINGAUTH_DEMO_PORT, DINGAUTH_DEMO_DIR): it starts,
its front page says who is who, and the people behave as it says: 赵六
(u005) has really left (the directory says so, the sign-in is refused),
孙七 (u007) waits for review, 张三 signs in and reaches /demo/. Ctrl-C (here
SIGTERM) stops everything.

Run: /usr/bin/python3 tests/test_demo.py
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, T, free_port, http  # noqa: E402

t = T()
DINGAUTH = os.path.join(os.environ.get("DINGAUTH_BIN_DIR") or
                        os.path.join(ROOT, "bin"), "dingauth")


def cookie(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1]
    return None


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def main():
    if not os.access("/usr/sbin/lighttpd", os.X_OK):
        t.check("lighttpd is installed (the demo needs it)", False)
        t.done()
    run = tempfile.mkdtemp(prefix="dingauth-demo-")
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DINGAUTH_CONFIG", "DINGAUTH_DEMO"))}
    env.update(DINGAUTH_DEMO_PORT=str(port), DINGAUTH_DEMO_DIR=run)
    out = open(os.path.join(run + ".out"), "w+")
    p = subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "demo")],
                         cwd=ROOT, env=env, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.time() + 90
        text = ""
        while time.time() < end and p.poll() is None:
            out.seek(0)
            text = out.read()
            if "dingauth demo is running" in text:
                break
            time.sleep(0.2)
        t.check("the demo starts on a free port without DingTalk credentials",
                "dingauth demo is running: %s/" % url in text, text[-3000:])
        if "dingauth demo is running" not in text:
            return
        conf = os.path.join(run, "dingauth.conf")
        with open(os.path.join(run, "simulator.out")) as f:
            fake = re.search(r"^LISTENING (\S+)", f.read(), re.M).group(1)

        st, hs, body = http("GET", url + "/")
        page = body.decode()
        t.check("the front page says who is who",
                st == 200 and "赵六 (u005) has left" in page and
                "孙七 (u007)" in page and "review" in page, page[-1500:])

        def show(userid):
            r = subprocess.run([DINGAUTH, "users", "show", userid, "--json"],
                               env=dict(env, DINGAUTH_CONFIG=conf),
                               stdout=subprocess.PIPE, text=True, timeout=30)
            try:
                return json.loads(r.stdout)
            except ValueError:
                return {}

        t.eq("赵六 has left in the directory", show("u005").get("active"),
             False)

        def sign_in(userid):
            st, hs, body = http("GET", url + "/dingauth/login?rd=/demo/")
            state = cookie(hs, "dingauth_state")
            req = urllib.request.Request(
                fake + "/_fake/code", json.dumps(
                    {"kind": "oauth", "userid": userid}).encode(),
                {"Content-Type": "application/json"})
            code = json.load(urllib.request.urlopen(req, timeout=30))["code"]
            return http("GET", url + "/dingauth/exchange?" +
                        urllib.parse.urlencode({"authCode": code,
                                                "state": state or ""}),
                        headers={"Cookie": "dingauth_state=%s" % state})

        st, hs, body = sign_in("u005")
        t.check("赵六 is refused: left the company",
                st == 403 and b'data-problem="inactive"' in body,
                (st, body[-800:]))
        st, hs, body = sign_in("u007")
        t.check("孙七 waits for review",
                st == 403 and b'data-problem="waiting_for_approval"' in body,
                (st, body[-800:]))
        r = subprocess.run([DINGAUTH, "requests", "list"],
                           env=dict(env, DINGAUTH_CONFIG=conf),
                           stdout=subprocess.PIPE, text=True, timeout=30)
        t.check("... and an operator sees the request", "un007" in r.stdout
                or "孙七" in r.stdout, r.stdout)
        st, hs, body = sign_in("u001")
        sid = cookie(hs, "dingauth_session")
        t.check("张三 signs in and is sent to /demo/",
                st == 302 and header(hs, "Location") == "/demo/" and sid,
                (st, hs))
        st, hs, body = http("GET", url + "/demo/",
                            headers={"Cookie": "dingauth_session=%s" % sid})
        t.check("... and /demo/ greets 张三", st == 200 and
                "Hello, 张三" in body.decode(), (st, body[:400]))
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        out.seek(0)
        tail = out.read()[-400:]
        out.close()
        t.check("the demo stops on SIGTERM", "demo: stopped" in tail, tail)
        try:
            http("GET", url + "/", timeout=2)
            t.check("... and its server with it", False)
        except OSError:
            t.check("... and its server with it", True)
        shutil.rmtree(run, ignore_errors=True)
        os.unlink(run + ".out")
    t.done()


if __name__ == "__main__":
    main()
