"""Benchmark: the memory of `dingauth worker` in stream mode over 100,000
events pushed through the fake DingTalk's wss:// gateway.

    /usr/bin/python3 tests/bench/stream.py [--events 100000] [--warmup 2000]

Each event is a user_leave_org for a user dingauth does not know (stored,
applied in the storing transaction, acknowledged): the receive, store and
ACK path with no DingTalk call. VmRSS of the worker is read after the
warm-up and after every tenth of the run; prints one JSON object on stdout
(rss_kb samples, events/s, growth). Not part of 'make test'. Loopback
ports are picked free.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from harness import DINGAUTH, Env  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_success(fk, n, timeout):
    end = time.time() + timeout
    while time.time() < end:
        c = fk.control("GET", "stream/count")
        if c["success"] >= n:
            return c
        time.sleep(0.2)
    return fk.control("GET", "stream/count")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--timeout", type=int, default=900)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dingauth-bench-stream-")
    ca = os.path.join(tmp, "ca.pem")
    out = {"events": a.events, "warmup": a.warmup}
    with FakeDingTalk(stream_ca=ca) as fk, Env(fake=fk, DINGAUTH_EVENT_MODE="stream",
                                               DINGAUTH_CA_FILE=ca, DINGAUTH_SYNC_AT="off",
                                               DINGAUTH_LOG_LEVEL="warn") as env:
        if env.cmd("sync").returncode != 0:
            print(json.dumps({"status": "failed", "why": "sync"}))
            return 1
        log = open(os.path.join(tmp, "worker.log"), "w")
        p = subprocess.Popen([DINGAUTH, "worker"], env=env.environ(), stderr=log)
        try:
            end = time.time() + 15
            while not fk.control("GET", "stream/count")["live"] and time.time() < end:
                time.sleep(0.1)
            fk.control("POST", "stream/burst", {"count": a.warmup, "prefix": "warm"})
            wait_success(fk, a.warmup, a.timeout)
            base = rss_kb(p.pid)
            samples = [[0, base]]
            start = time.time()
            fk.control("POST", "stream/burst", {"count": a.events, "prefix": "run"})
            step = max(1, a.events // 10)
            for k in range(1, 11):
                c = wait_success(fk, a.warmup + min(a.events, k * step), a.timeout)
                samples.append([c["success"] - a.warmup, rss_kb(p.pid)])
            took = time.time() - start
            rows = env.sql("SELECT count(*) FROM events WHERE source = 'stream'")[0][0]
            out.update({"status": "ok", "rss_kb": samples, "rss_after_warmup_kb": base,
                        "rss_end_kb": samples[-1][1], "growth_kb": samples[-1][1] - base,
                        "max_kb": max(x[1] for x in samples), "seconds": round(took, 1),
                        "events_per_s": round(a.events / took, 1) if took > 0 else None,
                        "rows": rows, "links": fk.control("GET", "stream/count")["conns"]})
        finally:
            p.terminate()
            p.wait(20)
            log.close()
    print(json.dumps(out))
    sys.stderr.write("stream: worker VmRSS %d KiB after %d warm-up events, %d KiB after %d more "
                     "(growth %+d KiB), %s events/s, %d rows, %d link(s)\n"
                     % (out.get("rss_after_warmup_kb", 0), a.warmup, out.get("rss_end_kb", 0),
                        a.events, out.get("growth_kb", 0), out.get("events_per_s"),
                        out.get("rows", 0), out.get("links", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
