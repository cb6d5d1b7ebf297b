"""make install / make uninstall into a DESTDIR, and the manual pages.

Run with /usr/bin/python3 tests/test_install.py (tests/run does). Installs
with the default PREFIX (/usr/local) and with PREFIX=/usr into temporary
DESTDIRs and checks the exact file list and modes, that the installed
programs run (--version), that the paths the deploy/ examples name exist
after the install, that every manual page renders without a warning and
names every option its command's --help names, and that uninstall
removes exactly what install put.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DINGAUTH, ROOT, T  # noqa: E402

t = T()
TMP = tempfile.mkdtemp(prefix="dingauth-install-")
SAN = os.environ.get("SAN", "")


def make(*args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT,
                           "SAN=" + SAN] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)


def tree(root):
    """relative path -> (kind, mode, link target) under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", None, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), None)
    return out


def expected_files(prefix):
    """What install must put, from the tree: path -> mode."""
    p = prefix.lstrip("/")
    want = {os.path.join(p, "bin", "dingauth"): 0o755}
    for n in os.listdir(os.path.join(ROOT, "cgi-bin")):
        if n.endswith(".c"):
            want[os.path.join(p, "lib/dingauth/cgi-bin", n[:-2] + ".fcgi")] = 0o755
        elif not n.endswith(".fcgi"):   # a helper script the examples run
            want[os.path.join(p, "lib/dingauth/cgi-bin", n)] = 0o755
    for n in os.listdir(os.path.join(ROOT, "static")):
        # Page templates and string catalogs: compiled in.
        if n.endswith(".html") or n.startswith("messages."):
            continue
        want[os.path.join(p, "share/dingauth/static", n)] = 0o644
    for dirpath, _, filenames in os.walk(os.path.join(ROOT, "deploy")):
        for n in filenames:
            rel = os.path.relpath(os.path.join(dirpath, n),
                                  os.path.join(ROOT, "deploy"))
            want[os.path.join(p, "share/dingauth/examples", rel)] = 0o644
    for n in os.listdir(os.path.join(ROOT, "man")):
        sec = n.rsplit(".", 1)[-1]
        want[os.path.join(p, "share/man", "man" + sec, n)] = 0o644
    return want


