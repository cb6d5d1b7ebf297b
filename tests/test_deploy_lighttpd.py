# -*- coding: utf-8 -*-
"""A real lighttpd started from deploy/lighttpd/dingauth.conf, unchanged.

The test writes only what an operator's own lighttpd.conf holds (port,
document root, mod_cgi for the app, the three var.dingauth_* settings) and
includes the shipped file; lighttpd starts authorize.fcgi and the other
programs itself ("bin-path"). deploykit.scenario holds the checks all
three servers share: refused without a session (302 with rd, 401 JSON,
no 404 probing), served with one, REMOTE_USER and DINGTALK_NAME in the
app, spoofed headers, the /staff/ department rule, leavers.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T  # noqa: E402
import deploykit as dk  # noqa: E402


def extra(t, env, srv, sessions):
    c1 = sessions["u001"]
    st, hs, body = srv.get("/protected/app.cgi", cookie=sessions["u003"],
                           headers={"Remote-User": "u001"})
    t.eq("lighttpd: a client's Remote-User stays HTTP_REMOTE_USER",
         dk.parse_app(body).get("HTTP_REMOTE_USER"), "u001")
    st, hs, body = srv.get("/dingauth/auth", cookie=c1)
    t.eq("lighttpd: /dingauth/auth answers as a responder too",
         (st, dk.header(hs, "X-Auth-Request-User")), (200, "u001"))
    st, hs, body = srv.get("/staff/app.cgi", cookie=c1,
                           headers={"Accept": "application/json"})
    t.check("lighttpd: a JSON client's 403 is application/json",
            st == 403 and dk.header(hs, "Content-Type") == "application/json",
            (st, hs, body[:200]))
    n = 0
    for _ in range(20):
        st, hs, body = srv.get("/protected/file.txt", cookie=c1)
        n += st == 200
    t.eq("lighttpd: 20 requests in a row through the warm authorizer", n, 20)


t = T()
dk.run_server(t, dk.Lighttpd, extra)
