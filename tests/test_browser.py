"""The login page in a real browser: headless Chromium driven by Selenium
against a real lighttpd serving static/ and the FastCGI programs, with
DINGTALK_*_URL and DINGTALK_DDLOGIN_JS pointing at the fake DingTalk, whose
stand-in QR frame posts a loginTmpCode (sns flows) or hands DTFrameLogin a
redirectUrl (oauth2) the way DingTalk's own frame does.

For each flow: open the login page, switch into the QR iframe, click a
user, and land signed in; the name is read from the page. Also: a
loginTmpCode posted from any other origin is ignored; a second use of the
same code or state fails cleanly with a page that says so; after a
user_leave_org push through the fake to /dingauth/callback the same browser
is sent back to the login page. Screenshots go to a temp dir (printed).

Run: /usr/bin/python3 tests/test_browser.py
"""
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, Lighttpd, CGI_DIR, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
from browserkit import (require, chrome, wait, text_of, By, WHOAMI_CGI,  # noqa: E402
                        shot as kit_shot)
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402

t = T()

require(t)

HOSTILE = "<script>alert(\"x\")</script> O'Hara & \"Q\""
SHOTS = os.path.join(tempfile.gettempdir(), "dingauth-browser")


def shot(driver, name):
    return kit_shot(driver, SHOTS, name)


def no_alert(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def exchange_lines(accesslog):
    try:
        with open(accesslog) as f:
            return re.findall(r'"GET (/dingauth/exchange\?[^ "]*)', f.read())
    except OSError:
        return []


class Site:
    """lighttpd + the programs for one Env; restartable with a new flow."""

    def __init__(self, env, authorizer):
        self.env = env
        self.authorizer = authorizer
        protect = {"/app/": {}} if authorizer else None
        self.accesslog = os.path.join(env.dir, "access.log")
        extra = ('server.modules += ( "mod_accesslog" )\n'
                 'accesslog.filename = "%s"\n' % self.accesslog)
        self.lh = Lighttpd(env, protect=protect, extra_conf=extra)
        app = os.path.join(self.lh.docroot, "app")
        os.makedirs(app, exist_ok=True)
        cgi = os.path.join(app, "whoami.cgi")
        with open(cgi, "w") as f:
            f.write(WHOAMI_CGI)
        os.chmod(cgi, os.stat(cgi).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        with open(os.path.join(self.lh.docroot, "index.html"), "w") as f:
            f.write("<!DOCTYPE html><title>home</title><p id=home>home</p>\n")
        env.set(DINGAUTH_PUBLIC_URL=self.lh.url)
        self.url = self.lh.url
        self.logs = []

    def start(self, flow):
        self.env.set(DINGAUTH_LOGIN_FLOW=flow)
        self.lh.start()

    def stop(self):
        if self.lh.proc is not None:
            self.lh.stop()
            self.logs.append(self.lh.log())


def sign_in(driver, site, flow, userid, rd, name_css, want_name, label):
    """Open the login page, click userid in the QR frame, land on rd."""
    driver.delete_all_cookies()
    driver.get(site.url + "/dingauth/login?" + qs(rd=rd))
    frame = wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#login_container iframe"))
    t.check(label + ": DingTalk's QR frame is embedded", frame)
    if not frame:
        return False
    if flow != "oauth2" and label.endswith("(first)"):
        shot(driver, "login-%s" % flow)
    driver.switch_to.frame(frame[0])
    button = wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, 'button[data-userid="%s"]' % userid))
    t.check(label + ": the frame lists people", button)
    if not button:
        driver.switch_to.default_content()
        return False
    button[0].click()
    driver.switch_to.default_content()
    got = wait(driver, lambda d: text_of(d, name_css))
    t.eq(label + ": signed in, the page shows the name", got, want_name)
    if not got:
        print("#   url: %s" % driver.current_url)
        print("#   page: %s" % driver.page_source[:1500].replace("\n", " "))
    return got == want_name


