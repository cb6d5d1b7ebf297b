"""What the browser tests share (test_browser, test_browser_phone,
test_inapp_browser): headless Chromium through Selenium and chromedriver
from Debian's packages, a small page behind the authorizer that shows who
came through, and the waits and screenshots every test uses.

A test calls require(t) first: without python3-selenium it reports one
failed check and stops, rather than passing by doing nothing.
"""
import os

from harness import catalog  # noqa: F401 (the browser tests read the catalogs)

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover
    IMPORT_ERROR = str(e)
    webdriver = TimeoutException = Service = By = WebDriverWait = None

CHROMEDRIVER = "/usr/bin/chromedriver"

# The protected application: a CGI that greets whoever the authorizer let in.
WHOAMI_CGI = """#!/usr/bin/python3
import html, os
print("Content-Type: text/html; charset=utf-8")
print()
print('<!DOCTYPE html><meta charset="utf-8"><title>app</title>'
      '<meta name="viewport" content="width=device-width, initial-scale=1">'
      '<h1>Hello <span id="who">%s</span></h1><p id="user">%s</p>'
      % (html.escape(os.environ.get("DINGTALK_NAME", "")),
         html.escape(os.environ.get("REMOTE_USER", ""))))
"""


def require(t):
    if IMPORT_ERROR is not None:
        t.check("python3-selenium is installed", False, IMPORT_ERROR)
        t.done()


def chrome(profile, window=(1100, 900), mobile=None, args=()):
    """Headless Chromium with a private profile directory. mobile:
    (width, height, user agent) for Chromium's own phone emulation."""
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run",
              "--user-data-dir=" + profile) + tuple(args):
        opts.add_argument(a)
    if mobile is None:
        opts.add_argument("--window-size=%d,%d" % window)
    else:
        width, height, ua = mobile
        opts.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height,
                              "pixelRatio": 3.0, "touch": True, "mobile": True},
            "userAgent": ua})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER),
                            options=opts)


def wait(driver, cond, timeout=15):
    """cond(driver)'s first true value within timeout seconds, else None."""
    try:
        return WebDriverWait(driver, timeout).until(lambda d: cond(d))
    except TimeoutException:
        return None


def text_of(driver, css):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else None


def visible(driver, css):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return bool(els) and els[0].is_displayed()


def shot(driver, shots, name, announce=True):
    """A screenshot in the directory shots; its path."""
    os.makedirs(shots, exist_ok=True)
    path = os.path.join(shots, name + ".png")
    driver.save_screenshot(path)
    if announce:
        print("# screenshot: %s" % path, flush=True)
    return path

