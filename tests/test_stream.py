#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Stream mode (issue 14): `dingauth worker` with DINGAUTH_EVENT_MODE=stream
against the fake DingTalk's open endpoint and its wss:// gateway (a throwaway
CA, given to dingauth as DINGAUTH_CA_FILE: verification stays on).

    /usr/bin/python3 tests/test_stream.py [-k SUBSTRING]

Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import T, Env, wait_for  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

USER_GET = "/topapi/v2/user/get"
OPEN = "/v1.0/gateway/connections/open"
ONLY = None
if len(sys.argv) > 2 and sys.argv[1] == "-k":
    ONLY = sys.argv[2]

t = T()
TMP = tempfile.mkdtemp(prefix="dingauth-stream-")


# --------------------------------------------------------------------------
# helpers


class Stream:
    """A fake with its gateway, a synced database, and the worker."""

    def __init__(self, **extra):
        self.ca = os.path.join(TMP, "ca-%s.pem" % secrets.token_hex(4))
        self.fk = FakeDingTalk(stream_ca=self.ca).start()
        cfg = dict(DINGAUTH_EVENT_MODE="stream", DINGAUTH_CA_FILE=self.ca,
                   DINGAUTH_SYNC_AT="off")
        cfg.update(extra)
        self.env = Env(fake=self.fk, **cfg)
        r = self.env.cmd("sync")
        if r.returncode != 0:
            raise RuntimeError("sync failed: %s" % r.stderr)
        self.p = None
        self.logf = None

    def start(self, wait_link=True):
        self.logf = open(os.path.join(self.env.dir, "worker.log"), "a")
        self.p = subprocess.Popen([harness.DINGAUTH, "worker"], env=self.env.environ(),
                                  stdout=subprocess.DEVNULL, stderr=self.logf)
        if wait_link:
            n = len(self.state()["live"])
            wait_for(lambda: len(self.state()["live"]) > n or self.p.poll() is not None, 15)
        return self

    def log(self):
        try:
            return open(os.path.join(self.env.dir, "worker.log")).read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        start = time.time()
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        took = time.time() - start
        if self.logf:
            self.logf.close()
            self.logf = None
        rc, self.p = (self.p.returncode if self.p else None), None
        return rc, took

    def state(self):
        return self.fk.stream_state()

    def acks(self, mid):
        return [a for a in self.state()["acks"] if a.get("messageId") == mid]

    def ack(self, mid, timeout=10):
        wait_for(lambda: self.acks(mid), timeout)
        got = self.acks(mid)
        return got[-1] if got else None

    def rows(self):
        return self.env.sql("SELECT dedupe_key, event_type, state, source FROM events"
                            " ORDER BY id")

    def close(self):
        self.stop()
        self.fk.stop()
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def user_gets(fk, userid):
    return [e for e in fk.log(USER_GET) if (e.get("json") or {}).get("userid") == userid]


def status_of(ack):
    try:
        return json.loads(ack["data"]).get("status")
    except (TypeError, ValueError, KeyError):
        return None


def section(name):
    return ONLY is None or ONLY in name


def run_section(name, fn):
    if not section(name):
        return
    print("# %s" % name, flush=True)
    try:
        fn()
    except Exception:
        t.check("%s: ran without a Python exception" % name, False, traceback.format_exc())


# --------------------------------------------------------------------------
# sections

