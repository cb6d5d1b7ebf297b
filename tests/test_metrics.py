"""GET /dingauth/metrics (docs/contract.md): Prometheus text format for
DINGAUTH_METRICS_ALLOW only; counters and histograms shared by every
process (the programs under a real lighttpd, plain CGI runs and the
command count into the same numbers); gauges read from the database.
"""
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, Lighttpd, T, http, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
SAMPLE = re.compile(r'^([a-z_]+)(\{[^{}]*\})? (-?[0-9.e+]+|\+Inf)$')


def parse(text):
    """{'name{labels}': value} and the families' TYPE lines."""
    values, types, bad = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            bad.append(line)
            continue
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values, types, bad


def login(env, fk, userid):
    r = env.cgi("login.fcgi", path="/dingauth/login")
    state = r.cookies().get("dingauth_state", (None,))[0]
    code = fk.code(userid=userid, kind="tmp")["code"]
    return env.cgi("exchange.fcgi", path="/dingauth/exchange",
                   query=qs(code=code, state=state),
                   headers={"Cookie": "dingauth_state=" + state})


def cgi_metrics(env, addr, **extra):
    return env.cgi("authorize.fcgi", path="/dingauth/metrics",
                   extra_env=dict({"REMOTE_ADDR": addr}, **extra))


