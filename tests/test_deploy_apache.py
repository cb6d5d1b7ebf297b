# -*- coding: utf-8 -*-
"""A real Apache (mod_authnz_fcgi) started from deploy/apache/dingauth.conf,
unchanged, with the FastCGI programs of deploy/systemd/fcgi/*.env under
spawn-fcgi on loopback TCP ports, started as
deploy/systemd/dingauth-fcgi@.service starts them.

The test writes only what an operator's apache2.conf holds: modules,
ServerRoot, PidFile and ErrorLog in a temp dir, Listen on an ephemeral
port, a document root with a mod_cgi app, and Define lines for the ports
and the install root. Apache runs in the foreground (-X), as root-safe as
it gets: workers switch to www-data when the test runs as root.
deploykit.scenario holds the checks all three servers share.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T  # noqa: E402
import deploykit as dk  # noqa: E402


def extra(t, env, srv, sessions):
    c1 = sessions["u001"]
    srv.get("/protected/app.cgi", cookie=c1)
    t.check("apache: the access log names the user (%u = userid)",
            srv.wait_access_log(' u001 "GET /protected/app.cgi'),
            srv.access_log()[-500:])
    st, hs, body = srv.get("/protected/app.cgi", cookie=sessions["u003"],
                           headers={"Variable-REMOTE_USER": "u001"})
    t.eq("apache: Variable-REMOTE_USER (with '_') never reaches the app",
         dk.parse_app(body).get("HTTP_VARIABLE_REMOTE_USER"), "")
    st, hs, body = srv.get("/staff/app.cgi", cookie=c1,
                           headers={"Accept": "application/json"})
    t.check("apache: a JSON client's 403 is labelled application/json "
            "(the Header line of the example)",
            st == 403 and dk.header(hs, "Content-Type") == "application/json"
            and json.loads(body).get("error") == "forbidden",
            (st, hs, body[:300]))
    st, hs, body = srv.get("/protected/app.cgi", cookie="0" * 64,
                           headers={"Accept": "text/html"})
    t.check("apache: the 302 body is passed on, not taken for an ErrorDocument",
            st == 302 and body.startswith(b"<"), (st, body[:200]))
    srv.fcgi.stop()
    st, hs, body = srv.get("/protected/file.txt", cookie=c1)
    t.check("apache: authorizer down -> fails closed (500, no file)",
            st == 500 and dk.STATIC_TEXT.encode() not in body,
            (st, body[:200]))


t = T()
dk.run_server(t, dk.Apache, extra)