def section_event_ack():
    with Stream() as s:
        s.start()
        t.eq("link: one link open", len(s.state()["live"]), 1)
        opened = s.fk.log(OPEN)
        t.check("open call: clientId, secret, EVENT * and Accept json",
                opened and opened[0]["json"]["clientId"] == s.fk.apps()["appkey"] and
                opened[0]["json"]["subscriptions"] == [{"type": "EVENT", "topic": "*"}],
                opened)
        r = s.fk.stream_event({"eventType": "user_modify_org", "eventId": "ev-1",
                               "data": {"timeStamp": "1717000000100", "userId": ["u002"]}})
        a = s.ack(r["messageId"])
        want = ('{"code":200,"headers":{"contentType":"application/json","messageId":"%s"},'
                '"message":"OK","data":"{\\"status\\":\\"SUCCESS\\",\\"message\\":\\"stored\\"}"}'
                % r["messageId"])
        t.eq("event: the ACK's bytes", a and a["raw"], want)
        t.eq("event: stored once with source stream", s.rows(),
             [("event:ev-1", "user_modify_org", s.rows()[0][2] if s.rows() else None, "stream")])
        t.check("event: applied by the worker (user fetched)",
                wait_for(lambda: s.rows()[0][2] == "applied", 10), s.rows())
        payload = json.loads(s.env.sql("SELECT payload FROM events")[0][0])
        t.check("event: payload carries the header fields and lowerCamel data",
                payload.get("eventType") == "user_modify_org" and
                payload.get("eventCorpId") == s.fk.corp()["corp_id"] and
                payload.get("userId") == ["u002"], payload)

        # The same event again (a re-push, new messageId): ACKed, applied once.
        gets = len(user_gets(s.fk, "u002"))
        r2 = s.fk.stream_event({"eventType": "user_modify_org", "eventId": "ev-1",
                                "data": {"timeStamp": "1717000000100", "userId": ["u002"]}})
        a2 = s.ack(r2["messageId"])
        t.eq("duplicate: ACKed SUCCESS", status_of(a2), "SUCCESS")
        t.check("duplicate: code 200, said duplicate", a2 and a2["code"] == 200 and
                "duplicate" in a2["data"], a2)
        time.sleep(1.5)
        t.eq("duplicate: still one row", len(s.rows()), 1)
        t.eq("duplicate: not applied again (no new user fetch)", len(user_gets(s.fk, "u002")), gets)

        # Another company's event: acknowledged, not stored.
        r3 = s.fk.stream_event({"eventType": "user_leave_org", "eventId": "ev-foreign",
                                "eventCorpId": "dingOTHERCORP",
                                "data": {"userId": ["u001"]}})
        a3 = s.ack(r3["messageId"])
        t.eq("foreign corp: ACKed SUCCESS", status_of(a3), "SUCCESS")
        t.eq("foreign corp: nothing stored", len(s.rows()), 1)
        t.check("foreign corp: the leaver named stays active",
                s.env.sql("SELECT active FROM users WHERE userid = 'u001'") == [(1,)])

        # SYSTEM ping: data echoed verbatim.
        p = s.fk.stream_system("ping", data='{"opaque":"op-123"}')
        a4 = s.ack(p["messageId"])
        t.check("ping: code 200, the opaque echoed verbatim",
                a4 and a4["code"] == 200 and a4["data"] == '{"opaque":"op-123"}', a4)

        # Garbage and frames of no use: the link stays.
        s.fk.stream_raw("this is not JSON {")
        s.fk.stream_raw(json.dumps({"type": "CALLBACK", "headers": {"messageId": "cb-1"},
                                    "data": "{}"}))
        a5 = s.ack("cb-1")
        t.check("callback frame: answered 404", a5 and a5["code"] == 404, a5)
        r6 = s.fk.stream_event({"eventType": "user_add_org", "eventId": "ev-bad",
                                "data": "not json"})
        a6 = s.ack(r6["messageId"])
        t.check("unusable event: ACKed, not stored", status_of(a6) == "SUCCESS" and
                len(s.rows()) == 1, (a6, s.rows()))
        t.eq("garbage: still the same one link", s.state()["live"], [1])


def section_leave():
    with Stream() as s:
        s.start()
        s.env.open_session("u001")
        s.env.open_session("u001")
        t0 = time.time()
        r = s.fk.stream_event({"eventType": "user_leave_org", "eventId": "ev-leave",
                               "data": {"timeStamp": str(int(t0 * 1000)), "userId": ["u001"]}})
        gone = wait_for(lambda: s.env.sessions_of("u001") == 0, 1.0)
        took = time.time() - t0
        t.check("leave: the leaver's sessions end within a second (%.2f s)" % took, gone)
        a = s.ack(r["messageId"])
        t.eq("leave: ACKed SUCCESS", status_of(a), "SUCCESS")
        t.eq("leave: stored applied, in the storing transaction", s.rows(),
             [("event:ev-leave", "user_leave_org", "applied", "stream")])
        t.eq("leave: the user is inactive",
             s.env.sql("SELECT active FROM users WHERE userid = 'u001'"), [(0,)])


