"""GET /dingauth/healthz and dingauth doctor (--json, the configuration
file, file modes and owners) (docs/contract.md).

healthz is checked through a real lighttpd (authorize.fcgi in the
responder role) and as plain CGI for the configuration variants.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, Lighttpd, T, http  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
CHECKS = {"database", "directory", "events", "worker"}


def js(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def get_health(srv):
    status, headers, body = http("GET", srv.url + "/dingauth/healthz")
    return status, dict((k.lower(), v) for k, v in headers), body.decode()


def cgi_health(env, **extra):
    r = env.cgi("authorize.fcgi", path="/dingauth/healthz", extra_env=extra)
    return r.status, r.body


with FakeDingTalk() as fk, Env(fake=fk) as env:
    secrets = [env.config["DINGTALK_CORP_SECRET"], env.config["DINGTALK_APP_SECRET"],
               env.config["DINGTALK_TOKEN"], env.config["DINGTALK_AES_TOKEN"]]
    with Lighttpd(env) as srv:
        status, hs, body = get_health(srv)
        doc = js(body) or {}
        t.eq("healthz before any sync or worker: 503", status, 503)
        t.check("healthz: JSON with status fail and the four checks",
                doc.get("status") == "fail" and set(doc.get("checks", {})) == CHECKS, body)
        t.check("healthz: application/json, not cached",
                hs.get("content-type", "").startswith("application/json")
                and "no-store" in hs.get("cache-control", ""), hs)
        c = doc.get("checks", {})
        t.check("healthz: database writable, directory and worker failing",
                c.get("database", {}).get("status") == "ok"
                and c.get("directory", {}).get("status") == "fail"
                and c.get("worker", {}).get("status") == "fail", c)
        t.check("healthz names no path and no secret",
                env.dir not in body and "/" not in body.replace("\\/", "")
                and not any(s in body for s in secrets), body)

        t.eq("sync: exit 0", env.cmd("sync").returncode, 0)
        t.eq("worker --once: exit 0", env.cmd("worker", "--once").returncode, 0)
        status, hs, body = get_health(srv)
        doc = js(body) or {}
        t.check("healthz after a sync and a worker pass: 200 ok",
                status == 200 and doc.get("status") == "ok"
                and all(v.get("status") == "ok" for v in doc.get("checks", {}).values()),
                (status, body))
        ev = doc.get("checks", {}).get("events", {})
        t.check("healthz events: pending 0, no age", ev.get("pending") == 0
                and ev.get("age_seconds") is None and ev.get("limit_seconds") == 600, ev)
        d = doc.get("checks", {}).get("directory", {})
        t.check("healthz directory: its age and the limit", isinstance(
            d.get("age_seconds"), int) and d.get("limit_seconds") == 172800
            and d.get("active_users", 0) > 0, d)

        now = int(time.time())
        env.sql("INSERT INTO events (dedupe_key, event_type, payload, received_at)"
                " VALUES ('old-one', 'user_add_org', '{}', ?)", (now - 3600,))
        status, hs, body = get_health(srv)
        doc = js(body) or {}
        t.check("an event pending for an hour: 503, events failing",
                status == 503 and doc["checks"]["events"]["status"] == "fail"
                and doc["checks"]["events"]["pending"] == 1
                and doc["checks"]["events"]["age_seconds"] >= 3600, body)
        env.sql("DELETE FROM events")
        env.sql("UPDATE worker_status SET beat_at = ?", (now - 3600,))
        status, hs, body = get_health(srv)
        doc = js(body) or {}
        t.check("a worker heartbeat an hour old: 503, worker failing",
                status == 503 and doc["checks"]["worker"]["status"] == "fail", body)
        env.sql("UPDATE worker_status SET beat_at = ?", (now,))
        status, hs, body = get_health(srv)
        t.eq("fresh heartbeat again: 200", status, 200)

    # The directory's age against DINGAUTH_HEALTH_SYNC_AGE (plain CGI).
    env.sql("UPDATE sync_runs SET finished_at = finished_at - 7200")
    status, body = cgi_health(env)
    t.eq("directory two hours old, default limit: 200", status, 200)
    status, body = cgi_health(env, DINGAUTH_HEALTH_SYNC_AGE="3600")
    doc = js(body) or {}
    t.check("...with DINGAUTH_HEALTH_SYNC_AGE=3600: 503, directory failing",
            status == 503 and doc["checks"]["directory"]["status"] == "fail"
            and doc["checks"]["directory"]["limit_seconds"] == 3600, body)
    r = env.cgi("authorize.fcgi", path="/dingauth/healthz",
                extra_env={"DINGAUTH_HEALTH_SYNC_AGE": "12"})
    doc = js(r.body) or {}
    t.check("a limit below an hour is a configuration error: healthz still "
            "answers 503 JSON, the log names the key",
            r.status == 503 and doc.get("status") == "fail"
            and "configuration" in doc["checks"]["database"]["message"]
            and "DINGAUTH_HEALTH_SYNC_AGE" in r.stderr, (r.status, r.body, r.stderr))
    r = env.cgi("authorize.fcgi", path="/dingauth/whoami",
                extra_env={"DINGAUTH_HEALTH_SYNC_AGE": "12"})
    t.eq("...while every other route of the program answers 500", r.status, 500)
    # No configuration file, or no database file: healthz answers 503 JSON
    # (a monitor hears "fail"), naming no path.
    for what, extra in (("no configuration file",
                         {"DINGAUTH_CONFIG": os.path.join(env.dir, "none.conf")}),
                        ("no database file",
                         {"DINGAUTH_DB": os.path.join(env.dir, "gone", "x.db")})):
        r = env.cgi("authorize.fcgi", path="/dingauth/healthz", extra_env=extra)
        doc = js(r.body) or {}
        t.check("%s: healthz 503 JSON, database failing, no path" % what,
                r.status == 503 and doc.get("status") == "fail"
                and doc["checks"]["database"]["status"] == "fail"
                and env.dir not in r.body, (r.status, r.body))
        r = env.cgi("authorize.fcgi", path="/dingauth/auth", extra_env=extra)
        t.check("%s: the auth route still fails closed" % what,
                r.status >= 500, (r.status, r.body[:200]))
    r = env.cgi("authorize.fcgi", path="/dingauth/healthz", method="POST")
    t.eq("healthz: POST is 405", r.status, 405)

    # -- doctor --json -----------------------------------------------------------
    # PostgreSQL (make test DB=pg): no database file of ours to check.
    dbfile = env.pg is None
    os.chmod(env.conf, 0o640)
    if dbfile:
        os.chmod(env.db, 0o600)
    r = env.cmd("doctor", "--json")
    doc = js(r.stdout) or {}
    t.check("doctor --json: one JSON document, exit 0", r.returncode == 0
            and doc.get("status") in ("ok", "warn") and doc.get("failed") == 0, r)
    t.check("doctor --json: every check with status, area and message",
            doc.get("checks") and all(set(c) == {"status", "area", "message"}
                                      for c in doc["checks"]), doc.get("checks"))
    t.check("doctor --json: the health checks of healthz too",
            set((doc.get("health") or {}).get("checks", {})) == CHECKS
            and doc["health"]["status"] == "ok", doc.get("health"))
    t.check("doctor --json: more than the health checks (DingTalk, config)",
            {"dingtalk", "config", "database"} <= {c["area"] for c in doc["checks"]},
            doc.get("checks"))
    t.check("doctor --json prints no secret", not any(s in r.stdout for s in secrets))
    be = doc.get("backend") or {}
    t.check("doctor --json: the backend: engine, version, reachable, schema",
            be.get("engine") == ("sqlite" if dbfile else "postgresql")
            and be.get("version") and be.get("reachable") is True
            and isinstance(be.get("round_trip_ms"), int)
            and be.get("schema_version") == be.get("schema_latest") > 0, be)
    t.eq("doctor --json: the backend's locks, none held (no worker)",
         [(x.get("name"), x.get("held"), x.get("holder"))
          for x in be.get("locks", [])],
         [("worker", False, None), ("sync", False, None)])
    t.check("doctor: private files owned by the runner give no mode warning",
            "others can read" not in r.stdout and "belongs to" not in r.stdout, r.stdout)

    # -- modes and owners ---------------------------------------------------------
    os.chmod(env.conf, 0o644)
    r = env.cmd("doctor")
    t.check("doctor: a configuration readable by others is a warning",
            r.returncode == 0 and "others can read its secrets" in r.stdout, r.stdout)
    os.chmod(env.conf, 0o640)
    if dbfile:
        os.chmod(env.db, 0o644)
        r = env.cmd("doctor")
        t.check("doctor: a database readable by others is a warning",
                r.returncode == 0 and "others can read sessions" in r.stdout,
                r.stdout)
        os.chmod(env.db, 0o600)
    else:
        r = env.cmd("doctor")
        t.check("doctor: PostgreSQL: no file checks, no warning about modes",
                r.returncode == 0 and "others can read sessions" not in
                r.stdout and "-wal" not in r.stdout, r.stdout)
    if os.geteuid() == 0:
        if dbfile:
            os.chown(env.db, 65534, 65534)
            r = env.cmd("doctor")
            t.check("doctor: a database owned by someone else is a warning "
                    "naming them", "belongs to" in r.stdout and
                    "programs' user" in r.stdout, r.stdout)
            os.chown(env.db, 0, 0)
        else:
            t.check("doctor: PostgreSQL: no database owner to check",
                    "belongs to" not in r.stdout, r.stdout)
        os.chown(env.conf, 65534, 65534)
        r = env.cmd("doctor")
        t.check("doctor: a configuration owned by another user is a warning",
                "neither root nor" in r.stdout, r.stdout)
        os.chown(env.conf, 0, 0)
    else:
        t.check("doctor: (owners not checked: not root)", True)
        t.check("doctor: (owners not checked: not root)", True)

    # -- a missing configuration file fails ---------------------------------------
    r = env.cmd("doctor", extra_env={"DINGAUTH_CONFIG": os.path.join(env.dir, "none.conf")})
    t.check("doctor: a named configuration file that is missing: exit 1",
            r.returncode == 1 and "FAIL" in r.stdout, r)
    if not os.path.exists("/etc/dingauth.conf"):
        r = env.cmd("doctor", extra_env={"DINGAUTH_CONFIG": ""})
        t.check("doctor: no /etc/dingauth.conf is a FAIL, not 'ok (if present)'",
                r.returncode == 1 and "/etc/dingauth.conf" in r.stdout
                and "dingauth init" in r.stdout and "if present" not in r.stdout, r)
        r = env.cmd("doctor", "--json", extra_env={"DINGAUTH_CONFIG": ""})
        doc = js(r.stdout) or {}
        t.check("doctor --json: the same as status fail", r.returncode == 1
                and doc.get("status") == "fail" and doc.get("health") is None, r.stdout)
    else:
        t.check("doctor: (/etc/dingauth.conf exists here: default path not checked)", True)
        t.check("doctor: (/etc/dingauth.conf exists here: default path not checked)", True)

t.done()
