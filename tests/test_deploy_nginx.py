# -*- coding: utf-8 -*-
"""A real nginx (auth_request) started from deploy/nginx/*, unchanged but
for the two things an operator edits too: the upstream ports in
dingauth-http.conf (rewritten to ephemeral ones) and the install root in
dingauth.conf. The FastCGI programs of deploy/systemd/fcgi/*.env run under
spawn-fcgi as deploy/systemd/dingauth-fcgi@.service starts them; the
protected CGI app runs under fcgiwrap on TCP. nginx runs in the
foreground with its own prefix (nginx -p DIR -c nginx.conf -g 'daemon
off;'). deploykit.scenario holds the checks all three servers share.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T  # noqa: E402
import deploykit as dk  # noqa: E402


def extra(t, env, srv, sessions):
    c1 = sessions["u001"]
    st, hs, body = srv.get("/protected/app.cgi", cookie=sessions["u003"],
                           headers={"Authorization": "Basic Ym9zczp4"})
    t.eq("nginx: curl -u boss:x with a session: REMOTE_USER is the session's "
         "(no $remote_user in dingauth_fastcgi_params)",
         dk.parse_app(body).get("REMOTE_USER"), "u003")
    st, hs, body = srv.get("/protected/app.cgi",
                           headers={"Authorization": "Basic Ym9zczp4",
                                    "X-Auth-Request-User": "boss"})
    t.eq("nginx: Basic credentials and X-Auth-Request-User without a session: "
         "302", st, 302)
    st, hs, body = srv.get("/dingauth/auth", cookie=c1)
    t.eq("nginx: the auth location is internal (404 from outside)", st, 404)
    st, hs, body = srv.get("/protected/app.cgi",
                           headers={"X-Requested-With": "XMLHttpRequest"})
    t.eq("nginx: XMLHttpRequest without a session: 401 JSON",
         (st, dk.header(hs, "Content-Type")), (401, "application/json"))
    st, hs, body = srv.get("/protected/app.cgi",
                           headers={"Accept": "text/html,application/json"})
    t.eq("nginx: a browser's Accept (text/html first): 302", st, 302)
    st, hs, body = srv.get("/protected/x?a=1&b=%2F2")
    t.check("nginx: the Location stays relative (absolute_redirect off)",
            (dk.header(hs, "Location") or "").startswith("/dingauth/login?rd="),
            hs)
    st, hs, body = srv.get("/staff/app.cgi", cookie=c1,
                           headers={"Accept": "application/json"})
    t.check("nginx: a JSON client's 403 is JSON saying why",
            st == 403 and dk.header(hs, "Content-Type") == "application/json"
            and "department 2" in json.loads(body).get("message", ""),
            (st, hs, body[:300]))
    st, hs, body = srv.get("/staff/app.cgi", cookie=c1)
    t.eq("nginx: the 403 page is text/html, one Content-Type",
         [v for k, v in hs if k.lower() == "content-type"],
         ["text/html; charset=utf-8"])
    srv.fcgi.stop()
    st, hs, body = srv.get("/protected/file.txt", cookie=c1)
    t.check("nginx: authorizer down -> fails closed (500, no file)",
            st == 500 and dk.STATIC_TEXT.encode() not in body,
            (st, body[:200]))


t = T()
dk.run_server(t, dk.Nginx, extra)