def section_db_cannot_store():
    with Stream() as s:
        s.start()
        before = s.env.snapshot()
        if s.env.pg is not None:
            s.env.sql("CREATE FUNCTION no_store() RETURNS trigger"
                      " LANGUAGE plpgsql AS $$ BEGIN"
                      " RAISE EXCEPTION 'disk full (test)'; END $$")
            s.env.sql("CREATE TRIGGER no_store BEFORE INSERT ON events"
                      " FOR EACH ROW EXECUTE FUNCTION no_store()")
        else:
            s.env.sql("CREATE TRIGGER no_store BEFORE INSERT ON events"
                      " BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END")
        snap = s.env.snapshot()
        r = s.fk.stream_event({"eventType": "user_leave_org", "eventId": "ev-later",
                               "data": {"userId": ["u003"]}})
        a = s.ack(r["messageId"])
        t.eq("db fails: ACK status LATER", status_of(a), "LATER")
        t.eq("db fails: ACK code 500", a and a["code"], 500)
        time.sleep(0.3)
        after = s.env.snapshot()
        t.check("db fails: nothing half-written (no event, the leaver still active)",
                after.get("events") == snap.get("events") and
                after.get("users") == snap.get("users") and
                after.get("sessions") == before.get("sessions"), (snap.get("events"), after.get("events")))
        s.env.sql("DROP TRIGGER no_store" +
                  (" ON events" if s.env.pg is not None else ""))
        t.check("db back: the redelivered event is stored once",
                wait_for(lambda: s.rows() == [("event:ev-later", "user_leave_org", "applied",
                                               "stream")], 10), s.rows())
        t.check("db back: the re-push got SUCCESS",
                wait_for(lambda: any(status_of(x) == "SUCCESS" for x in s.acks(r["messageId"]))))


def section_disconnect():
    with Stream() as s:
        s.start()
        first_ticket = s.state()["opens"][0]["ticket"]
        s.fk.stream_system("disconnect", cut_after_ms=8000)
        t.check("disconnect: a second link opens",
                wait_for(lambda: len(s.state()["conns"]) >= 2, 10), s.state())
        t.check("disconnect: the old link is then closed by us (1000)",
                wait_for(lambda: s.state()["conns"][0]["closed"] is not None, 5), s.state())
        st = s.state()
        opens = [o for o in st["opens"] if not o["refused"]]
        t.check("disconnect: a new open call with a new ticket",
                len(opens) >= 2 and opens[1]["ticket"] != first_ticket, opens)
        t.check("disconnect: new link opened before the old one closed",
                st["conns"][1]["opened"] <= st["conns"][0]["closed"], st["conns"])
        t.eq("disconnect: the old link got our close frame", st["conns"][0]["close_code"], 1000)
        t.check("disconnect: closed well before the server's cut",
                st["conns"][0]["closed"] - st["conns"][0]["opened"] < 7, st["conns"])
        r = s.fk.stream_event({"eventType": "org_dept_modify", "eventId": "ev-after",
                               "data": {"deptId": [1]}})
        t.eq("disconnect: events flow on the new link", (s.ack(r["messageId"]) or {}).get("conn"), 2)


def section_drop():
    with Stream() as s:
        s.start()
        s.fk.stream_system("ping")   # a frame: the backoff starts over
        time.sleep(0.3)
        t0 = time.time()
        s.fk.stream_drop()
        ok = wait_for(lambda: len(s.state()["live"]) == 1 and s.state()["live"][0] == 2, 10)
        t.check("abrupt drop: a new link within seconds (%.1f s)" % (time.time() - t0),
                ok and time.time() - t0 < 5, s.state())
        r = s.fk.stream_event({"eventType": "user_active_org", "eventId": "ev-drop",
                               "data": {"userId": ["u002"]}})
        t.eq("abrupt drop: events flow again", status_of(s.ack(r["messageId"])), "SUCCESS")


