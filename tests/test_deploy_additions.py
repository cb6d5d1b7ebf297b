# -*- coding: utf-8 -*-
"""The shipped web server files together with what operators commonly add
next to them, each through the real server (deploykit's Lighttpd, Apache,
Nginx: the shipped files unchanged, the addition written into the
operator's own configuration after them).

- nginx: the most common line of any server block, a regex location for
  static files (location ~* \\.(css|js|png|jpg|txt)$ { expires 30d; }).
  It used to win over the protected prefix locations, so every matching
  file under /protected/ was served without a session. The shipped
  prefixes use ^~ (regex locations are not tried under them); the safe
  place for such a rule is inside a protected location. A location of the
  server for a longer prefix under a protected one still takes those URLs
  away from the check: shown, and documented in the README.
- Apache: <FilesMatch>/<LocationMatch>/<Location> sections with their own
  Require. A later <LocationMatch> with "Require all granted" replaced
  "Require valid-user" and opened the files it matched. The shipped
  Require sits in an <If> (merged after every section) with AuthMerging
  And: an operator's Require can add a condition, never remove the check.
- lighttpd: an $HTTP["url"] =~ block with expire.url is harmless; a block
  that sets fastcgi.server for URLs under a protected prefix replaces the
  authorizer (shown), unless it puts var.dingauth_authorizer first on its
  key (the safe form, checked).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
import deploykit as dk  # noqa: E402

STATIC_RE = r"\.(css|js|png|jpg|txt)$"
TEXT = dk.STATIC_TEXT.encode()


def start(t, env, server_class, operator, label, checks, extra_site=()):
    """Start server_class with the operator's addition, run checks(t, env,
    srv), stop it; failures print the server's logs."""
    srv = server_class(env, operator)
    failed = t.failed
    try:
        if extra_site:
            dk.make_site(srv.www, extra_site)
        with open(os.path.join(srv.www, "site.css"), "w") as f:
            f.write("body { color: black }\n")
        dk.open_up(srv.www)
        srv.start()
        checks(t, env, srv)
    except Exception as e:
        t.check("%s: %s: the scenario ran to the end" % (srv.name, label),
                False, "%r\n%s" % (e, srv.log()))
    finally:
        srv.stop()
    if t.failed > failed:
        print("# %s logs (%s):" % (srv.name, label))
        for line in srv.log().splitlines()[-40:]:
            print("#   " + line)


def refused(t, srv, path, what, cookie=None):
    st, hs, body = srv.get(path, cookie=cookie)
    t.check("%s: %s: %s without a session: 302 to the login page, not "
            "the file" % (srv.name, what, path),
            st == 302 and dk.header(hs, "Location") == dk.login_for(path)
            and TEXT not in body, (st, hs, body[:200]))


def served(t, srv, path, what, cookie, header=None):
    st, hs, body = srv.get(path, cookie=cookie)
    ok = st == 200 and body == TEXT
    if header:
        ok = ok and header[1] in (dk.header(hs, header[0]) or "")
    t.check("%s: %s: %s with a session: 200 and the file%s"
            % (srv.name, what, path,
               " (%s: ...%s)" % header if header else ""), ok,
            (st, hs, body[:200]))


# --- nginx ----------------------------------------------------------------

NGINX_REGEX = "location ~* %s { expires 30d; }" % STATIC_RE
NGINX_SAFE = """location ^~ /docs/ {
	auth_request /dingauth/auth;
	include dingauth/dingauth_protect;
	location ~* %s { expires 30d; }
}""" % STATIC_RE
NGINX_LONGER = "location /protected/open/ { }"


