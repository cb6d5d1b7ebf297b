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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T  # noqa: E402
import deploykit as dk  # noqa: E402

CONF = os.path.join(dk.DEPLOY, "apache", "dingauth.conf")
MODULES = "/usr/lib/apache2/modules"


class Apache(dk.WebServer):
    name = "apache"
    logs = ("error.log", "stderr.log")

    def start(self):
        d = self.dir
        fcgi = dk.FcgiInstances(self.env, d)
        self.helpers.append(fcgi)
        fcgi.start()
        mods = ["mpm_prefork", "authn_core", "authz_core", "authz_user",
                "authnz_fcgi", "proxy", "proxy_fcgi", "headers", "alias",
                "mime", "dir", "cgi"]
        lines = ["# The operator's apache2.conf (test instance).",
                 'ServerRoot "%s"' % d, "ServerName 127.0.0.1",
                 "Listen 127.0.0.1:%d" % self.port,
                 'PidFile "%s/httpd.pid"' % d, 'ErrorLog "%s/error.log"' % d,
                 "LogLevel warn", "Mutex file:%s default" % d]
        if os.getuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += ["LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m)
                  for m in mods]
        lines += ['LogFormat "%h %u \\"%r\\" %>s" dingauth',
                  'CustomLog "%s/access.log" dingauth' % d,
                  "TypesConfig /etc/mime.types", "AddDefaultCharset utf-8",
                  'DocumentRoot "%s"' % self.www,
                  '<Directory "%s">' % self.www, "\tRequire all granted",
                  "\tOptions +ExecCGI", "\tAddHandler cgi-script .cgi",
                  "\tDirectoryIndex index.html", "</Directory>",
                  "Define DINGAUTH_ROOT %s" % self.root]
        for name, port in sorted(fcgi.ports.items()):
            lines.append("Define DINGAUTH_%s_PORT %d"
                         % (name.upper().replace("-", "_"), port))
        lines.append('Include "%s"' % CONF)
        conf = os.path.join(d, "apache2.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.fcgi = fcgi
        self.spawn(["/usr/sbin/apache2", "-X", "-f", conf])
        return self

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_access_log(self, text, timeout=5.0):
        """Apache logs after the response: wait for the line."""
        end = time.time() + timeout
        while time.time() < end:
            if text in self.access_log():
                return True
            time.sleep(0.05)
        return False


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
dk.run_server(t, Apache, extra)