def section_refused():
    with Stream() as s:
        s.fk.stream_refuse(3)
        s.start(wait_link=False)
        t.check("refused opens: a link after three refusals",
                wait_for(lambda: len(s.state()["live"]) == 1, 20), s.log())
        times = [o["t"] for o in s.state()["opens"]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        t.eq("refused opens: four open calls", len(times), 4)
        t.check("refused opens: growing delays (%s)" % ", ".join("%.2f" % g for g in gaps),
                len(gaps) == 3 and gaps[0] >= 0.9 and gaps[1] > gaps[0] and gaps[2] > gaps[1] and
                gaps[2] < 6.5, gaps)
        t.check("refused opens: each logged with the next wait",
                s.log().count("the open call failed") == 3, s.log())


def section_half_open():
    with Stream(DINGAUTH_STREAM_IDLE="1") as s:
        s.start()
        time.sleep(1.6)
        t.check("idle: the worker pings an idle link (pong answered, link kept)",
                s.state()["conns"][0]["pings"] >= 1 and s.state()["live"] == [1], s.state())
        s.fk.stream_silence(True)
        t0 = time.time()
        ok = wait_for(lambda: 2 in s.state()["live"], 10)
        t.check("half-open: no answer to a ping, a new link (%.1f s)" % (time.time() - t0),
                ok and time.time() - t0 < 6, s.log())
        t.check("half-open: said so in the log", "half-open" in s.log(), s.log())


def section_kill_restart():
    with Stream() as s:
        s.start()
        # Stored, but its ACK is lost (as if the worker died before answering).
        r1 = s.fk.stream_event({"eventType": "user_leave_org", "eventId": "ev-k1",
                                "data": {"userId": ["u003"]}}, lose_ack=True)
        wait_for(lambda: s.acks(r1["messageId"]))
        s.stop(signal.SIGKILL)
        # Pushed while no worker runs.
        r2 = s.fk.stream_event({"eventType": "user_modify_org", "eventId": "ev-k2",
                                "data": {"userId": ["u002"]}})
        t.eq("kill -9: both events still pending at DingTalk", sorted(s.state()["pending"]),
             sorted([r1["messageId"], r2["messageId"]]))
        s.start()
        ok = wait_for(lambda: not s.state()["pending"], 10)
        t.check("restart: both events ACKed SUCCESS", ok, s.state())
        t.check("restart: each stored once",
                wait_for(lambda: [r[0] for r in s.rows()] == ["event:ev-k1", "event:ev-k2"], 5),
                s.rows())
        t.check("restart: each applied", wait_for(
            lambda: [r[2] for r in s.rows()] == ["applied", "applied"], 10), s.rows())
        t.eq("restart: the re-push of the stored one was a duplicate",
             json.loads(s.acks(r1["messageId"])[-1]["data"])["message"], "duplicate")


def section_sigterm():
    with Stream() as s:
        s.start()
        rc, took = s.stop(signal.SIGTERM)
        st = s.state()
        t.eq("SIGTERM: exit 0", rc, 0)
        t.check("SIGTERM: exits within a few seconds (%.1f s)" % took, took < 4)
        t.eq("SIGTERM: a close frame 1000 was sent", st["conns"][0]["close_code"], 1000)


def section_tls():
    # The gateway's certificate is from a CA dingauth is not told about.
    with Stream() as s:
        other = os.path.join(TMP, "other-ca.pem")
        with FakeDingTalk(stream_ca=other):
            pass
        s.env.set(DINGAUTH_CA_FILE=other)
        s.start(wait_link=False)
        time.sleep(2.5)
        t.eq("tls: no link with an untrusted certificate", s.state()["conns"], [])
        t.check("tls: the log says why", "certificate" in s.log(), s.log())


def section_once():
    with Stream() as s:
        r = s.env.cmd("worker", "--once")
        t.eq("--once in stream mode: exit 0", r.returncode, 0)
        t.eq("--once: no open call", s.fk.log(OPEN), [])


def section_doctor():
    with Stream() as s:
        r = s.env.cmd("doctor")
        lines = [l for l in r.stdout.splitlines() if " stream " in l]
        t.check("doctor: the open call works", any(l.startswith("ok") and "open call works" in l
                                                   for l in lines), r.stdout)
        t.check("doctor: warns that the console must say Stream and callback.fcgi is unused",
                any(l.startswith("warn") and "Stream mode" in l and "callback.fcgi" in l
                    for l in lines), r.stdout)
        s.fk.stream_refuse(1)
        r = s.env.cmd("doctor")
        t.check("doctor: a refused open call fails", r.returncode == 1 and any(
            l.startswith("FAIL") and "open call" in l for l in r.stdout.splitlines()), r.stdout)
        s.env.set(DINGAUTH_EVENT_MODE="http")
        r = s.env.cmd("doctor")
        t.check("doctor: no stream lines in http mode", " stream " not in r.stdout, r.stdout)


run_section("event_ack", section_event_ack)
run_section("doctor", section_doctor)
run_section("leave", section_leave)
run_section("db_cannot_store", section_db_cannot_store)
run_section("disconnect", section_disconnect)
run_section("drop", section_drop)
run_section("refused", section_refused)
run_section("half_open", section_half_open)
run_section("kill_restart", section_kill_restart)
run_section("sigterm", section_sigterm)
run_section("tls", section_tls)
run_section("once", section_once)
t.done()
