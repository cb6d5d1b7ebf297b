"""Phones outside DingTalk, in a real browser: headless Chromium (Selenium)
emulating a 390x844 phone and a 360 px one, with an ordinary mobile
browser's user agent (no "DingTalk" in it), against lighttpd serving
static/ and the FastCGI programs, DingTalk being the fake.

On a small screen the login page leads with DingTalk's own authorization
page (the oauth2 URL, which can hand over to the DingTalk app) and keeps
the QR code for desktops; the person signs in through it. No page needs
horizontal scrolling at 390 and 360 px (scrollWidth <= innerWidth): login,
signed in, signed out, waiting for review, an error, the authorizer's
403, in English and Chinese. At desktop width the QR frame is shown.
Screenshots go to a temporary directory (printed).

Run: /usr/bin/python3 tests/test_browser_phone.py
"""
import os
import shutil
import stat
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, Lighttpd, CGI_DIR, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
from browserkit import (require, chrome, wait, visible, By, WHOAMI_CGI,
                        shot as kit_shot)  # noqa: E402

t = T()

require(t)

# A phone's own browser, not DingTalk's (whose user agent names DingTalk).
PHONE_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36")
PHONES = ((390, 844), (360, 740))
SHOTS = tempfile.mkdtemp(prefix="dingauth-phone-")


