"""Benchmark: a full directory sync of a big company from the fake DingTalk.

    /usr/bin/python3 tests/bench/sync.py [--users 50000] [--depts 2000]
        [--depth 8] [--qps 1000] [--concurrency 8] [--seed 1]

Starts the fake with a generated company and its rate limit raised to
--qps (DINGAUTH_SYNC_QPS is set to the same), runs 'dingauth sync --json'
twice (a first copy into an empty database, then a resync with nothing to
change) and prints one JSON object on stdout: per run the wall time, the
requests made, the time spent fetching and applying, and the peak resident
memory of the dingauth process alone (GNU time's %M; the fake is not counted).
Not part of 'make test'.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from harness import DINGAUTH, Env  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402


TIME = "/usr/bin/time"


def run_sync(env, extra):
    """One 'dingauth sync --json':
    (wall seconds, peak RSS KiB, CPU seconds, rc, summary, stderr).

    Peak RSS comes from GNU time (-f %M) when it is installed: a child's
    ru_maxrss on Linux starts from the high-water mark of the process that
    forked it (this Python, which holds the generated company), so wait4
    on our own child would overstate it. Without GNU time, wait4 is used.
    """
    rss_file = os.path.join(env.dir, "maxrss")
    argv = [DINGAUTH, "sync", "--json"]
    if os.access(TIME, os.X_OK):
        argv = [TIME, "-f", "%M", "-o", rss_file] + argv
    start = time.monotonic()
    p = subprocess.Popen(argv, env=env.environ(**extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    # Read both pipes to the end, then reap with wait4 for the child's rusage.
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    sel.register(p.stderr, selectors.EVENT_READ)
    while sel.get_map():
        for key, _ in sel.select():
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
            elif key.fileobj is p.stdout:
                out += chunk
            else:
                err += chunk
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    rss = usage.ru_maxrss
    try:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
        os.unlink(rss_file)
    except (OSError, ValueError, IndexError):
        pass
    try:
        summary = json.loads(out.decode())
    except ValueError:
        summary = {}
    # wait4 counts the child and what it waited for (dingauth under time).
    cpu = usage.ru_utime + usage.ru_stime
    return wall, rss, cpu, p.returncode, summary, err.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50000)
    ap.add_argument("--depts", type=int, default=2000)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--qps", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    gen = "depts=%d,users=%d,depth=%d,seed=%d" % (args.depts, args.users, args.depth,
                                                   args.seed)
    extra = {"DINGAUTH_SYNC_QPS": str(args.qps),
             "DINGAUTH_SYNC_CONCURRENCY": str(args.concurrency),
             "DINGAUTH_LOG_LEVEL": "warn", "DINGAUTH_HTTP_TIMEOUT": "60000"}
    result = {"benchmark": "sync", "generate": gen, "qps": args.qps,
              "concurrency": args.concurrency, "runs": []}
    with FakeDingTalk(generate=gen, qps=args.qps, startup_timeout=300) as fk, \
            Env(fake=fk) as env:
        for name in ("first", "resync"):
            fk.clear_log()
            wall, rss_kb, cpu, rc, summary, err = run_sync(env, extra)
            run = {"run": name, "exit": rc, "outcome": summary.get("outcome"),
                   "wall_seconds": round(wall, 3),
                   "requests": summary.get("requests"),
                   "requests_per_second": round((summary.get("requests") or 0) / wall, 1)
                   if wall > 0 else None,
                   "cpu_seconds": round(cpu, 3),
                   "peak_rss_kb": rss_kb, "peak_rss_mb": round(rss_kb / 1024.0, 1),
                   "users": summary.get("users"),
                   "departments": summary.get("departments"),
                   "added": summary.get("added"), "updated": summary.get("updated"),
                   "rate_limited": summary.get("rate_limited"),
                   "retries": summary.get("retries"),
                   "fetch_seconds": (summary.get("fetch_milliseconds") or 0) / 1000.0,
                   "apply_seconds": (summary.get("apply_milliseconds") or 0) / 1000.0,
                   "fake_requests_logged": fk.stats().get("requests")}
            if rc != 0:
                run["stderr"] = err[-2000:]
            result["runs"].append(run)
        result["database_bytes"] = os.path.getsize(env.db)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if all(r["exit"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
