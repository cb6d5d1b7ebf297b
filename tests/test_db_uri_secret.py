"""A PostgreSQL password in DINGAUTH_DB never reaches a log line, a page or
the terminal, even when libpq quotes the URI back.

libpq's complaint about a URI it cannot parse quotes the offending token
(`invalid percent-encoded token: "se%zzcret"`): with a mistyped password
that token is the password. Every program and command that opens the
database reports the failure with the password replaced by ***. No server
is needed: the URI fails before a connection is tried, or names a port
nothing listens on.

Run: /usr/bin/python3 tests/test_db_uri_secret.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env  # noqa: E402

t = T()

SECRET = "Sup3rS3cret"
CASES = (
    # (label, URI, what doctor must still say)
    ("a bad %-escape in user:password@",
     "postgresql://dingauth:%s%%zz@127.0.0.1:1/dingauth" % SECRET,
     'invalid percent-encoded token: "***"'),
    ("a bad %-escape in ?password=",
     "postgresql://dingauth@127.0.0.1:1/dingauth?password=%s%%zz" % SECRET,
     'invalid percent-encoded token: "***"'),
    ("a server that is not there",
     "postgresql://dingauth:%s@127.0.0.1:1/dingauth?connect_timeout=2" % SECRET,
     "127.0.0.1"),
)


def outputs(env):
    """What an operator and a visitor see when the database cannot open."""
    out = []
    for args in (("doctor",), ("doctor", "--json"), ("users", "list"),
                 ("worker", "--once")):
        r = env.cmd(*args, timeout=60)
        out.append(("dingauth " + " ".join(args), r.returncode,
                    r.stdout + r.stderr))
    for prog, path, role in (("login.fcgi", "/dingauth/login", None),
                             ("authorize.fcgi", "/dingauth/healthz", None),
                             ("authorize.fcgi", "/protected/x", "AUTHORIZER")):
        r = env.cgi(prog, path, role=role)
        out.append((prog + " " + path, r.rc, r.head + r.body + r.stderr))
    return out


def main():
    for label, uri, says in CASES:
        with Env() as env:
            env.set(DINGAUTH_DB=uri)
            seen = outputs(env)
            for what, rc, text in seen:
                t.check("%s: %s: no password in what it prints" % (label, what),
                        SECRET not in text, text[-600:])
            # The failure is still reported, with libpq's words kept.
            t.check("%s: doctor fails and says why" % label,
                    seen[0][1] != 0 and says in seen[0][2], seen[0][2][-600:])
    t.done()


if __name__ == "__main__":
    main()