def phone(driver, width, height):
    """Emulate a phone of width x height CSS pixels and its browser."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 2,
        "mobile": True})
    driver.execute_cdp_cmd("Emulation.setUserAgentOverride",
                           {"userAgent": PHONE_UA})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                           {"enabled": True, "maxTouchPoints": 5})


def desktop(driver):
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                           {"enabled": False})
    driver.execute_cdp_cmd("Emulation.setUserAgentOverride",
                           {"userAgent": driver.execute_script(
                               "return navigator.userAgent").replace(
                                   "Mobile ", "")})


def shot(driver, name):
    return kit_shot(driver, SHOTS, name, announce=False)


def fits(driver, width, label):
    """No horizontal scrolling: the page is no wider than the screen."""
    sw, iw, cw = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " document.documentElement.clientWidth];")
    t.check("%s at %d px: no horizontal scroll (scrollWidth %d <= "
            "innerWidth %d)" % (label, width, sw, iw),
            sw <= iw and iw == width and cw == width, (sw, iw, cw))


def main():
    profile = tempfile.mkdtemp(prefix="dingauth-chrome-")
    fk = FakeDingTalk(qps=10000).start()
    env = Env(fake=fk, DINGAUTH_LOGIN_FLOW="oauth2",
              DINGAUTH_UNKNOWN_USER="review", DINGAUTH_LANG="auto")
    authorizer = os.access(os.path.join(CGI_DIR, "authorize.fcgi"), os.X_OK)
    protect = {"/app/": {}, "/staff/": {"DINGAUTH_REQUIRE_DEPTS": "2"}}
    lh = Lighttpd(env, protect=protect if authorizer else None)
    for d in ("app", "staff"):
        os.makedirs(os.path.join(lh.docroot, d), exist_ok=True)
        cgi = os.path.join(lh.docroot, d, "index.cgi")
        with open(cgi, "w") as f:
            f.write(WHOAMI_CGI)
        os.chmod(cgi, os.stat(cgi).st_mode | stat.S_IXUSR | stat.S_IXGRP |
                 stat.S_IXOTH)
    env.set(DINGAUTH_PUBLIC_URL=lh.url)
    url = lh.url
    driver = None
    log = ""
    try:
        env.add_user("u001", "un001", "张三", depts=(1,))
        env.add_user("u006", "un006", "Alice Smith", depts=(2,))
        lh.start()
        driver = chrome(profile, args=("--hide-scrollbars",))
        print("# screenshots: %s" % SHOTS, flush=True)

        for lang in ("en", "zh-CN"):
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {
                "headers": {"Accept-Language": lang}})
            for width, height in PHONES:
                tag = "%s %dx%d" % (lang, width, height)
                name = "%s-%d" % (lang, width)
                phone(driver, width, height)
                driver.delete_all_cookies()
                # The login page: DingTalk's own page first, no QR code.
                driver.get(url + "/dingauth/login?" + qs(rd="/dingauth/login"))
                wait(driver, lambda d: visible(d, "#dingauth-open"))
                t.check("%s: the login page leads with DingTalk's "
                        "authorization page" % tag,
                        visible(driver, "#dingauth-open"))
                href = (driver.find_element(By.ID, "dingauth-open")
                        .get_attribute("href") or "")
                t.check("%s: ... the oauth2 authorization URL" % tag,
                        href.startswith(fk.url + "/oauth2/auth?") and
                        "client_id=" in href, href)
                t.check("%s: ... and no QR code on the phone" % tag,
                        not visible(driver, "#login_container"))
                t.eq("%s: <html lang>" % tag, driver.find_element(
                    By.TAG_NAME, "html").get_attribute("lang"), lang)
                fits(driver, width, tag + " login")
                shot(driver, "login-" + name)

                # Through DingTalk's page (the fake's), signed in.
                driver.find_element(By.ID, "dingauth-open").click()
                b = wait(driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, 'button[data-unionid="un001"]'))
                if b:
                    b[0].click()
                got = wait(driver, lambda d: visible(d, "#user-name") and
                           d.find_element(By.ID, "user-name").text)
                t.eq("%s: signed in through DingTalk's page" % tag, got,
                     "张三")
                fits(driver, width, tag + " signed in")
                shot(driver, "account-" + name)

                if authorizer:
                    # The authorizer's 403: not in department 2.
                    driver.get(url + "/staff/")
                    wait(driver, lambda d: d.find_elements(
                        By.CSS_SELECTOR, "body[data-page]"))
                    t.eq("%s: the authorizer's 403 page" % tag,
                         driver.find_element(By.TAG_NAME, "body")
                         .get_attribute("data-page"), "deny-forbidden.html")
                    fits(driver, width, tag + " 403")
                    shot(driver, "forbidden-" + name)
                    driver.get(url + "/dingauth/login")
                    wait(driver, lambda d: visible(d, "form.logout button"))

                # Signed out: the login page says so.
                driver.find_element(By.CSS_SELECTOR,
                                    "form.logout button").click()
                wait(driver, lambda d: visible(d, "#notice"))
                t.check("%s: signed out, the login page says so" % tag,
                        visible(driver, "#notice") and
                        visible(driver, "#dingauth-open"))
                fits(driver, width, tag + " signed out")
                shot(driver, "signed-out-" + name)

                # Someone not in the directory: waiting for review.
                driver.find_element(By.ID, "dingauth-open").click()
                b = wait(driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, 'button[data-unionid="un002"]'))
                if b:
                    b[0].click()
                wait(driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, "[data-problem]"))
                p = driver.find_elements(By.CSS_SELECTOR, "[data-problem]")
                t.eq("%s: an unknown colleague waits for review" % tag,
                     p[0].get_attribute("data-problem") if p else None,
                     "waiting_for_approval")
                fits(driver, width, tag + " review pending")
                shot(driver, "review-" + name)

                # An error: a sign-in attempt that does not exist.
                driver.get(url + "/dingauth/exchange?" +
                           qs(authCode="x" * 40, state="y" * 43))
                wait(driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, "[data-problem]"))
                t.check("%s: an error page" % tag, driver.find_elements(
                    By.CSS_SELECTOR, "#error-ref"))
                fits(driver, width, tag + " error")
                shot(driver, "error-" + name)

                # The sign-out page (GET /dingauth/logout).
                driver.get(url + "/dingauth/logout")
                wait(driver, lambda d: d.find_elements(
                    By.CSS_SELECTOR, "body[data-page]"))
                fits(driver, width, tag + " sign-out page")
                env.sql("DELETE FROM login_requests")

        # A desktop: the QR frame, and the phone's button out of the way.
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {
            "headers": {"Accept-Language": "en"}})
        desktop(driver)
        driver.delete_all_cookies()
        driver.get(url + "/dingauth/login?" + qs(rd="/dingauth/login"))
        frame = wait(driver, lambda d: [e for e in d.find_elements(
            By.CSS_SELECTOR, "#login_container iframe") if e.is_displayed()])
        t.check("desktop: DingTalk's QR frame is shown", frame)
        t.check("desktop: the phone's button is not",
                not visible(driver, "#dingauth-open"))
        t.check("desktop: the plain link to DingTalk's page stays",
                visible(driver, "#dingauth-fallback"))
        shot(driver, "login-desktop")

        # Branding: a login.css from DINGAUTH_TEMPLATE_DIR goes inline; the
        # pages' policies admit it (by its hash where inline styles are
        # otherwise refused), so the browser applies it.
        brand = os.path.join(env.dir, "brand")
        os.makedirs(brand, exist_ok=True)
        with open(os.path.join(brand, "login.css"), "w") as f:
            f.write(open(os.path.join(os.path.dirname(os.path.abspath(
                __file__)), "..", "static", "login.css")).read() +
                "\nbody { background: #c8102e; }\n")
        lh.stop()
        env.set(DINGAUTH_TEMPLATE_DIR=brand)
        lh.start()
        for path, label in (("/dingauth/login", "the login page"),
                            ("/dingauth/exchange?" + qs(authCode="x"),
                             "an error page")):
            driver.get(url + path)
            wait(driver, lambda d: d.find_elements(By.TAG_NAME, "main"))
            bg = driver.execute_script(
                "return getComputedStyle(document.body).backgroundColor")
            t.eq("branding: %s applies the template dir's CSS" % label, bg,
                 "rgb(200, 16, 46)")
        shot(driver, "error-branded")
    except Exception:
        import traceback
        t.check("phone browser test ran to the end", False,
                traceback.format_exc())
    finally:
        if driver is not None:
            driver.quit()
        log = lh.log()
        lh.stop()
        bad = [line for line in log.splitlines() if any(
            m in line for m in ("AddressSanitizer", "runtime error:"))]
        t.check("no sanitizer report from the FastCGI programs", not bad,
                "\n".join(bad[:20]))
        if t.failed:
            print("# lighttpd log:\n# " + log.replace("\n", "\n# ")[-3000:])
        env.close()
        fk.stop()
        shutil.rmtree(profile, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