def nginx_checks(t, env, srv):
    what = "the server's regex location for static files"
    c = dk.session(env, "u001")
    c6 = dk.session(env, "u006")
    st, hs, body = srv.get("/site.css")
    t.check("nginx: %s is in effect (a public file gets Expires)" % what,
            st == 200 and dk.header(hs, "Expires"), (st, hs))
    for path in ("/protected/file.txt", "/staff/file.txt"):
        refused(t, srv, path, what)
    served(t, srv, "/protected/file.txt", what, c)
    served(t, srv, "/staff/file.txt", what, c6)
    st, hs, body = srv.get("/staff/file.txt", cookie=c)
    t.check("nginx: %s: /staff/'s rule still refuses u001 (403)" % what,
            st == 403 and TEXT not in body, (st, body[:200]))
    st, hs, body = srv.get("/dingauth/static/login.css")
    t.check("nginx: %s: dingauth's own /dingauth/static/ is still served "
            "from its alias" % what, st == 200 and b"dingauth" in body,
            (st, body[:200]))
    what = "the safe form: the regex inside a protected ^~ location"
    refused(t, srv, "/docs/file.txt", what)
    served(t, srv, "/docs/file.txt", what, c, ("Expires", "GMT"))
    st, hs, body = srv.get("/protected/open/file.txt")
    t.check("nginx: documented as unsafe: a server location for a longer "
            "prefix under /protected/ is outside the check (the file is "
            "served without a session)", st == 200 and body == TEXT,
            (st, body[:200]))


# --- Apache ---------------------------------------------------------------

APACHE_FILESMATCH = """<FilesMatch "%s">
	Require all granted
	ExpiresActive On
	ExpiresDefault "access plus 30 days"
</FilesMatch>""" % STATIC_RE
APACHE_LOCATIONMATCH = """<LocationMatch "%s">
	Require all granted
	ExpiresActive On
	ExpiresDefault "access plus 30 days"
</LocationMatch>
<Location "/staff/">
	Require all granted
</Location>""" % STATIC_RE
APACHE_TIGHTER = """<LocationMatch "^/protected/.*\\.txt$">
	Require ip 192.0.2.1
</LocationMatch>"""


def apache_public(t, srv, what):
    st, hs, body = srv.get("/site.css")
    t.check("apache: %s is in effect (a public file gets Expires)" % what,
            st == 200 and dk.header(hs, "Expires"), (st, hs))


def apache_filesmatch(t, env, srv):
    what = "<FilesMatch> with Require all granted"
    apache_public(t, srv, what)
    refused(t, srv, "/protected/file.txt", what)
    refused(t, srv, "/staff/file.txt", what)
    served(t, srv, "/protected/file.txt", what, dk.session(env, "u001"),
           ("Expires", "GMT"))


def apache_locationmatch(t, env, srv):
    what = "<LocationMatch>/<Location> with Require all granted"
    apache_public(t, srv, what)
    refused(t, srv, "/protected/file.txt", what)
    refused(t, srv, "/staff/file.txt", what)
    st, hs, body = srv.get("/staff/app.cgi")
    t.check("apache: %s: /staff/app.cgi without a session: 302" % what,
            st == 302, (st, body[:200]))
    c = dk.session(env, "u001")
    served(t, srv, "/protected/file.txt", what, c, ("Expires", "GMT"))
    st, hs, body = srv.get("/staff/file.txt", cookie=c)
    t.check("apache: %s: /staff/'s department rule still refuses u001 "
            "(403)" % what, st == 403 and TEXT not in body,
            (st, body[:200]))
    st, hs, body = srv.get("/protected/app.cgi", cookie=c)
    t.eq("apache: %s: the app still sees the session's REMOTE_USER" % what,
         (st, dk.parse_app(body).get("REMOTE_USER")), (200, "u001"))


def apache_tighter(t, env, srv):
    what = "a <LocationMatch> adding its own Require ip"
    c = dk.session(env, "u001")
    st, hs, body = srv.get("/protected/file.txt", cookie=c)
    t.check("apache: %s: both must hold (a session from another address: "
            "403)" % what, st == 403 and TEXT not in body, (st, body[:200]))
    st, hs, body = srv.get("/protected/app.cgi", cookie=c)
    t.eq("apache: %s: elsewhere under the prefix the session suffices"
         % what, st, 200)


# --- lighttpd -------------------------------------------------------------

