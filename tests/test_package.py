"""The Debian package: built from a copy of the tree, then inspected.

Run with /usr/bin/python3 tests/test_package.py (tests/run does). Copies
the tree (git's file list) into a temporary directory and runs
"dpkg-buildpackage -us -uc -b" there, so nothing is left in the tree.
Then checks the .deb: its control fields and version (the Makefile's
VERSION), the file list, modes and owners, the maintainer scripts (run
against stub commands that only record what they were asked, never
against this machine), and the programs extracted into a scratch root:
--version, "dingauth init" and "dingauth doctor" against the fake
DingTalk. It never installs the package on this machine.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()
TMP = tempfile.mkdtemp(prefix="dingauth-package-")
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": TMP,
            "LC_ALL": "C.UTF-8"}

with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
    VERSION = re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M).group(1)


def sh(args, cwd=None, env=None, timeout=120):
    return subprocess.run(args, cwd=cwd, env=env or BASE_ENV, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)


def tree_files():
    """The tree's files: tracked and untracked-but-not-ignored."""
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached",
                        "--others", "--exclude-standard"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        return None
    return [p for p in r.stdout.decode().split("\0")
            if p and os.path.isfile(os.path.join(ROOT, p))]


def tree_state():
    r = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                        "--ignored"], stdout=subprocess.PIPE, text=True)
    return r.stdout


# --- build ---------------------------------------------------------------
src = os.path.join(TMP, "dingauth-" + VERSION)
files = tree_files()
before = tree_state()
if files is None:
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "build-san", "run", "*.fcgi", "__pycache__"))
    os.makedirs(os.path.join(src, "bin"), exist_ok=True)
    if os.path.exists(os.path.join(src, "bin", "dingauth")):
        os.unlink(os.path.join(src, "bin", "dingauth"))
else:
    for p in files:
        os.makedirs(os.path.dirname(os.path.join(src, p)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, p), os.path.join(src, p))
env = dict(BASE_ENV, DEB_BUILD_OPTIONS="parallel=2")
r = sh(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
       timeout=900)
tail = "\n".join(r.stdout.splitlines()[-40:])
t.check("dpkg-buildpackage -us -uc -b succeeds", r.returncode == 0, tail)
debs = sorted(n for n in os.listdir(TMP)
              if n.startswith("dingauth_") and n.endswith(".deb"))
t.check("one dingauth .deb is built", len(debs) == 1, os.listdir(TMP))
t.eq("the build leaves nothing in the tree", tree_state(), before)
if len(debs) != 1:
    shutil.rmtree(TMP, ignore_errors=True)
    t.done()
DEB = os.path.join(TMP, debs[0])


def field(name):
    return sh(["dpkg-deb", "-f", DEB, name]).stdout.strip()


# --- control fields ------------------------------------------------------
t.eq("package version is the Makefile's VERSION", field("Version"), VERSION)
t.eq("package name", field("Package"), "dingauth")
deps = field("Depends")
for lib in ("libfcgi", "libcurl", "libssl3", "libsqlite3", "libcjson", "libwslay1",
            "adduser"):
    t.check("Depends names %s (shlibs)" % lib, lib in deps, deps)

# --- contents ------------------------------------------------------------
listing = sh(["dpkg-deb", "-c", DEB]).stdout.splitlines()
entries = {}
for line in listing:
    parts = line.split(None, 5)
    if len(parts) < 6:
        continue
    perms, owner, _, _, _, rest = parts
    name = rest.split(" -> ")[0]
    target = rest.split(" -> ")[1] if " -> " in rest else None
    entries[name.lstrip(".").rstrip("/") or "/"] = (perms, owner, target)


def has(path, perms):
    e = entries.get(path)
    return e is not None and e[0] == perms


t.check("deb: /usr/bin/dingauth, 0755",
        has("/usr/bin/dingauth", "-rwxr-xr-x"), entries.get("/usr/bin/dingauth"))
