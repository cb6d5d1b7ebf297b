#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Group commit in callback.fcgi (issue 11; src/group.c, docs/architecture.md).

    /usr/bin/python3 tests/test_group_commit.py [-k SUBSTRING]

Under FastCGI callback.fcgi's request threads hand each new push, with its
request, to one committer thread that stores every push waiting at that
moment in one transaction, with one fsync, and only then answers them.
These tests run one callback process under a real lighttpd with
tests/preload/fsync_gate.so preloaded: it counts the process's fsync and
fdatasync calls and, while a file "hold" exists, holds them (a disk that
has not finished). That shows, without any timing:

- no push is answered before the fsync that covers it (while the fsync is
  held, none of the waiting pushes has an answer; released, all have);
- many pushes share one commit (fsync calls far fewer than pushes);
- a replay is answered from a read while a commit is held (it writes
  nothing, so it waits for nobody);
- a push that fails inside a batch is rolled back alone (a trigger makes
  one leave fail: it is answered 500 and not stored, its batch mates are
  stored and applied; DingTalk's retry then succeeds), and an error that
  ends the whole transaction fails every push of the batch, none stored,
  none answered success;
- many concurrent pushes, each sent twice: every one stored once, every
  leave applied once, every hire fetched from DingTalk once (by the
  applier thread, after the answers).

SQLite only: the fsync that is held is the callback process's own.
Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
"""
import concurrent.futures
import http.client
import json
import os
import secrets
import sys
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import T, Env, Lighttpd, wait_for  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

CALLBACK = "/dingauth/callback"
SHIM = os.path.join(harness.BUILD, "preload", "fsync_gate.so")
ONLY = None
if len(sys.argv) > 2 and sys.argv[1] == "-k":
    ONLY = sys.argv[2]

t = T()


class GateLighttpd(Lighttpd):
    """harness.Lighttpd, one process per program, callback.fcgi with the
    fsync gate preloaded and its log at debug level."""

    def __init__(self, env, gate):
        self.gate = gate
        super().__init__(env, procs=1)

    def _fcgi(self, name, prog, mode="responder", extra=None):
        if name == "callback":
            extra = dict(extra or {})
            extra["LD_PRELOAD"] = SHIM
            extra["FSYNC_GATE_DIR"] = self.gate
            # Under ASan the shim is loaded before the sanitizer's runtime:
            # allowed with this (and ignored by a normal build).
            asan = os.environ.get("ASAN_OPTIONS")
            extra["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
            if os.environ.get("TSAN_OPTIONS"):      # a ThreadSanitizer build, by hand
                extra["TSAN_OPTIONS"] = os.environ["TSAN_OPTIONS"]
        return super()._fcgi(name, prog, mode, extra)


class Gate:
    """The shim's directory: hold/release fsync, count the calls."""

    def __init__(self, env):
        self.dir = os.path.join(env.dir, "fsync-gate")
        os.makedirs(self.dir)
        self.hold_path = os.path.join(self.dir, "hold")

    def hold(self):
        open(self.hold_path, "w").close()

    def release(self):
        if os.path.exists(self.hold_path):
            os.unlink(self.hold_path)

    def calls(self):
        try:
            with open(os.path.join(self.dir, "calls")) as f:
                return sum(1 for _ in f)
        except OSError:
            return 0


def active(env, userid):
    rows = env.sql("SELECT active FROM users WHERE userid = ?", (userid,))
    return rows[0][0] if rows else None


def leave(userid):
    return {"EventType": "user_leave_org", "UserId": [userid],
            "eventId": "ev-" + secrets.token_hex(8), "CorpId": "dingcorp0001"}


class Push:
    """One push sent on its own connection from its own thread: the
    answer (status, body) once it arrives, else None."""

    def __init__(self, url, enc, timeout=60):
        self.url = url
        self.enc = enc
        self.timeout = timeout
        self.status = None
        self.body = None
        self.error = None
        self.answered = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        u = urllib.parse.urlsplit(self.url)
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=self.timeout)
            conn.request("POST", CALLBACK + "?" + self.enc["query"], body=self.enc["body"],
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            self.body = r.read().decode("utf-8", "replace")
            self.status = r.status
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the checks
            self.error = repr(e)
        self.answered.set()

    def wait(self):
        self.answered.wait(self.timeout + 5)
        return self

    def ok(self, fk):
        if self.status != 200:
            return False
        d = fk.decrypt(json.loads(self.body))
        return bool(d.get("ok")) and d.get("plaintext") == "success"

    def __repr__(self):
        return "status=%r error=%r body=%r" % (self.status, self.error, (self.body or "")[:200])


def setup(fk, n_users):
    """An Env whose directory holds u001..u<n> signed in (two sessions
    each), and a gated lighttpd (not started)."""
    env = Env(fk, DINGAUTH_LOG_LEVEL="debug")
    for i in range(1, n_users + 1):
        uid = "g%03d" % i
        env.add_user(uid, "un-" + uid, "员工%d" % i)
        env.open_session(uid)
        env.open_session(uid)
    gate = Gate(env)
    return env, gate, GateLighttpd(env, gate.dir)


def no_sanitizer_report(label, lt):
    log = lt.log()
    bad = [m for m in harness.SANITIZER_MARKS if m in log]
    t.check("%s: no sanitizer report from the threads" % label, not bad, log[-3000:])


def programs_of(env, prog):
    """pids of prog's processes serving env (their DINGAUTH_CONFIG)."""
    want = ("DINGAUTH_CONFIG=" + env.conf).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if prog.encode() not in f.read():
                    continue
            with open("/proc/%s/environ" % d, "rb") as f:
                if want in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def count_held(pushes):
    return sum(1 for p in pushes if not p.answered.is_set())


def section_held():
    """While the commit's fsync is held, nobody waiting for it is answered;
    released, all are, and they shared commits."""
    n = 24
    with FakeDingTalk() as fk:
        env, gate, lt = setup(fk, n)
        with lt:
            # Warm the process (the first push opens connections).
            first = fk.encrypt(leave("g001"))
            p0 = Push(lt.url, first).start().wait()
            t.check("held: a first leave is answered success", p0.ok(fk), p0)
            before = gate.calls()
            t.check("held: a commit made at least one fsync", before >= 1, before)

            gate.hold()
            # Some pushes first ...
            encs = [fk.encrypt(leave("g%03d" % i)) for i in range(2, n + 1)]
            pushes = [Push(lt.url, e).start() for e in encs[:8]]
            # The committer reaches the held fsync ...
            t.check("held: the committer is in fsync",
                    wait_for(lambda: gate.calls() > before, 20), gate.calls())
            time.sleep(0.5)
            t.eq("held: no push is answered while its fsync is held",
                 count_held(pushes), len(pushes))
            # The event rows are written but not committed: not visible.
            t.eq("held: nothing of the held commit is visible to others",
                 env.sql("SELECT count(*) FROM events")[0][0], 1)
            # ... then a replay of a stored push: one read, answered at once.
            replay = Push(lt.url, first, timeout=30).start()
            replay.answered.wait(30)
            t.check("held: a replay is answered while a commit is held", replay.ok(fk), replay)
            t.eq("held: and the new pushes still wait", count_held(pushes), len(pushes))
            # Then more than the request threads: none waits for a commit,
            # so they all reach the committer's queue.
            pushes += [Push(lt.url, e).start() for e in encs[8:]]
            time.sleep(1.0)
            t.eq("held: still none answered", count_held(pushes), len(pushes))

            calls_held = gate.calls()
            gate.release()
            for p in pushes:
                p.wait()
            bad = [p for p in pushes if not p.ok(fk)]
            t.check("held: released, every push is answered success", not bad, bad[:3])
            t.eq("held: every push is stored once",
                 env.sql("SELECT count(*), count(DISTINCT dedupe_key) FROM events"), [(n, n)])
            t.eq("held: every leave is applied",
                 env.sql("SELECT state, count(*) FROM events GROUP BY state"), [("applied", n)])
            left = [u for u in ("g%03d" % i for i in range(1, n + 1))
                    if active(env, u) != 0 or env.sessions_of(u) != 0]
            t.eq("held: every leaver inactive, sessions ended", left, [])
            commits = gate.calls() - before
            t.check("held: %d pushes took %d fsync calls (shared commits)"
                    % (len(pushes), commits), commits <= len(pushes) // 2,
                    "fsync calls while held %d, after %d" % (calls_held, gate.calls()))
            batches = [int(l.split(" pushes in one commit")[0].rsplit(" ", 1)[-1])
                       for l in lt.log().splitlines() if " pushes in one commit" in l]
            t.check("held: the log shows a batch of several pushes",
                    batches and max(batches) >= 2, batches)
            # The request threads (CALLBACK_THREADS, 4) never wait for a
            # commit: a batch is not bounded by them.
            t.check("held: a batch larger than the request threads",
                    batches and max(batches) > 4, batches)
            no_sanitizer_report("held", lt)
        env.close()


def section_savepoints():
    """One push failing inside a batch is rolled back alone; an error that
    ends the transaction fails the whole batch and stores nothing."""
    with FakeDingTalk() as fk:
        env, gate, lt = setup(fk, 12)
        # g005's leave fails: its audit row is refused (the statement only).
        env.sql("CREATE TRIGGER poison_abort BEFORE UPDATE OF active ON users "
                "WHEN NEW.userid = 'g005' BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
        with lt:
            warm = Push(lt.url, fk.encrypt(leave("g001"))).start().wait()
            t.check("savepoint: a first leave is answered success", warm.ok(fk), warm)

            base = gate.calls()
            gate.hold()
            blocker = Push(lt.url, fk.encrypt(leave("g002"))).start()
            t.check("savepoint: a commit is held", wait_for(lambda: gate.calls() > base, 20))
            batch = {u: fk.encrypt(leave(u)) for u in ("g003", "g004", "g005", "g006")}
            pushes = {u: Push(lt.url, e).start() for u, e in batch.items()}
            time.sleep(1.0)
            t.eq("savepoint: the batch waits behind the held commit",
                 count_held(list(pushes.values()) + [blocker]), 5)
            gate.release()
            for p in list(pushes.values()) + [blocker]:
                p.wait()
            t.check("savepoint: the poisoned push is refused (500)",
                    pushes["g005"].status == 500, pushes["g005"])
            good = [u for u in ("g003", "g004", "g006") if not pushes[u].ok(fk)]
            t.eq("savepoint: its batch mates are answered success", good, [])
            t.eq("savepoint: the poisoned push is not stored",
                 env.sql("SELECT count(*) FROM events WHERE payload LIKE '%g005%'")[0][0], 0)
            t.eq("savepoint: g005 is still active, signed in",
                 (active(env, "g005"), env.sessions_of("g005")), (1, 2))
            out = [u for u in ("g002", "g003", "g004", "g006")
                   if active(env, u) != 0 or env.sessions_of(u) != 0]
            t.eq("savepoint: the others are out", out, [])
            t.eq("savepoint: one audit row per leave, none for g005",
                 env.sql("SELECT count(*), sum(userid = 'g005') FROM audit "
                         "WHERE outcome = 'left'"), [(5, 0)])

            # DingTalk sends the refused push again: now it goes through.
            env.sql("DROP TRIGGER poison_abort")
            retry = Push(lt.url, batch["g005"]).start().wait()
            t.check("savepoint: DingTalk's retry is answered success", retry.ok(fk), retry)
            t.eq("savepoint: and g005 is out", (active(env, "g005"), env.sessions_of("g005")),
                 (0, 0))

            # An error that ends the whole transaction (RAISE(ROLLBACK)).
            env.sql("CREATE TRIGGER poison_all BEFORE UPDATE OF active ON users "
                    "WHEN NEW.userid = 'g009' BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END")
            base = gate.calls()
            gate.hold()
            blocker = Push(lt.url, fk.encrypt(leave("g007"))).start()
            t.check("rollback: a commit is held", wait_for(lambda: gate.calls() > base, 20))
            batch = {u: fk.encrypt(leave(u)) for u in ("g008", "g009", "g010")}
            pushes = {u: Push(lt.url, e).start() for u, e in batch.items()}
            time.sleep(1.0)
            gate.release()
            for p in list(pushes.values()) + [blocker]:
                p.wait()
            t.check("rollback: the push before the batch is answered success",
                    blocker.ok(fk), blocker)
            statuses = sorted((u, p.status) for u, p in pushes.items())
            t.check("rollback: no push of the ended transaction is answered success",
                    not any(p.ok(fk) for p in pushes.values()), statuses)
            stored = env.sql("SELECT count(*) FROM events WHERE payload LIKE '%g008%' "
                             "OR payload LIKE '%g009%' OR payload LIKE '%g010%'")[0][0]
            t.eq("rollback: none of them is stored", stored, 0)
            t.eq("rollback: g008 and g010 are still active",
                 (active(env, "g008"), active(env, "g010")), (1, 1))
            env.sql("DROP TRIGGER poison_all")
            again = [Push(lt.url, e).start() for e in batch.values()]
            for p in again:
                p.wait()
            t.check("rollback: DingTalk's retries are answered success",
                    all(p.ok(fk) for p in again), again)
            t.eq("rollback: and all three are out",
                 [active(env, u) for u in ("g008", "g009", "g010")], [0, 0, 0])
            no_sanitizer_report("savepoints", lt)
        env.close()


def section_concurrent():
    """Many pushes at once, each sent twice: stored once, applied once."""
    n_leave, n_hire = 40, 20
    with FakeDingTalk() as fk:
        env, gate, lt = setup(fk, n_leave)
        hires = ["h%03d" % i for i in range(1, n_hire + 1)]
        for uid in hires:
            fk.put_user({"userid": uid, "unionid": "un-" + uid, "name": "新人" + uid,
                         "dept_id_list": [1]})
        with lt:
            leaves = [fk.encrypt(leave("g%03d" % i)) for i in range(1, n_leave + 1)]
            hire_events = [{"EventType": "user_add_org", "UserId": [uid],
                            "eventId": "ev-" + secrets.token_hex(8), "CorpId": "dingcorp0001"}
                           for uid in hires]
            hire_encs = [fk.encrypt(e) for e in hire_events]
            fk.clear_log()

            def send_all(encs):
                pushes = [Push(lt.url, e) for e in encs + encs]
                with concurrent.futures.ThreadPoolExecutor(32) as ex:
                    list(ex.map(lambda p: p.start().wait(), pushes))
                return pushes

            # The leaves alone first: their only fsyncs are the commits.
            base = gate.calls()
            pushes = send_all(leaves)
            commits = gate.calls() - base
            t.check("concurrent: %d leaves stored with %d fsync calls (fewer than one each)"
                    % (len(leaves), commits), commits < len(leaves), commits)
            pushes += send_all(hire_encs)
            events = leaves + hire_encs
            bad = [p for p in pushes if not p.ok(fk)]
            t.check("concurrent: %d pushes (each twice, 32 at a time) answered success"
                    % len(pushes), not bad, bad[:3])
            t.eq("concurrent: each event stored once",
                 env.sql("SELECT count(*), count(DISTINCT dedupe_key) FROM events"),
                 [(len(events), len(events))])
            t.check("concurrent: every hire applied by the applier thread",
                    wait_for(lambda: env.sql("SELECT count(*) FROM events WHERE "
                                             "state = 'applied'")[0][0] == len(events), 30),
                    env.sql("SELECT state, count(*) FROM events GROUP BY state"))
            t.eq("concurrent: every hire is an active user",
                 env.sql("SELECT count(*) FROM users WHERE userid LIKE 'h%' AND active = 1")[0][0],
                 n_hire)
            asked = sorted(c["json"]["userid"] for c in fk.log(path="/topapi/v2/user/get"))
            t.eq("concurrent: DingTalk asked once per hire, never for a leaver", asked, hires)
            t.eq("concurrent: one audit row per leave",
                 env.sql("SELECT count(*) FROM audit WHERE outcome = 'left'")[0][0], n_leave)
            t.eq("concurrent: no leaver keeps a session",
                 env.sql("SELECT count(*) FROM sessions")[0][0], 0)
            no_sanitizer_report("concurrent", lt)
            pids = programs_of(env, "callback.fcgi")
            t.check("stop: callback.fcgi is running (%d process)" % len(pids), len(pids) == 1, pids)
        # lighttpd stopped its children with SIGTERM: a threaded one too.
        t.check("stop: callback.fcgi ends when the web server stops it",
                wait_for(lambda: not programs_of(env, "callback.fcgi"), 10),
                programs_of(env, "callback.fcgi"))
        env.close()


SECTIONS = [("held", section_held), ("savepoints", section_savepoints),
            ("concurrent", section_concurrent)]


def main():
    if harness.PG:
        print("# group commit: SQLite only (the held fsync is the callback's own)")
        return
    if not os.path.exists(SHIM):
        t.check("the fsync gate is built (%s)" % SHIM, False)
        return
    for name, fn in SECTIONS:
        if ONLY and ONLY not in name:
            continue
        print("# %s" % name, flush=True)
        try:
            fn()
        except Exception:  # noqa: BLE001 - a crash is a failed check
            t.check("%s: ran to the end" % name, False, traceback.format_exc())


if __name__ == "__main__":
    main()
    t.done()
