# -*- coding: utf-8 -*-
"""One worker and one sync at a time per database (db_lock), on both
engines: with SQLite a flock(2) on a file beside the database, with
PostgreSQL a session advisory lock, which holds across every node and is
let go when the holder's connection ends. A second one is refused and
changes nothing; a holder killed with SIGKILL frees its lock at once;
dingauth doctor says who holds what (--json: backend.locks).
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, DINGAUTH, kill_tree, wait_for  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()


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


def spawn(env, *args):
    return subprocess.Popen([DINGAUTH] + list(args), env=env.environ(
        DINGAUTH_SYNC_AT="off"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)


def runs(env):
    return env.sql("SELECT count(*) FROM sync_runs")[0][0]


def section_worker(env):
    w = spawn(env, "worker")
    try:
        held = wait_for(lambda: lock_of(doctor(env), "worker").get("held"),
                        15)
        t.check("worker: the running one holds the worker lock (doctor "
                "--json)", held, doctor(env))
        if env.pg is not None:
            holder = lock_of(doctor(env), "worker").get("holder") or ""
            t.check("worker: PostgreSQL names the holder's host and pid",
                    (" %d " % w.pid) in holder, holder)
        else:
            t.check("worker: SQLite says a process on this host holds it",
                    "this host" in (lock_of(doctor(env), "worker").get(
                        "holder") or ""), doctor(env))
        r = env.cmd("doctor")
        t.check("worker: doctor's text says the lock is held",
                "worker lock: held by" in r.stdout, r.stdout)
        r = env.cmd("worker", "--once", timeout=60)
        t.check("worker: a second one is refused, exit 1",
                r.returncode == 1 and "one worker per database" in r.stderr,
                r)
        os.kill(w.pid, signal.SIGKILL)
        w.wait(10)
        t0 = time.time()
        free = wait_for(lambda: not lock_of(doctor(env), "worker").get(
            "held", True), 10)
        t.check("worker: killed (SIGKILL), its lock is free (%.1f s)"
                % (time.time() - t0), free, doctor(env))
        r = env.cmd("worker", "--once", timeout=60)
        t.check("worker: ...and the next worker runs", r.returncode == 0, r)
    finally:
        kill_tree(w)


def section_sync(env, fk):
    fk.fault("/topapi/v2/department/listsub", "slow", count=1,
             delay_ms=3000)
    before = runs(env)
    s = spawn(env, "sync")
    try:
        held = wait_for(lambda: lock_of(doctor(env), "sync").get("held"),
                        10)
        t.check("sync: the running one holds the sync lock", held,
                doctor(env))
        mid = runs(env)
        r = env.cmd("sync", "--json", timeout=60)
        doc = {}
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            pass
        t.check("sync: a second one at the same time is refused, exit 1",
                r.returncode == 1 and "another sync is running" in r.stderr,
                r)
        t.eq("sync: ...its --json says failed and why",
             (doc.get("outcome"), "another sync" in (doc.get("reason") or
                                                    "")), ("failed", True))
        t.eq("sync: ...and it recorded no run", runs(env), mid)
        out, err = s.communicate(timeout=60)
        t.check("sync: the first one completes", s.returncode == 0,
                out + err)
        t.eq("sync: one run recorded in all", runs(env), before + 1)
        t.check("sync: its lock is free again",
                lock_of(doctor(env), "sync").get("held") is False,
                doctor(env))
        t.eq("sync: the next one runs", env.cmd("sync").returncode, 0)
    finally:
        kill_tree(s)


def section_owner(env):
    """SQLite: a lock file root makes (sudo dingauth sync) belongs to the
    database's owner, so the programs' user can take the lock later."""
    if env.pg is not None or os.geteuid() != 0:
        t.eq("a first sync", env.cmd("sync").returncode, 0)
        return
    os.chown(env.db, 65534, 65534)
    try:
        t.eq("a first sync, run by root", env.cmd("sync").returncode, 0)
        st = os.stat(env.db + ".sync-lock")
        t.eq("...its lock file belongs to the database's owner",
             (st.st_uid, st.st_gid), (65534, 65534))
    finally:
        os.chown(env.db, 0, 0)


with FakeDingTalk() as fk, Env(fake=fk) as env:
    section_owner(env)
    section_worker(env)
    section_sync(env, fk)
t.done()