def run(path, *args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DINGTALK_", "DINGAUTH_"))}
    env["DINGAUTH_CONFIG"] = os.path.join(TMP, "absent.conf")
    return subprocess.run([path] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
    VERSION = re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M).group(1)

# --- the default PREFIX --------------------------------------------------
dest = os.path.join(TMP, "dest")
r = make("install", "DESTDIR=" + dest)
t.check("make install DESTDIR=... exits 0", r.returncode == 0, r.stdout)
got = tree(dest)
files = {k: v[1] for k, v in got.items() if v[0] == "file"}
want = expected_files("/usr/local")
t.check("install: the file list is exactly bin, lib/dingauth/cgi-bin, "
        "share/dingauth/{static,examples}, share/man",
        set(files) == set(want),
        "missing: %s\nextra: %s" % (sorted(set(want) - set(files)),
                                     sorted(set(files) - set(want))))
bad = {k: oct(m) for k, m in files.items() if k in want and m != want[k]}
t.check("install: programs 0755, everything else 0644", not bad, bad)
dirs = {k: oct(v[1]) for k, v in got.items()
        if v[0] == "dir" and v[1] != 0o755}
t.check("install: directories 0755", not dirs, dirs)
link = got.get("usr/local/lib/dingauth/static")
t.eq("install: lib/dingauth/static links to share/dingauth/static",
     link, ("link", None, "../../share/dingauth/static"))
t.check("install: the link resolves to the CSS and JS", os.path.isfile(
    os.path.join(dest, "usr/local/lib/dingauth/static/login.css")))

installed = os.path.join(dest, "usr/local/bin/dingauth")
r = run(installed, "--version")
t.check("installed dingauth --version", r.returncode == 0 and
        r.stdout == "dingauth %s\n" % VERSION, r.stdout + r.stderr)
cgis = sorted(n for n in os.listdir(os.path.join(
    dest, "usr/local/lib/dingauth/cgi-bin")) if n.endswith(".fcgi"))
ok = all(run(os.path.join(dest, "usr/local/lib/dingauth/cgi-bin", n),
             "--version").stdout == "%s %s\n" % (n, VERSION) for n in cgis)
t.check("installed .fcgi programs answer --version", ok and len(cgis) == 4,
        cgis)

# The paths the examples name exist after a default install: every
# "<root>/cgi-bin/NAME.fcgi" and "<root>/static/" with root
# /usr/local/lib/dingauth (the one path to change for another PREFIX).
named = set()
roots = set()
for dirpath, _, filenames in os.walk(os.path.join(ROOT, "deploy")):
    for n in filenames:
        with open(os.path.join(dirpath, n), encoding="utf-8") as f:
            text = f.read()
        roots.update(re.findall(r"/usr/(?:local/)?lib/dingauth(?=[/\"'\s]|$)",
                                text, re.M))
        named.update(re.findall(r"cgi-bin/([a-z_-]+(?:\.fcgi)?)\b", text))
t.eq("examples: one root, /usr/local/lib/dingauth", roots,
     {"/usr/local/lib/dingauth"})
missing = [n for n in sorted(named) if not os.path.isfile(
    os.path.join(dest, "usr/local/lib/dingauth/cgi-bin", n))]
t.check("examples: every program they name is installed under the root",
        named and not missing, (named, missing))

# Idempotent, then uninstall removes exactly what install put.
r = make("install", "DESTDIR=" + dest)
t.check("make install twice is fine", r.returncode == 0 and
        set(k for k, v in tree(dest).items() if v[0] == "file") == set(want),
        r.stdout)
r = make("uninstall", "DESTDIR=" + dest)
t.check("make uninstall exits 0", r.returncode == 0, r.stdout)
left = tree(dest)
t.check("uninstall: no file or link left",
        not [k for k, v in left.items() if v[0] != "dir"], left)
t.check("uninstall: lib/dingauth and share/dingauth are gone",
        not any(k.startswith(("usr/local/lib/dingauth",
                              "usr/local/share/dingauth")) for k in left),
        sorted(left))
foreign = os.path.join(dest, "usr/local/bin/other-tool")
with open(foreign, "w") as f:
    f.write("#!/bin/sh\n")
make("install", "DESTDIR=" + dest)
make("uninstall", "DESTDIR=" + dest)
t.check("uninstall: leaves other programs in bin alone",
        os.path.isfile(foreign))

# --- PREFIX=/usr (the Debian package's) ----------------------------------
dest2 = os.path.join(TMP, "dest2")
r = make("install", "PREFIX=/usr", "DESTDIR=" + dest2)
files2 = {k for k, v in tree(dest2).items() if v[0] == "file"}
t.check("make install PREFIX=/usr puts the same files under /usr",
        r.returncode == 0 and files2 == set(expected_files("/usr")),
        r.stdout)

# --- the manual pages ----------------------------------------------------
MAN = os.path.join(ROOT, "man")
pages = sorted(os.listdir(MAN))
for want_page in ["dingauth.8", "dingauth.conf.5", "dingauth-init.8",
                  "dingauth-doctor.8", "dingauth-sync.8", "dingauth-users.8",
                  "dingauth-requests.8", "dingauth-sessions.8",
                  "dingauth-callback.8", "dingauth-events.8",
                  "dingauth-token.8", "dingauth-crypto.8"]:
    t.check("man: %s exists" % want_page, want_page in pages, pages)
for p in pages:
    r = subprocess.run(["groff", "-t", "-man", "-ww", "-z", "-Tutf8",
                        os.path.join(MAN, p)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    t.check("man: %s renders without warnings" % p,
            r.returncode == 0 and not r.stderr.strip(), r.stderr)


def helps(group):
    """Every --help text of a command group and its subcommands."""
    out = run(DINGAUTH, group, "--help").stdout
    texts = [out]
    for sub in re.findall(r"^\s+dingauth %s ([a-z]+)" % group, out, re.M) + \
            re.findall(r"^  ([a-z]+)\s{2,}", out, re.M):
        texts.append(run(DINGAUTH, group, sub, "--help").stdout)
    return "\n".join(texts)


commands = re.findall(r"^  ([a-z]+)\s", run(DINGAUTH, "--help").stdout, re.M)
for cmd in commands:
    page = os.path.join(MAN, "dingauth-%s.8" % cmd)
    if not os.path.exists(page):
        print("# no manual page yet for dingauth %s" % cmd)
        continue
    with open(page, encoding="utf-8") as f:
        text = f.read().replace("\\-", "-")
    opts = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", helps(cmd))) - {"--help"}
    lacking = sorted(o for o in opts if o not in text)
    t.check("man: dingauth-%s.8 names every option of its --help" % cmd,
            not lacking, lacking)
with open(os.path.join(MAN, "dingauth.conf.5"), encoding="utf-8") as f:
    conf5 = f.read()
with open(os.path.join(ROOT, "include", "config.h"), encoding="utf-8") as f:
    keys = re.findall(r"^\s*CFG_[A-Z_]+,\s*/\*\s*([A-Z_]+)", f.read(), re.M)
t.check("man: dingauth.conf.5 describes every configuration key",
        keys and all(k in conf5 for k in keys),
        [k for k in keys if k not in conf5])
with open(os.path.join(MAN, "dingauth.8"), encoding="utf-8") as f:
    main8 = f.read()
paged = [c for c in commands
         if os.path.exists(os.path.join(MAN, "dingauth-%s.8" % c))]
t.check("man: dingauth.8 lists every command that has a page",
        paged and all(re.search(r"^\.B %s$" % c, main8, re.M) for c in paged),
        [c for c in paged if not re.search(r"^\.B %s$" % c, main8, re.M)])

shutil.rmtree(TMP, ignore_errors=True)
t.done()
