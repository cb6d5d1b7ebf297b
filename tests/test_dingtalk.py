"""The DingTalk client and the shared token cache, against the fake.

Drives build/tools/token_client (the library's dt_* calls as every program
makes them) and bin/dingauth token/doctor, and asserts on the fake's
request log what was asked and how often.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, BUILD  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

TOOL = os.path.join(BUILD, "tools", "token_client")
t = T()


def client(env, *args, extra=None):
    e = env.environ(**(extra or {}))
    p = subprocess.run([TOOL] + list(args), env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return p


def calls(fake, path):
    return [r for r in fake.log(path=path)]


with FakeDingTalk() as fake, Env(fake=fake) as env:
    # 8 processes need the (missing) corp token at the same moment; the
    # fake answers gettoken slowly so they really overlap.
    fake.fault("/gettoken", "slow", count=1, delay_ms=700)
    procs = [subprocess.Popen([TOOL, "corp"], env=env.environ(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    outs = [p.communicate(timeout=60) for p in procs]
    results = sorted(o[0].strip() for o in outs)
    t.eq("8 concurrent processes: exactly one gettoken",
         len(calls(fake, "/gettoken")), 1)
    t.eq("8 concurrent processes: one fetched, seven used the cache",
         results, ["cached"] * 7 + ["fetched"])
    t.check("all 8 exited 0", all(p.returncode == 0 for p in procs),
            [o[1] for o in outs])

    # Stale: expires within 300 s -> one new gettoken, again for 8 at once.
    env.sql("UPDATE tokens SET expires_at = strftime('%s','now') + 200")
    fake.clear_log()
    fake.fault("/gettoken", "slow", count=1, delay_ms=700)
    procs = [subprocess.Popen([TOOL, "corp"], env=env.environ(),
                              stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    for p in procs:
        p.communicate(timeout=60)
    t.eq("8 processes and a stale token: exactly one gettoken",
         len(calls(fake, "/gettoken")), 1)
    q = calls(fake, "/gettoken")[0]["query"]
    t.check("gettoken sends appkey and appsecret in the query",
            q.get("appkey") == fake.apps()["appkey"] and "appsecret" in q, q)

    # An invalid-token answer: drop the token, refresh once, succeed.
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "invalid_token", count=1)
    p = client(env, "user", "1", "u001")
    t.check("invalid token once: the call succeeds", p.returncode == 0 and
            p.stdout.startswith("user "), p.stdout + p.stderr)
    t.eq("invalid token once: user/get asked twice",
         len(calls(fake, "/topapi/v2/user/get")), 2)
    t.eq("invalid token once: one new gettoken", len(calls(fake, "/gettoken")), 1)
    first = calls(fake, "/topapi/v2/user/get")[0]
    t.check("topapi token error came as errcode 88 + sub_code",
            first.get("errcode") == 88, first)

    # errcode 40014 on a plain oapi call (sns flow): also refreshed once.
    fake.clear_log()
    fake.expire_tokens()
    p = client(env, "user", "1", "u001")
    t.check("expired token (42001 in 88): refreshed and succeeded",
            p.returncode == 0, p.stdout + p.stderr)
    t.eq("expired token: user/get asked twice",
         len(calls(fake, "/topapi/v2/user/get")), 2)

    # A permanent token error gives up after exactly one retry.
    fake.clear_log()
    fake.revoke_tokens()
    p = client(env, "user", "1", "u001")
    t.check("permanent token error: fails", p.returncode != 0 and
            "ETOKEN" in p.stdout, p.stdout + p.stderr)
    t.eq("permanent token error: user/get asked exactly twice",
         len(calls(fake, "/topapi/v2/user/get")), 2)
    t.eq("permanent token error: exactly one refresh",
         len(calls(fake, "/gettoken")), 1)
    fake.restore_tokens()

    # Rate limits and busy: back off and retry, bounded.
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "rate_limit", count=2)
    p = client(env, "user", "1", "u001")
    t.check("90018 twice then ok: succeeds", p.returncode == 0, p.stdout)
    log = calls(fake, "/topapi/v2/user/get")
    t.eq("90018 twice then ok: three calls", len(log), 3)
    t.check("90018: waited about a second between calls",
            len(log) == 3 and log[1]["t"] - log[0]["t"] >= 0.9, log)
    # The same without an error struct: retries do not depend on one.
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "rate_limit", count=2)
    p = client(env, "user-noerr", "1", "u001")
    t.check("no error struct, 90018 twice then ok: succeeds",
            p.returncode == 0 and p.stdout.startswith("user "), p.stdout)
    t.eq("no error struct: three calls", len(calls(fake, "/topapi/v2/user/get")), 3)
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "invalid_token", count=1)
    p = client(env, "user-noerr", "1", "u001")
    t.check("no error struct, token refused once: refreshed, succeeds",
            p.returncode == 0 and len(calls(fake, "/topapi/v2/user/get")) == 2,
            p.stdout)
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "errcode", count=1, errcode=-1,
               errmsg="系统繁忙")
    p = client(env, "user", "1", "u001")
    t.check("-1 busy once: retried and succeeded", p.returncode == 0 and
            len(calls(fake, "/topapi/v2/user/get")) == 2, p.stdout)
    fake.clear_log()
    fake.fault("/topapi/v2/user/get", "rate_limit", count=50)
    p = client(env, "user", "1", "u001",
               extra={"DINGAUTH_HTTP_RETRIES": "2"})
    t.check("rate limited for good: ERATE", "ERATE" in p.stdout, p.stdout)
    t.eq("rate limited for good: 1 + DINGAUTH_HTTP_RETRIES calls",
         len(calls(fake, "/topapi/v2/user/get")), 3)
    fake.clear_faults()

    # Transport and garbage map onto distinct errors.
    for kind, want, opts in (("garbage", "EJSON", {}),
                             ("http500", "EHTTP", {}),
                             ("drop", "EHTTP", {}),
                             ("slow", "ETIMEOUT", {"delay_ms": 2500})):
        fake.fault("/topapi/v2/user/get", kind, count=1, **opts)
        p = client(env, "user", "1", "u001",
                   extra={"DINGAUTH_HTTP_TIMEOUT": "1000"})
        t.check("%s answer: %s" % (kind, want), want in p.stdout, p.stdout)
    fake.clear_faults()
    p = client(env, "user", "1", "nosuchuser")
    t.check("unknown user (60121): ENOTFOUND", "ENOTFOUND" in p.stdout,
            p.stdout)

    # sns app token, cached separately.
    fake.clear_log()
    p = client(env, "sns", "2")
    t.eq("sns token fetched then cached", p.stdout.split(), ["fetched", "cached"])
    t.eq("one sns/gettoken", len(calls(fake, "/sns/gettoken")), 1)

    # Wrong secret: a credentials error, not retried as a token error.
    env.sql("DELETE FROM tokens")
    fake.clear_log()
    p = client(env, "corp", extra={"DINGTALK_CORP_SECRET": "wrong"})
    t.check("wrong secret: ECREDENTIALS", "ECREDENTIALS" in p.stdout, p.stdout)
    t.eq("wrong secret: asked once", len(calls(fake, "/gettoken")), 1)

    # Secrets never reach the log, even at debug level.
    env.sql("DELETE FROM tokens")
    p = client(env, "user", "1", "u001", extra={"DINGAUTH_LOG_LEVEL": "debug"})
    secret = fake.apps()["appsecret"]
    tok = fake.corp_token()
    t.check("debug log names the calls", "/topapi/v2/user/get" in p.stderr,
            p.stderr)
    t.check("debug log redacts access_token and appsecret",
            secret not in p.stderr and tok not in p.stderr and
            "access_token=***" in p.stderr, p.stderr)

    # dingauth token show / refresh.
    r = env.cmd("token", "show", "--json")
    import json
    shown = json.loads(r.stdout) if r.returncode == 0 else []
    t.check("token show --json lists the corp token without it",
            any(x["kind"] == "corp" and x["valid"] for x in shown) and
            tok not in r.stdout, r.stdout + r.stderr)
    fake.clear_log()
    r = env.cmd("token", "refresh", "corp")
    t.check("token refresh corp", r.returncode == 0 and
            len(calls(fake, "/gettoken")) == 1, r.stdout + r.stderr)
    r = env.cmd("token", "refresh", "bogus")
    t.eq("token refresh bogus: usage error", r.returncode, 2)
    r = env.cmd("token", "--help")
    t.check("token --help", r.returncode == 0 and "refresh" in r.stdout)

    # doctor: everything reachable.
    r = env.cmd("doctor")
    t.check("doctor passes against the fake", r.returncode == 0 and
            "directory readable" in r.stdout and "clock" in r.stdout,
            r.stdout + r.stderr)
    t.check("doctor prints no secret", secret not in r.stdout and
            fake.corp()["callback"]["token"] not in r.stdout)
    fake.fault("/gettoken", "drop", count=5)
    env.sql("DELETE FROM tokens")
    r = env.cmd("doctor")
    t.check("doctor fails when DingTalk is unreachable",
            r.returncode == 1 and "FAIL" in r.stdout, r.stdout)
    fake.clear_faults()

with Env() as env:
    env.set(DINGAUTH_SESSION_TTL="5")
    r = env.cmd("doctor")
    t.check("doctor names a bad key", r.returncode == 1 and
            "DINGAUTH_SESSION_TTL" in r.stdout + r.stderr, r.stdout + r.stderr)
    r = env.cmd("nosuchcommand")
    t.eq("unknown command: exit 2", r.returncode, 2)
    r = env.cmd("--help")
    t.check("dingauth --help lists the commands", r.returncode == 0 and
            "sync" in r.stdout and "doctor" in r.stdout)

t.done()
