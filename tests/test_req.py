"""The request/response layer (req.c) under plain CGI and under lighttpd
FastCGI, through build/tools/req_echo which answers with what it parsed."""
import json
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, BUILD, CGIResult, Lighttpd, http  # noqa: E402

ECHO = os.path.join(BUILD, "tools", "req_echo")
t = T()


def cgi(env, query="", method="GET", body=b"", ctype=None, headers=None,
        extra=None):
    e = env.environ()
    e.update({"REQUEST_METHOD": method, "QUERY_STRING": query,
              "SCRIPT_NAME": "/dingauth/echo", "REQUEST_URI":
              "/dingauth/echo" + ("?" + query if query else ""),
              "GATEWAY_INTERFACE": "CGI/1.1"})
    if body or method == "POST":
        e["CONTENT_LENGTH"] = str(len(body))
        if ctype:
            e["CONTENT_TYPE"] = ctype
    for k, v in (headers or {}).items():
        e["HTTP_" + k.upper().replace("-", "_")] = v
    e.update(extra or {})
    p = subprocess.run([ECHO], input=body, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return CGIResult(p.stdout, p.stderr, p.returncode)


with Env() as env:
    r = cgi(env, "a=1&b=x+y%26z&a=2&empty=&flag")
    d = r.json()
    t.check("status is the first header line", r.status == 200 and
            r.status_first, r.head)
    t.eq("query parsed, + is a space, first value wins",
         (d["query"]["a"], d["query"]["b"], d["query"]["empty"],
          d["query"]["flag"]), ("1", "x y&z", "", ""))
    t.eq("route is the last path segment", d["route"], "echo")
    t.eq("Content-Type of JSON answers", r.header("Content-Type"),
         "application/json")
    r = cgi(env, "&".join("k%d=v" % i for i in range(100)))
    t.check("more than 64 query pairs: truncated, not crashed",
            r.json()["query_truncated"] and len(r.json()["query"]) == 64)
    r = cgi(env, "x=" + "a" * 9000)
    t.check("query string over 8 KiB ignored", r.json()["query"] == {})
    r = cgi(env, "code=%00abc")
    t.check("a value with an encoded NUL is dropped",
            "code" not in r.json()["query"])
    r = cgi(env, headers={"Cookie": 'a=1; dingauth_session=abc; b="q"; a=2; b=q'})
    t.eq("cookies parsed, quotes removed; a name sent twice with different "
         "values: none wins",
         r.json()["cookies"], {"a": None, "dingauth_session": "abc", "b": "q"})
    r = cgi(env, method="POST", body=b"code=c1&state=s%2B1",
            ctype="application/x-www-form-urlencoded")
    d = r.json()
    t.check("form body parsed", d["body_status"] == "ok" and
            d["form"] == {"code": "c1", "state": "s+1"}, d)
    t.eq("req_input finds form values", d["input_code"], "c1")
    r = cgi(env, method="POST", body=b'{"code":"j1","state":"s"}',
            ctype="application/json; charset=utf-8")
    d = r.json()
    t.check("JSON body parsed", d["has_json"] and d["input_code"] == "j1", d)
    r = cgi(env, method="POST", body=b'{"code":', ctype="application/json")
    t.eq("broken JSON body flagged", r.json()["body_status"], "bad")
    r = cgi(env, method="POST", body=b"x" * 5000, ctype="text/plain")
    t.eq("body over the cap not read", r.json()["body_status"], "too_big")
    r = cgi(env, method="POST", body=b"abc", ctype="text/plain",
            extra={"CONTENT_LENGTH": "10"})
    t.eq("short body flagged", r.json()["body_status"], "bad")
    r = cgi(env, "code=q1", method="POST", body=b"code=f1",
            ctype="application/x-www-form-urlencoded")
    t.eq("query wins over form", r.json()["input_code"], "q1")
    r = cgi(env, headers={"Accept": "application/json"})
    t.check("Accept: application/json wants JSON", r.json()["wants_json"])
    r = cgi(env, headers={"X-Requested-With": "XMLHttpRequest"})
    t.check("XHR wants JSON", r.json()["wants_json"])
    r = cgi(env, headers={"Accept": "text/html,application/json;q=0.9"})
    t.check("a browser navigation does not", not r.json()["wants_json"])

    r = cgi(env, "set_header=" + urllib.parse.quote("X-Test:ok"))
    t.check("a clean header is written", r.header("X-Test") == "ok" and
            not r.json()["refused"])
    r = cgi(env, "set_header=" + urllib.parse.quote("X-Test:a\r\nSet-Cookie: evil=1"))
    t.check("a header with CR/LF is refused", r.json()["refused"] and
            r.header("Set-Cookie") is None and "evil" not in r.head, r.head)
    r = cgi(env, "set_header=" + urllib.parse.quote("X Bad:v"))
    t.check("an invalid header name is refused", r.json()["refused"])
    r = cgi(env, "cookie=" + urllib.parse.quote("dingauth_session:abc"))
    c = r.cookies().get("dingauth_session")
    t.check("cookie attributes: Path=/, HttpOnly, SameSite=Lax, no Secure "
            "when DINGAUTH_COOKIE_SECURE=0",
            c and "Path=/" in c[1] and "HttpOnly" in c[1] and
            "SameSite=Lax" in c[1] and "Secure" not in c[1], r.head)
    env.set(DINGAUTH_COOKIE_SECURE="1")
    r = cgi(env, "cookie=" + urllib.parse.quote("dingauth_session:abc"))
    c = r.cookies().get("__Host-dingauth_session")
    t.check("Secure by default, named __Host- (Path=/, no Domain)",
            c and "; Secure" in c[1] and "Path=/" in c[1] and
            "domain" not in c[1].lower() and
            "dingauth_session" not in r.cookies(), r.head)
    r = cgi(env, "cookie=" + urllib.parse.quote("x:a;b"))
    t.check("a cookie value with ';' is refused", r.json()["refused"] and
            not r.cookies())
    r = cgi(env, method="HEAD")
    t.check("HEAD: headers without a body", r.status == 200 and r.body == "")
    env.set(DINGAUTH_COOKIE_SECURE="0")

    # Errors recorded while answering are acted on: a plain 500, logged.
    r = cgi(env, "big=1000")
    t.check("output under the cap: 200 with all of it",
            r.status == 200 and r.body.startswith("x" * 1000 + "{"), r.head)
    r = cgi(env, "big=2000000")
    t.check("output over the cap: a plain 500, not a cut 200",
            r.status == 500 and r.body == "500 Internal Server Error\n" and
            r.header("Content-Type").startswith("text/plain"), r.head)
    t.check("output over the cap: logged", "body over its cap" in r.stderr, r.stderr)
    r = cgi(env, "ignore_header=" + urllib.parse.quote("X-Test:a\r\nSet-Cookie: evil=1"))
    t.check("a refused header the handler ignored: 500 without it",
            r.status == 500 and r.header("X-Test") is None and "evil" not in r.head and
            "refused" in r.stderr, (r.head, r.stderr))
    r = cgi(env, "ignore_cookie=" + urllib.parse.quote("x:a;b"))
    t.check("a refused cookie the handler ignored: 500 without cookies",
            r.status == 500 and not r.cookies() and "refused" in r.stderr,
            (r.head, r.stderr))

    # The route table: 404 and 405 answered by req_serve itself.
    r = cgi(env, extra={"SCRIPT_NAME": "/dingauth/nothing",
                        "REQUEST_URI": "/dingauth/nothing"})
    t.check("no route: 404, plain text",
            r.status == 404 and r.header("Content-Type").startswith("text/plain"), r.head)
    r = cgi(env, extra={"SCRIPT_NAME": "/cgi-bin/echo.fcgi",
                        "REQUEST_URI": "/cgi-bin/echo.fcgi"})
    t.check("called by its own file name: .fcgi cut, the route of that name",
            r.status == 200 and r.json()["route"] == "echo", r.head)
    r = cgi(env, method="POST", body=b"a=b", extra={"SCRIPT_NAME": "/x/get-only"})
    t.check("a method the route does not take: 405 with Allow",
            r.status == 405 and r.header("Allow") == "GET", r.head)
    r = cgi(env, method="HEAD", extra={"SCRIPT_NAME": "/x/get-only"})
    t.eq("HEAD where only GET is taken: 405", r.status, 405)
    r = cgi(env, method="PUT", extra={"SCRIPT_NAME": "/x/echo"})
    t.check("PUT: 405, Allow lists the route's methods",
            r.status == 405 and r.header("Allow") == "GET, HEAD, POST", r.head)
    r = cgi(env, method="POST", body=b"a=b", extra={"SCRIPT_NAME": "/x/json-only"})
    t.check("a JSON route's 405 is JSON",
            r.status == 405 and r.header("Allow") == "GET" and
            r.json().get("error") == "method_not_allowed", r.raw[:300])
    r = cgi(env, headers={"Accept": "application/json"},
            extra={"SCRIPT_NAME": "/x/none"})
    t.check("404 for a client asking for JSON is JSON",
            r.status == 404 and r.json().get("error") == "not_found", r.raw[:300])
    r = cgi(env, extra={"FCGI_ROLE": "AUTHORIZER"})
    t.eq("the Authorizer role without an Authorizer route: 404", r.status, 404)

    # The same program under a real lighttpd as a FastCGI responder.
    srv = Lighttpd(env, extra_conf='$HTTP["url"] =~ "^/echo" { fastcgi.server = ( "/echo" => (( "bin-path" => "%s", "socket" => "%s/echo.sock", "check-local" => "disable", "max-procs" => 1, "bin-environment" => ( "DINGAUTH_CONFIG" => "%s" ) )) ) }' % (ECHO, "/tmp", env.conf))
    srv.extra_conf = srv.extra_conf.replace('"/tmp/echo.sock"', '"%s/echo.sock"' % srv.dir)
    with srv:
        st, hs, body = http("POST", srv.url + "/echo/x/y?code=1&a=b",
                            body="code=2&s=t",
                            headers={"Content-Type": "application/x-www-form-urlencoded",
                                     "Cookie": "k=v"})
        d = json.loads(body)
        t.check("FastCGI: parsed like CGI", st == 200 and not d["cgi"] and
                d["query"] == {"code": "1", "a": "b"} and
                d["form"] == {"code": "2", "s": "t"} and
                d["cookies"] == {"k": "v"}, body)
        t.eq("FastCGI: route from SCRIPT_NAME + PATH_INFO", d["route"], "y")
        # Many requests on one worker: state does not leak between them.
        leaks = 0
        for i in range(50):
            st, hs, body = http("GET", srv.url + "/echo/r?n=%d" % i)
            d = json.loads(body)
            if d["query"] != {"n": str(i)} or d["cookies"] != {} or d["form"] != {}:
                leaks += 1
        t.eq("FastCGI: 50 requests on one worker, nothing carried over", leaks, 0)
        st, hs, body = http("POST", srv.url + "/echo/r", body="x" * 10000,
                            headers={"Content-Type": "text/plain"})
        t.check("FastCGI: oversized body not read, worker still answers",
                json.loads(body)["body_status"] == "too_big" and
                json.loads(http("GET", srv.url + "/echo/r?ok=1")[2])["query"] == {"ok": "1"})

t.done()