with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_LOGIN_FLOW="sns") as env:
    t.eq("sync: exit 0", env.cmd("sync").returncode, 0)
    r = login(env, fk, "u001")
    t.eq("u001 signs in", r.status, 302)
    session = r.cookies().get("dingauth_session", (None,))[0]
    enc = fk.encrypt({"EventType": "user_leave_org", "UserId": ["u006"], "eventId": "m-1"})
    r = env.cgi("callback.fcgi", "/dingauth/callback", method="POST", query=enc["query"],
                body=enc["body"], content_type="application/json")
    t.eq("a leave pushed: 200", r.status, 200)

    with Lighttpd(env, protect={"/protected/": {}}) as srv:
        for cookie in (None, session, session):
            http("GET", srv.url + "/protected/x.html",
                 headers={"Cookie": "dingauth_session=" + cookie} if cookie else {})
        status, headers, body = http("GET", srv.url + "/dingauth/metrics")
        hs = dict((k.lower(), v) for k, v in headers)
        text = body.decode()
        t.eq("metrics from 127.0.0.1 through lighttpd: 200", status, 200)
        t.check("...text/plain; version=0.0.4",
                hs.get("content-type", "").startswith("text/plain; version=0.0.4"), hs)
        values, types, bad = parse(text)
        t.check("...every line is a comment or a sample", not bad, bad[:5])
        t.check("...every family has its TYPE", all(
            re.sub(r"_(bucket|sum|count)$", "", k.split("{")[0]) in types
            or k.split("{")[0] in types for k in values), sorted(types))
        t.eq("logins by flow and outcome (exchange.fcgi as CGI)",
             values.get('dingauth_logins_total{flow="sns",outcome="ok"}'), 1.0)
        t.eq("authorizer decisions: one login, two grants (lighttpd's processes)",
             (values.get('dingauth_authorizer_decisions_total{role="authorizer",'
                         'decision="login"}'),
              values.get('dingauth_authorizer_decisions_total{role="authorizer",'
                         'decision="grant"}')), (1.0, 2.0))
        t.check("events by type and outcome (callback.fcgi)",
                values.get('dingauth_events_total{type="user_leave_org",'
                           'outcome="stored"}') == 1.0 and
                values.get('dingauth_events_total{type="user_leave_org",'
                           'outcome="applied"}') == 1.0, sorted(k for k in values
                                                              if "events" in k))
        calls = {k: v for k, v in values.items()
                 if k.startswith("dingauth_dingtalk_calls_total{")}
        t.check("DingTalk calls by API and result (the sync's and the login's)",
                calls.get('dingauth_dingtalk_calls_total{api="/topapi/v2/user/list",'
                          'result="ok"}', 0) >= 1 and
                calls.get('dingauth_dingtalk_calls_total{api="/topapi/user/getbyunionid",'
                          'result="ok"}', 0) >= 1 and
                not any("access_token" in k for k in calls), sorted(calls))
        k = 'api="/topapi/user/getbyunionid",result="ok"'
        buckets = [(m.group(1), v) for key, v in values.items() for m in [re.match(
            r'dingauth_dingtalk_call_seconds_bucket\{' + re.escape(k) + r',le="([^"]+)"\}$',
            key)] if m]
        counts = [v for _, v in buckets]
        t.check("...with a latency histogram: cumulative buckets up to +Inf = _count",
                len(buckets) == 9 and counts == sorted(counts) and buckets[-1][0] == "+Inf"
                and counts[-1] == values.get("dingauth_dingtalk_call_seconds_count{%s}" % k)
                and values.get("dingauth_dingtalk_call_seconds_sum{%s}" % k, -1) >= 0,
                buckets)
        t.check("token fetches by kind and result",
                values.get('dingauth_token_fetches_total{kind="corp",result="ok"}', 0) >= 1,
                sorted(k for k in values if "token" in k))
        t.eq("sync runs by outcome (the command)",
             values.get('dingauth_syncs_total{outcome="ok"}'), 1.0)
        t.check("gauges: live sessions, pending events, directory age and users",
                values.get("dingauth_sessions_live") == 1.0
                and values.get("dingauth_events_pending") == 0.0
                and values.get("dingauth_directory_age_seconds", -1) >= 0
                and values.get("dingauth_directory_active_users") == 5.0, values)
        t.check("no secret in the metrics", not any(s in text for s in (
            env.config["DINGTALK_CORP_SECRET"], env.config["DINGTALK_APP_SECRET"],
            session)))
        r2 = http("GET", srv.url + "/dingauth/metrics")
        v2, _, _ = parse(r2[2].decode())
        t.eq("scraping changes no counter", {k: v for k, v in v2.items()
                                             if "_total" in k}, {k: v for k, v in
                                                                 values.items()
                                                                 if "_total" in k})

    mode = os.stat(env.metrics_file()).st_mode
    t.check("the shared file is private (no bits for others)",
            stat.S_IMODE(mode) & 0o007 == 0, oct(mode))
    other = os.path.join(env.dir, "node-b.metrics")
    r = cgi_metrics(env, "127.0.0.1", DINGAUTH_METRICS_FILE=other)
    t.check("DINGAUTH_METRICS_FILE names the file counted in (one per node)",
            r.status == 200 and os.path.isfile(other), (r.status, other))

    # -- who may read them ----------------------------------------------------
    r = cgi_metrics(env, "192.0.2.9")
    t.check("a client outside DINGAUTH_METRICS_ALLOW: 403, no numbers",
            r.status == 403 and "dingauth_" not in r.body, (r.status, r.body))
    t.eq("::1 is allowed by default", cgi_metrics(env, "::1").status, 200)
    t.eq("::ffff:127.0.0.1 is IPv4 loopback", cgi_metrics(env, "::ffff:127.0.0.1").status, 200)
    r = cgi_metrics(env, "10.1.2.3", DINGAUTH_METRICS_ALLOW="10.0.0.0/8, 192.0.2.0/25")
    t.eq("DINGAUTH_METRICS_ALLOW=10.0.0.0/8,...: 10.1.2.3 allowed", r.status, 200)
    r = cgi_metrics(env, "192.0.2.200", DINGAUTH_METRICS_ALLOW="10.0.0.0/8, 192.0.2.0/25")
    t.eq("...192.0.2.200 outside 192.0.2.0/25: 403", r.status, 403)
    r = cgi_metrics(env, "127.0.0.1", DINGAUTH_METRICS_ALLOW="10.0.0.0/8")
    t.eq("...and loopback no longer: 403", r.status, 403)
    r = cgi_metrics(env, "127.0.0.1", DINGAUTH_METRICS_ALLOW="10.0.0.0/33")
    t.check("a bad network is a configuration error naming the key",
            r.status == 500 and "DINGAUTH_METRICS_ALLOW" in r.body, (r.status, r.body))
    r = env.cgi("authorize.fcgi", path="/dingauth/metrics", method="POST",
                extra_env={"REMOTE_ADDR": "127.0.0.1"})
    t.eq("POST: 405", r.status, 405)

t.done()
