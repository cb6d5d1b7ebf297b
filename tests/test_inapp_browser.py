"""The in-app login (免登) in a real browser: headless Chromium at 390x844
with a DingTalk User-Agent (mobile emulation), driven by Selenium against a
real lighttpd serving static/ and the FastCGI programs, DINGTALK_JSAPI_JS
pointing at the fake DingTalk's stand-in JSAPI (/dingtalk.open.js), whose
requestAuthCode hands out the fake's single-use in-app codes.

- A protected page sends the phone to the login page, which is the in-app
  page; the JSAPI gives 李四's code and the browser lands on the protected
  page signed in, without a tap and without a QR code.
- With no person set the stand-in shows its "who is signed in" sheet:
  clicking one signs them in; the page fits 390 px (no horizontal scroll).
- Signing out inside DingTalk does not sign straight back in: the page
  waits for a tap, then signs in again.
- JSAPI refused, failing or missing: the page says so (in Chinese) and its
  link leads to the QR page, where the usual QR flow signs in.
Screenshots go to a temporary directory of the run (printed).

Run: /usr/bin/python3 tests/test_inapp_browser.py
"""
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, Lighttpd, CGI_DIR, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
from browserkit import (require, chrome, wait, text_of, visible, catalog, By,
                        WHOAMI_CGI, shot as kit_shot)  # noqa: E402

t = T()

require(t)

WIDTH, HEIGHT = 390, 844
DINGTALK_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
               "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
               "AliApp(DingTalk/7.6.10) com.laiwang.DingTalk/32398425 "
               "Channel/201200 language/zh-Hans-CN")
SHOTS = tempfile.mkdtemp(prefix="dingauth-inapp-browser-")


ZH = catalog("messages.zh-CN")


def shot(driver, name):
    return kit_shot(driver, SHOTS, name)


def no_sideways_scroll(driver):
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth;")


