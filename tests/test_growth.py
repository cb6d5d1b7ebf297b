"""What strangers can grow: anonymous page views against the database.

Every GET of the login page stores a login state remembering rd. Through a
real lighttpd running login.fcgi and exchange.fcgi, 20,000 GETs with a
1,500-byte rd must grow the database and its WAL by at most a few MB
(the live states are capped: session.h STATE_MAX), and a real login must
still work during the flood and after it.

Run: /usr/bin/python3 tests/test_growth.py
"""
import os
import sys
import threading
import time
import http.client
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, Lighttpd, http as http1, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()

GETS = int(os.environ.get('GETS', 20000))
THREADS = 4
RD = "/" + "a" * 1499               # 1,500 bytes
GROWTH_MAX = 6 * 1024 * 1024        # "a few MB"
TIME_MAX = 240                      # seconds for the whole flood


def files_size(env):
    n = 0
    for suffix in ("", "-wal"):
        try:
            n += os.path.getsize(env.db + suffix)
        except OSError:
            pass
    return n


def cookie_of(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0].split("=", 1)[1]
    return None


def login(fk, lt, name):
    """A real login through the web server: page, DingTalk, exchange."""
    st, hs, _ = http1("GET", lt.url + "/dingauth/login?" + qs(rd="/after"))
    state = cookie_of(hs, "dingauth_state")
    if st != 200 or not state:
        return t.check(name + ": login page gives a state", False, (st, hs))
    code = fk.code(userid="u001", kind="tmp")["code"]
    st, hs, body = http1("GET", lt.url + "/dingauth/exchange?" +
                         qs(code=code, state=state),
                         headers={"Cookie": "dingauth_state=" + state})
    return t.check(name + ": a real login works (302 to rd, a session)",
                   st == 302 and dict((k.lower(), v) for k, v in hs).get(
                       "location") == "/after" and
                   cookie_of(hs, "dingauth_session"), (st, hs, body[:300]))


def flood(lt, n, errors):
    u = urllib.parse.urlsplit(lt.url)
    path = "/dingauth/login?" + qs(rd=RD)
    conn = None
    for _ in range(n):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
            conn = None
    if conn is not None:
        conn.close()


def test_flood():
    fk = FakeDingTalk(qps=100000).start()
    try:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW="sns") as env:
            env.sql("INSERT INTO users (userid, unionid, name, source,"
                    " created_at, updated_at) VALUES ('u001', 'un001', 'Z',"
                    " 'sync', 1, 1)")
            env.sql("INSERT INTO user_depts (userid, dept_id) VALUES ('u001', 1)")
            with Lighttpd(env, procs=2) as lt:
                login(fk, lt, "before the flood")
                before = files_size(env)
                errors = []
                started = time.time()
                threads = [threading.Thread(target=flood,
                                            args=(lt, GETS // THREADS, errors))
                           for _ in range(THREADS)]
                for th in threads:
                    th.start()
                time.sleep(2)
                login(fk, lt, "during the flood")
                for th in threads:
                    th.join(TIME_MAX)
                took = time.time() - started
                t.check("%d GETs within %d s (%.1f s)" % (GETS, TIME_MAX, took),
                        not any(th.is_alive() for th in threads))
                t.check("every GET answered 200", not errors, errors[:5])
                after = files_size(env)
                growth = after - before
                print("# %d GETs with a %d-byte rd in %.1f s: db+wal %.2f MB"
                      " -> %.2f MB (+%.2f MB)" % (GETS, len(RD), took,
                                                  before / 1e6, after / 1e6,
                                                  growth / 1e6))
                t.check("db+wal grew by at most %d MB (+%.2f MB)"
                        % (GROWTH_MAX >> 20, growth / 1e6), growth <= GROWTH_MAX)
                print("# db %d bytes, wal %d bytes, page_count %r freelist %r" % (
                    os.path.getsize(env.db), os.path.getsize(env.db + "-wal")
                    if os.path.exists(env.db + "-wal") else 0,
                    env.sql("PRAGMA page_count"), env.sql("PRAGMA freelist_count")))
                live = env.sql("SELECT count(*) FROM login_states")[0][0]
                t.check("live states capped (%d)" % live, live <= 1024)
                login(fk, lt, "after the flood")
    finally:
        fk.stop()


if __name__ == "__main__":
    test_flood()
    t.done()