cgis = sorted(n[:-2] + ".fcgi" for n in os.listdir(os.path.join(ROOT, "cgi-bin"))
              if n.endswith(".c"))
t.check("deb: every .fcgi in /usr/lib/dingauth/cgi-bin, 0755",
        all(has("/usr/lib/dingauth/cgi-bin/" + n, "-rwxr-xr-x") for n in cgis),
        [n for n in cgis if not has("/usr/lib/dingauth/cgi-bin/" + n,
                                    "-rwxr-xr-x")])
statics = sorted(n for n in os.listdir(os.path.join(ROOT, "static"))
                 if not n.endswith(".html") and not n.startswith("messages."))
t.check("deb: static files in /usr/share/dingauth/static, 0644",
        all(has("/usr/share/dingauth/static/" + n, "-rw-r--r--")
            for n in statics), statics)
t.eq("deb: /usr/lib/dingauth/static links to share",
     (entries.get("/usr/lib/dingauth/static") or (None, None, None))[2],
     "../../share/dingauth/static")
t.check("deb: the examples (three servers, systemd)", all(
    any(k.startswith("/usr/share/dingauth/examples/" + d + "/") for k in entries)
    for d in ("apache", "lighttpd", "nginx", "systemd")),
    sorted(k for k in entries if "examples" in k))
mans = sorted(os.listdir(os.path.join(ROOT, "man")))
t.check("deb: every manual page, compressed",
        all(has("/usr/share/man/man%s/%s.gz" % (m.rsplit(".", 1)[1], m),
                "-rw-r--r--") for m in mans), mans)
t.check("deb: copyright and changelog",
        "/usr/share/doc/dingauth/copyright" in entries and
        "/usr/share/doc/dingauth/changelog.gz" in entries, sorted(entries))
t.check("deb: everything owned by root/root",
        all(e[1] == "root/root" for e in entries.values()), listing[:5])
t.check("deb: nothing writable by others",
        not [k for k, e in entries.items() if e[0][8] == "w"
             and e[0][0] != "l"], listing)
t.check("deb: no file in /etc, /var or /usr/local (init writes those)",
        not [k for k in entries
             if k.startswith(("/etc/", "/var/", "/usr/local/"))],
        sorted(entries))

r = sh(["lintian", DEB], timeout=300)
errors = [ln for ln in r.stdout.splitlines() if ln.startswith("E:")]
t.check("lintian: no errors", r.returncode == 0 and not errors, r.stdout)

# --- maintainer scripts, against stubs ----------------------------------
ctrl = os.path.join(TMP, "control")
sh(["dpkg-deb", "-e", DEB, ctrl])
t.check("deb: postinst and postrm are there",
        os.path.isfile(os.path.join(ctrl, "postinst")) and
        os.path.isfile(os.path.join(ctrl, "postrm")), os.listdir(ctrl))
stubs = os.path.join(TMP, "stubs")
os.mkdir(stubs)
log = os.path.join(TMP, "stub.log")


def stub(name, rc=0):
    with open(os.path.join(stubs, name), "w") as f:
        f.write("#!/bin/sh\necho \"%s $*\" >> %s\nexit %d\n" % (name, log, rc))
    os.chmod(os.path.join(stubs, name), 0o755)