def main():
    profile = tempfile.mkdtemp(prefix="dingauth-chrome-")
    fk = FakeDingTalk(qps=10000).start()
    # The sns flow: the in-app page works whatever DINGAUTH_LOGIN_FLOW is,
    # and the way out leads to the QR frame.
    env = Env(fake=fk, DINGAUTH_LANG="zh-CN", DINGAUTH_LOGIN_FLOW="sns",
              DINGAUTH_UNKNOWN_USER="deny")
    lh = Lighttpd(env, protect={"/app/": {}})
    app = os.path.join(lh.docroot, "app")
    os.makedirs(app, exist_ok=True)
    cgi = os.path.join(app, "whoami.cgi")
    with open(cgi, "w") as f:
        f.write(WHOAMI_CGI)
    os.chmod(cgi, os.stat(cgi).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env.set(DINGAUTH_PUBLIC_URL=lh.url)
    driver = None
    log = ""
    try:
        env.add_user("u001", "un001", "张三")
        env.add_user("u002", "un002", "李四", depts=(4, 6))
        env.add_user("u006", "un006", "Alice Smith", depts=(2,))
        if not os.access(os.path.join(CGI_DIR, "authorize.fcgi"), os.X_OK):
            t.check("authorize.fcgi is built", False)
            return
        lh.start()
        driver = chrome(profile, mobile=(WIDTH, HEIGHT, DINGTALK_UA))
        protected = lh.url + "/app/whoami.cgi"

        # 1. The client is signed in as 李四: no tap at all.
        fk.jsapi(userid="u002")
        fk.clear_log()
        driver.get(protected)
        got = wait(driver, lambda d: text_of(d, "#who"))
        t.eq("in DingTalk: the protected page, signed in as 李四 without a tap",
             got, "李四")
        t.eq("... REMOTE_USER from the authorizer", text_of(driver, "#user"), "u002")
        t.eq("the viewport is 390x844 with DingTalk's User-Agent",
             driver.execute_script("return [window.innerWidth, window.innerHeight,"
                                   " /DingTalk/.test(navigator.userAgent)];"),
             [WIDTH, HEIGHT, True])
        shot(driver, "inapp-signed-in")
        paths = [e["path"] for e in fk.log()]
        t.check("... the JSAPI was loaded and getuserinfo asked, no QR page",
                "/dingtalk.open.js" in paths and "/topapi/v2/user/getuserinfo" in paths
                and "/login/qrcode.htm" not in paths, paths)
        c = driver.get_cookie("dingauth_session") or {}
        t.check("... the session cookie is HttpOnly, SameSite=Lax",
                c.get("httpOnly") is True and c.get("sameSite") == "Lax", c)
        t.eq("... the database holds its SHA-256, for 李四",
             env.sql("SELECT userid FROM sessions WHERE id_hash = ?",
                     (hashlib.sha256(c.get("value", "").encode()).digest(),)),
             [("u002",)])

        # 2. Signing out in DingTalk does not sign straight back in.
        driver.get(lh.url + "/dingauth/login")
        t.check("the signed-in view names 李四", wait(
            driver, lambda d: text_of(d, "#user-name") == "李四"))
        driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
        button = wait(driver, lambda d: visible(d, "#dingauth-inapp-start"))
        t.check("signed out: the in-app page waits for a tap", button)
        t.check("... says the user signed out",
                ZH["login.notice.signed_out"] in (text_of(driver, "#notice") or ""))
        t.eq("... and is not signed in", driver.get_cookie("dingauth_session"), None)
        shot(driver, "inapp-signed-out")
        if button:
            driver.find_element(By.ID, "dingauth-inapp-start").click()
            c = wait(driver, lambda d: d.get_cookie("dingauth_session"))
            t.eq("a tap signs in again", env.sql(
                "SELECT userid FROM sessions WHERE id_hash = ?",
                (hashlib.sha256((c or {}).get("value", "").encode()).digest(),)),
                [("u002",)])

        # 3. No person set: the stand-in client's sheet; pick Alice.
        driver.delete_all_cookies()
        fk.jsapi()
        driver.get(lh.url + "/dingauth/login?" + qs(rd="/app/whoami.cgi"))
        sheet = wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, '#fake-dingtalk-client button[data-userid="u006"]'))
        t.check("the simulated client asks who is signed in", sheet)
        t.check("the in-app page: no QR code",
                driver.find_elements(By.ID, "dingauth-inapp") and
                not driver.find_elements(By.ID, "login_container"))
        t.check("the in-app page shows progress in Chinese",
                ZH["inapp.progress"] in (text_of(driver, "#dingauth-progress") or ""))
        t.check("the in-app page fits 390 px (no sideways scrolling)",
                no_sideways_scroll(driver))
        t.eq("<html lang> is zh-CN",
             driver.execute_script("return document.documentElement.lang;"), "zh-CN")
        shot(driver, "inapp-page")
        if sheet:
            sheet[0].click()
            got = wait(driver, lambda d: text_of(d, "#who"))
            t.eq("picked in the client: signed in as Alice", got, "Alice Smith")

        # 4. Refused in the client: the page says so; the way out is the QR.
        driver.delete_all_cookies()
        driver.get(lh.url + "/dingauth/login?" + qs(rd="/app/whoami.cgi"))
        refuse = wait(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, '#fake-dingtalk-client button[data-refuse]'))
        if refuse:
            refuse[0].click()
        msg = wait(driver, lambda d: visible(d, "#inapp-fallback") and
                   text_of(d, "#inapp-status"))
        t.check("refused: the page says so in Chinese",
                msg and ZH["inapp.failed"] in msg, msg)
        t.check("... with DingTalk's words as a detail", msg and "用户取消授权" in msg, msg)
        t.check("... no spinner left", not visible(driver, "#dingauth-progress"))
        t.check("... still fits 390 px", no_sideways_scroll(driver))
        shot(driver, "inapp-refused")
        link = driver.find_elements(By.ID, "dingauth-fallback")
        if link:
            link[0].click()
        # On a phone the normal sign-in page leads with DingTalk's own
        # authorization page (the QR code is for desktops).
        entry = wait(driver, lambda d: visible(d, "#dingauth-open") and
                     d.find_elements(By.ID, "dingauth-open"))
        t.check("... its link leads to the normal sign-in page, not back to "
                "the in-app page",
                entry and not driver.find_elements(By.ID, "dingauth-inapp") and
                "inapp=0" in driver.current_url, driver.current_url)
        if entry:
            shot(driver, "inapp-way-out-qr")
            entry[0].click()
            b = wait(driver, lambda d: d.find_elements(
                By.CSS_SELECTOR, 'button[data-userid="u001"]'))
            if b:
                b[0].click()
            got = wait(driver, lambda d: text_of(d, "#who"))
            t.eq("... where the normal flow signs in (rd kept)", got, "张三")

        # 5. The JSAPI fails, or is missing.
        for setting, key, name in (
                ({"fail": {"errorCode": "-1", "errorMessage": "系统繁忙"}}, "inapp.failed",
                 "inapp-failed"),
                ({"missing": True}, "inapp.nojsapi", "inapp-no-jsapi"),
                ({"platform": "notInDingTalk"}, "inapp.outside", "inapp-outside")):
            driver.delete_all_cookies()
            fk.jsapi(**setting)
            before = env.sql("SELECT count(*) FROM sessions")[0][0]
            driver.get(lh.url + "/dingauth/login?" + qs(rd="/app/whoami.cgi"))
            msg = wait(driver, lambda d: visible(d, "#inapp-fallback") and
                       text_of(d, "#inapp-status"))
            label = "JSAPI %s" % ",".join(setting)
            t.check(label + ": the page says so in Chinese", msg and ZH[key] in msg, msg)
            t.check(label + ": and offers the QR page",
                    "inapp=0" in (driver.find_element(By.ID, "dingauth-fallback")
                                  .get_attribute("href") or ""))
            t.eq(label + ": no session", env.sql("SELECT count(*) FROM sessions")[0][0],
                 before)
            shot(driver, name)
        fk.jsapi()
    except Exception:
        import traceback
        t.check("in-app browser test ran to the end", False, traceback.format_exc())
    finally:
        if driver is not None:
            driver.quit()
        lh.stop()
        log = lh.log()
        marks = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
        bad = [line for line in log.splitlines() if any(m in line for m in marks)]
        t.check("no sanitizer report from the FastCGI programs", not bad,
                "\n".join(bad[:20]))
        if t.failed:
            print("# lighttpd log:\n# " + log.replace("\n", "\n# ")[-3000:])
        print("# screenshots in %s" % SHOTS)
        env.close()
        fk.stop()
        shutil.rmtree(profile, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