def main():
    profile = tempfile.mkdtemp(prefix="dingauth-chrome-")
    fk = FakeDingTalk(qps=10000).start()
    env = Env(fake=fk, DINGAUTH_UNKNOWN_USER="deny")
    authorizer = os.access(os.path.join(CGI_DIR, "authorize.fcgi"), os.X_OK)
    callback = os.access(os.path.join(CGI_DIR, "callback.fcgi"), os.X_OK)
    site = Site(env, authorizer)
    driver = None
    try:
        env.add_user("u001", "un001", "张三")
        env.add_user("u004", "un004", HOSTILE, depts=(6,))
        env.add_user("u006", "un006", "Alice Smith", depts=(2,))
        driver = chrome(profile)

        for flow in ("sns", "sns_bycode", "oauth2"):
            site.start(flow)
            try:
                label = "%s (first)" % flow
                ok = sign_in(driver, site, flow, "u006", "/dingauth/login",
                             "#user-name", "Alice Smith", label)
                if ok:
                    c = driver.get_cookie("dingauth_session") or {}
                    t.check(flow + ": session cookie is HttpOnly, SameSite=Lax",
                            c.get("httpOnly") is True and c.get("sameSite") == "Lax", c)
                    sid = c.get("value", "")
                    t.eq(flow + ": the database holds its SHA-256 only",
                         env.sql("SELECT userid FROM sessions WHERE id_hash = ?",
                                 (hashlib.sha256(sid.encode()).digest(),)),
                         [("u006",)])
                    t.eq(flow + ": back on the login page's signed-in view",
                         urllib.parse.urlsplit(driver.current_url).path,
                         "/dingauth/login")
                    if flow == "sns":
                        shot(driver, "account")
                if flow == "oauth2":
                    shot_login = True
                    driver.delete_all_cookies()
                    driver.get(site.url + "/dingauth/login")
                    wait(driver, lambda d: d.find_elements(
                        By.CSS_SELECTOR, "#login_container iframe"))
                    if shot_login:
                        shot(driver, "login-oauth2")
            finally:
                if flow != "oauth2":
                    site.stop()

        # oauth2 is running: a page behind the authorizer, a hostile name.
        if authorizer:
            ok = sign_in(driver, site, "oauth2", "u004", "/app/whoami.cgi",
                         "#who", HOSTILE, "oauth2 to a protected page")
            t.check("protected page: REMOTE_USER from the authorizer",
                    text_of(driver, "#user") == "u004")
        else:
            print("# authorize.fcgi not built: the protected-page check is skipped")
            ok = sign_in(driver, site, "oauth2", "u004", "/dingauth/login",
                         "#user-name", HOSTILE, "oauth2 hostile name")
        t.check("hostile name: shown as text, no script ran", ok and no_alert(driver))
        site.stop()

        # sns again for the attacks.
        site.start("sns")
        driver.delete_all_cookies()
        driver.get(site.url + "/dingauth/login?rd=/dingauth/login")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#login_container iframe"))
        start_url = driver.current_url
        fk.clear_log()
        before = env.sql("SELECT count(*) FROM sessions")[0][0]
        real = fk.code(userid="u006", kind="login_tmp")["code"]
        driver.execute_script(
            "window.postMessage(arguments[0], '*');"
            "window.postMessage('forgedcode123', '*');", real)
        time.sleep(1.5)
        t.eq("forged-origin loginTmpCode: ignored, still on the login page",
             driver.current_url, start_url)
        t.check("forged-origin loginTmpCode: nothing sent to DingTalk",
                not any(e["path"] == "/connect/oauth2/sns_authorize" for e in fk.log()),
                fk.log())
        t.eq("forged-origin loginTmpCode: no session",
             env.sql("SELECT count(*) FROM sessions")[0][0], before)
        # The same frame still works afterwards.
        frame = driver.find_elements(By.CSS_SELECTOR, "#login_container iframe")
        driver.switch_to.frame(frame[0])
        driver.find_element(By.CSS_SELECTOR, 'button[data-userid="u001"]').click()
        driver.switch_to.default_content()
        got = wait(driver, lambda d: text_of(d, "#user-name"))
        t.eq("after the forgery the real frame signs in", got, "张三")

        # A second use of the same code and state.
        used = exchange_lines(site.accesslog)
        t.check("the exchange URL was seen", used, site.lh.log())
        if used:
            first = used[-1]
            driver.get(site.url + first)
            problem = wait(driver, lambda d: d.find_elements(
                By.CSS_SELECTOR, "[data-problem]"))
            t.eq("same code and state again: the state is refused",
                 problem[0].get_attribute("data-problem") if problem else None,
                 "state_invalid")
            t.check("... the page says what happened",
                    "already used" in (text_of(driver, "h1") or ""))
            link = driver.find_elements(By.ID, "try-again")
            t.check("... and offers try again",
                    link and link[0].get_attribute("href").startswith(
                        site.url + "/dingauth/login"))
            shot(driver, "error-state-reused")
            # The same code with a fresh, valid state.
            driver.delete_cookie("dingauth_session")
            driver.get(site.url + "/dingauth/login?rd=/")
            state = (driver.get_cookie("dingauth_state") or {}).get("value")
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(first).query))
            before = env.sql("SELECT count(*) FROM sessions")[0][0]
            driver.get(site.url + "/dingauth/exchange?" +
                       qs(code=q.get("code", ""), state=state or ""))
            problem = wait(driver, lambda d: d.find_elements(
                By.CSS_SELECTOR, "[data-problem]"))
            t.eq("same code with a new state: DingTalk refuses the code",
                 problem[0].get_attribute("data-problem") if problem else None,
                 "code_rejected")
            t.eq("... no session was created",
                 env.sql("SELECT count(*) FROM sessions")[0][0], before)
            # Try again works.
            driver.find_element(By.ID, "try-again").click()
            t.check("try again leads to a working QR page", wait(
                driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, "#login_container iframe")))

        # A leaver is sent back to the login page.
        ok = sign_in(driver, site, "sns", "u006",
                     "/app/whoami.cgi" if authorizer else "/dingauth/login",
                     "#who" if authorizer else "#user-name", "Alice Smith",
                     "leaver signs in")
        if callback:
            res = fk.push(site.url + "/dingauth/callback",
                          {"EventType": "user_leave_org", "UserId": ["u006"],
                           "CorpId": fk.corp()["corp_id"],
                           "TimeStamp": str(int(time.time() * 1000))})
            t.check("user_leave_org push answered success", res.get("reply_ok"), res)
            wait(driver, lambda d: env.sql(
                "SELECT active FROM users WHERE userid='u006'")[0][0] == 0, 10)
        else:
            print("# callback.fcgi not built: the leaver is deactivated with SQL")
            env.sql("UPDATE users SET active = 0 WHERE userid = 'u006'")
            env.sql("DELETE FROM sessions WHERE userid = 'u006'")
        t.eq("leaver: inactive in the directory",
             env.sql("SELECT active FROM users WHERE userid='u006'"), [(0,)])
        t.eq("leaver: no sessions left",
             env.sql("SELECT count(*) FROM sessions WHERE userid='u006'")[0][0], 0)
        driver.refresh()
        back = wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, "#login_container iframe"))
        t.check("leaver: the same browser is back on the login page",
                ok and back and urllib.parse.urlsplit(driver.current_url).path ==
                "/dingauth/login", driver.current_url)
        if authorizer:
            t.check("leaver: the login page keeps where they were going",
                    "rd=%2Fapp%2Fwhoami.cgi" in driver.current_url, driver.current_url)

        # Logout from the signed-in view.
        sign_in(driver, site, "sns", "u001", "/dingauth/login", "#user-name",
                "张三", "before logout")
        sid = (driver.get_cookie("dingauth_session") or {}).get("value", "")
        driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
        t.check("logout: back on the QR page", wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, "#login_container iframe")))
        t.eq("logout: the session is gone", env.sql(
            "SELECT count(*) FROM sessions WHERE id_hash = ?",
            (hashlib.sha256(sid.encode()).digest(),))[0][0], 0)
        t.check("logout: the cookie is gone", driver.get_cookie("dingauth_session") is None)

        # Without the frame script the plain link still signs in.
        site.stop()
        env.set(DINGTALK_DDLOGIN_JS=fk.url + "/nothing-here.js")
        site.start("sns")
        driver.delete_all_cookies()
        driver.get(site.url + "/dingauth/login?rd=/dingauth/login")
        msg = wait(driver, lambda d: text_of(d, "#qr-status"))
        t.check("no ddlogin.js: the page says so", msg and "could not be loaded" in msg, msg)
        shot(driver, "login-no-frame")
        driver.find_element(By.ID, "dingauth-fallback").click()
        b = wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, 'button[data-unionid="un001"]'))
        if b:
            b[0].click()
        got = wait(driver, lambda d: text_of(d, "#user-name"))
        t.eq("no ddlogin.js: the plain link signs in", got, "张三")
    except Exception:
        import traceback
        t.check("browser test ran to the end", False, traceback.format_exc())
    finally:
        if driver is not None:
            driver.quit()
        site.stop()
        marks = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
        bad = [line for log in site.logs for line in log.splitlines()
               if any(m in line for m in marks)]
        t.check("no sanitizer report from the FastCGI programs", not bad,
                "\n".join(bad[:20]))
        if t.failed:
            print("# lighttpd log:\n# " + "".join(site.logs).replace(
                "\n", "\n# ")[-3000:])
        env.close()
        fk.stop()
        shutil.rmtree(profile, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