def run_script(script, *args, user_exists=False):
    for n in ("adduser", "install", "rm", "dpkg-statoverride", "chown",
              "chmod", "deluser", "deb-systemd-helper", "systemctl"):
        stub(n, rc=1 if n == "dpkg-statoverride" else 0)
    stub("getent", rc=0 if user_exists else 2)
    if os.path.exists(log):
        os.unlink(log)
    r = subprocess.run(["/bin/sh", os.path.join(ctrl, script)] + list(args),
                       env={"PATH": stubs}, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    calls = open(log).read() if os.path.exists(log) else ""
    return r, calls


r, calls = run_script("postinst", "configure")
t.check("postinst configure: exits 0 with only the stub commands",
        r.returncode == 0, r.stdout + calls)
t.check("postinst: creates the dingauth system user",
        re.search(r"^adduser .*--system.* dingauth$", calls, re.M), calls)
t.check("postinst: creates /var/lib/dingauth 0750 for dingauth",
        re.search(r"^install -d -o dingauth -g dingauth -m 0750 "
                  r"/var/lib/dingauth$", calls, re.M), calls)
r, calls = run_script("postinst", "configure", user_exists=True)
t.check("postinst again: the user exists, no second adduser",
        r.returncode == 0 and "adduser" not in calls, calls)
r, calls = run_script("postrm", "remove")
t.check("postrm remove: keeps the database and the configuration",
        r.returncode == 0 and "rm " not in calls, calls)
r, calls = run_script("postrm", "purge")
t.check("postrm purge: removes /var/lib/dingauth and /etc/dingauth.conf",
        r.returncode == 0 and "rm -rf /var/lib/dingauth" in calls and
        "rm -f /etc/dingauth.conf" in calls, r.stdout + calls)

# --- a scratch root ------------------------------------------------------
root = os.path.join(TMP, "root")
r = sh(["dpkg-deb", "-x", DEB, root])
t.check("dpkg-deb -x into a scratch root", r.returncode == 0, r.stdout)
prog = os.path.join(root, "usr/bin/dingauth")


def run_installed(*args, conf=None):
    env = dict(BASE_ENV, DINGAUTH_CONFIG=conf or os.path.join(TMP, "none"))
    return subprocess.run([prog] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)


r = run_installed("--version")
t.eq("installed dingauth --version", r.stdout, "dingauth %s\n" % VERSION)
r = subprocess.run([os.path.join(root, "usr/lib/dingauth/cgi-bin",
                                 "authorize.fcgi"), "--version"],
                   stdout=subprocess.PIPE, text=True, env=BASE_ENV)
t.eq("installed authorize.fcgi --version", r.stdout,
     "authorize.fcgi %s\n" % VERSION)
os.makedirs(os.path.join(root, "etc"))
conf = os.path.join(root, "etc", "dingauth.conf")
db = os.path.join(root, "var/lib/dingauth/dingauth.db")
r = run_installed("init", "--config", conf, "--db", db)
t.check("installed dingauth init writes the config and the database",
        r.returncode == 0 and os.path.isfile(conf) and os.path.isfile(db),
        r.stdout)
t.check("installed init: config 0640, database 0640",
        stat.S_IMODE(os.stat(conf).st_mode) == 0o640 and
        stat.S_IMODE(os.stat(db).st_mode) == 0o640)
with FakeDingTalk() as fk:
    corp = fk.corp()
    apps = corp["apps"]
    with open(conf, "a", encoding="utf-8") as f:
        f.write("\n".join("%s = %s" % kv for kv in [
            ("DINGTALK_CORP_ID", corp["corp_id"]),
            ("DINGTALK_APP_KEY", apps["appkey"]),
            ("DINGTALK_CORP_SECRET", apps["appsecret"]),
            ("DINGTALK_APP_ID", apps["sns_appid"]),
            ("DINGTALK_APP_SECRET", apps["sns_appsecret"]),
            ("DINGAUTH_PUBLIC_URL", "https://erp.example.com"),
            ("DINGTALK_OAPI_URL", fk.url), ("DINGTALK_API_URL", fk.url),
            ("DINGTALK_LOGIN_URL", fk.url)]) + "\n")
    r = run_installed("doctor", conf=conf)
    t.check("installed dingauth doctor passes on the filled-in config",
            r.returncode == 0 and re.search(r"^0 failed", r.stdout, re.M),
            r.stdout)
    r = run_installed("sync", conf=conf)
    t.check("installed dingauth sync copies the directory", r.returncode == 0,
            r.stdout)

shutil.rmtree(TMP, ignore_errors=True)
t.done()