LIGHTTPD_EXPIRE = """$HTTP["url"] =~ "%s" {
	expire.url = ( "" => "access plus 30 days" )
}""" % STATIC_RE


def lighttpd_fcgiwrap(srv):
    """fcgiwrap, started by lighttpd, as an operator's FastCGI app."""
    return ('( "bin-path" => "/usr/sbin/fcgiwrap", "socket" => "%s/app.sock",'
            ' "check-local" => "disable" )' % srv.dir)


def lighttpd_expire(t, env, srv):
    what = "an $HTTP[\"url\"] =~ block with expire.url"
    st, hs, body = srv.get("/site.css")
    t.check("lighttpd: %s is in effect (a public file gets max-age)" % what,
            st == 200 and "max-age" in (dk.header(hs, "Cache-Control") or ""),
            (st, hs))
    refused(t, srv, "/protected/file.txt", what)
    refused(t, srv, "/staff/file.txt", what)
    served(t, srv, "/protected/file.txt", what, dk.session(env, "u001"),
           ("Cache-Control", "max-age="))
    st, hs, body = srv.get("/dingauth/static/login.css")
    t.eq("lighttpd: %s: /dingauth/static/ is still served" % what, st, 200)


class LighttpdApps(dk.Lighttpd):
    """The operator runs .cgi files through fcgiwrap (FastCGI) instead of
    mod_cgi: unsafely for every .cgi, and in the safe form for /staff/."""

    def start(self):
        app = lighttpd_fcgiwrap(self)
        self.operator = """$HTTP["url"] =~ "\\.cgi$" {
	fastcgi.server = ( ".cgi" => ( %s ) )
}
$HTTP["url"] =~ "^/staff/.*\\.cgi$" {
	fastcgi.server = ( "/staff/" => ( var.dingauth_authorizer_staff, %s ) )
}""" % (app, app)
        return dk.Lighttpd.start(self)


def lighttpd_apps(t, env, srv):
    st, hs, body = srv.get("/protected/app.cgi")
    t.check("lighttpd: documented as unsafe: a block setting fastcgi.server "
            "for *.cgi replaces the authorizer under /protected/ (the app "
            "runs without a session)", st == 200 and
            dk.parse_app(body).get("REMOTE_USER") == "", (st, body[:200]))
    what = "the safe form: var.dingauth_authorizer_staff first on the key"
    st, hs, body = srv.get("/staff/app.cgi")
    t.eq("lighttpd: %s: /staff/app.cgi without a session: 302" % what,
         (st, dk.header(hs, "Location")), (302, dk.login_for("/staff/app.cgi")))
    st, hs, body = srv.get("/staff/app.cgi", cookie=dk.session(env, "u006"))
    t.eq("lighttpd: %s: the app (through fcgiwrap) sees the employee" % what,
         (st, dk.parse_app(body).get("REMOTE_USER")), (200, "u006"))
    st, hs, body = srv.get("/staff/app.cgi", cookie=dk.session(env, "u001"))
    t.eq("lighttpd: %s: the department rule holds (u001: 403)" % what,
         st, 403)


t = T()
with FakeDingTalk() as fake, Env(fake=fake) as env:
    dk.seed(env)
    dk.open_up(env.dir)
    dk.open_up(os.path.join(dk.ROOT, "static"))
    start(t, env, dk.Nginx, "\n".join((NGINX_REGEX, NGINX_SAFE,
                                        NGINX_LONGER)),
          "regex static-file location", nginx_checks,
          extra_site=("docs", "protected/open"))
    start(t, env, dk.Apache, APACHE_FILESMATCH, "FilesMatch",
          apache_filesmatch)
    start(t, env, dk.Apache, APACHE_LOCATIONMATCH, "LocationMatch",
          apache_locationmatch)
    start(t, env, dk.Apache, APACHE_TIGHTER, "Require ip", apache_tighter)
    start(t, env, dk.Lighttpd, LIGHTTPD_EXPIRE, "expire", lighttpd_expire)
    start(t, env, LighttpdApps, "", "fcgiwrap", lighttpd_apps)
t.done()
