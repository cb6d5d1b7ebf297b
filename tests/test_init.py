"""dingauth init and --version (docs/contract.md).

Run with /usr/bin/python3 tests/test_init.py (tests/run does). Every run of
init gets a scrubbed environment and a fresh temporary directory: the
written configuration (mode, group, every key, fresh valid keys), never
overwriting one, the database directory and files (modes, owners, WAL and
SHM), migrations applied (a fresh database and an old one), idempotence,
and the next steps printed in order. Then --version of every program.
"""
import grp
import hashlib
import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CGI_DIR, DINGAUTH, ROOT, T  # noqa: E402

t = T()
TMP = tempfile.mkdtemp(prefix="dingauth-init-")
IS_ROOT = os.geteuid() == 0


def have_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def have_user(name):
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


WWW_GID = have_group("www-data")
WWW_UID = have_user("www-data")


def run(*args, env_extra=None, prog=DINGAUTH):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DINGTALK_", "DINGAUTH_"))}
    env.setdefault("DINGAUTH_CONFIG", os.path.join(TMP, "absent.conf"))
    env.update(env_extra or {})
    return subprocess.run([prog] + list(args), env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def desc(r):
    return "rc=%d\nstdout=%s\nstderr=%s" % (r.returncode, r.stdout, r.stderr)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def config_values(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip()
    return out


def config_keys():
    """Every key config.h lists: 'CFG_X, /* NAME */'."""
    with open(os.path.join(ROOT, "include", "config.h"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^\s*CFG_[A-Z_]+,\s*/\*\s*([A-Z_]+)", text, re.M)


def latest_migration():
    return max(int(n[:3]) for n in os.listdir(os.path.join(ROOT, "sql"))
               if re.match(r"^\d{3}-.*\.sql$", n))


def user_version(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def fresh(name):
    d = os.path.join(TMP, name)
    os.mkdir(d)
    return d, os.path.join(d, "dingauth.conf"), \
        os.path.join(d, "lib", "dingauth", "dingauth.db")


# --- a first run ---------------------------------------------------------
d, conf, db = fresh("first")
r = run("init", "--config", conf, "--db", db)
t.check("init: first run exits 0", r.returncode == 0, desc(r))
t.check("init: config written", os.path.isfile(conf), desc(r))
t.eq("init: config mode 0640", mode(conf), 0o640)
if WWW_GID is not None and IS_ROOT:
    t.eq("init: config group www-data", os.stat(conf).st_gid, WWW_GID)
with open(conf, encoding="utf-8") as f:
    text = f.read()
keys = config_keys()
t.check("init: config.h lists the keys (test sanity)", len(keys) >= 30, keys)
missing = [k for k in keys if not re.search(r"^#?%s =" % k, text, re.M)]
t.check("init: every key is in the config", not missing, missing)
undocumented = [k for k in keys
                if not re.search(r"#[^\n]*\n#?%s =" % k, text)]
t.check("init: every key has a comment above it", not undocumented,
        undocumented)
t.check("init: required keys are marked",
        all(re.search(r"REQUIRED[^\n]*\n#%s =" % k, text)
            for k in ("DINGTALK_CORP_ID", "DINGTALK_APP_KEY",
                      "DINGTALK_CORP_SECRET", "DINGAUTH_PUBLIC_URL")), text)
t.check("init: defaults are written out", re.search(
    r"Default: 28800\.\n#DINGAUTH_SESSION_TTL = 28800", text), text)
t.check("init: keys are grouped under headings",
        text.count("\n## ") >= 5, text)
vals = config_values(conf)
aes = vals.get("DINGTALK_AES_TOKEN", "")
token = vals.get("DINGTALK_TOKEN", "")
t.check("init: DINGTALK_AES_TOKEN is 43 of [A-Za-z0-9]",
        re.fullmatch(r"[A-Za-z0-9]{43}", aes), aes)
t.check("init: DINGTALK_TOKEN generated",
        re.fullmatch(r"[A-Za-z0-9]{16,32}", token), token)
t.eq("init: DINGAUTH_DB from --db", vals.get("DINGAUTH_DB"), db)
t.check("init: secrets never printed",
        aes and token and aes not in r.stdout + r.stderr and
        token not in r.stdout + r.stderr, desc(r))

ddir = os.path.dirname(db)
t.check("init: database created", os.path.isfile(db), desc(r))
t.eq("init: database directory mode 0750", mode(ddir), 0o750)
t.eq("init: database mode 0640", mode(db), 0o640)
t.eq("init: missing parents of the directory are 0755",
     mode(os.path.dirname(ddir)), 0o755)
t.check("init: the shared counters' file exists beside it, no 'other' bits",
        os.path.isfile(db + ".metrics") and mode(db + ".metrics") & 0o007 == 0,
        desc(r))
if IS_ROOT and WWW_UID is not None and WWW_GID is not None:
    st = os.stat(db)
    t.eq("init: database owned by www-data:www-data (root, no directory)",
         (st.st_uid, st.st_gid), (WWW_UID, WWW_GID))
    st = os.stat(db + ".metrics")
    t.eq("init: the counters' file owned by www-data:www-data too",
         (st.st_uid, st.st_gid), (WWW_UID, WWW_GID))
    st = os.stat(ddir)
    t.eq("init: database directory owned by www-data:www-data",
         (st.st_uid, st.st_gid), (WWW_UID, WWW_GID))
t.eq("init: migrations applied (user_version)", user_version(db),
     latest_migration())
con = sqlite3.connect(db)
tables = {n for (n,) in con.execute(
    "SELECT name FROM sqlite_master WHERE type = 'table'")}
t.check("init: schema tables exist",
        {"users", "sessions", "events", "tokens"} <= tables, tables)
# WAL and SHM appear beside the database while a connection is open.
con.execute("BEGIN IMMEDIATE")
con.execute("DELETE FROM login_states WHERE 0")
con.commit()
wal_modes = {s: mode(db + s) for s in ("-wal", "-shm")
             if os.path.exists(db + s)}
con.close()
t.check("init: WAL mode (the -wal and -shm files exist)",
        len(wal_modes) == 2, wal_modes)
t.check("init: -wal and -shm have no 'other' bits",
        all(m & 0o007 == 0 for m in wal_modes.values()), wal_modes)

# Next steps, in order.
out = r.stdout
steps = ["DINGTALK_APP_KEY", "DINGTALK_CORP_SECRET", "DINGTALK_CORP_ID",
         "/dingauth/exchange", "web server", "dingauth doctor",
         "dingauth sync", "dingauth callback register", "dingauth-worker"]
pos = [out.find(s) for s in steps]
t.check("init: next steps printed in order (console, web server, doctor, "
        "sync, callback, worker)", -1 not in pos and pos == sorted(pos), out)

# The generated configuration is valid as written: with the console's
# values filled in, the callback's keys pass the configuration's checks.
with open(conf, "a", encoding="utf-8") as f:
    f.write("DINGTALK_CORP_ID = dingcorp0001\n")
r2 = run("doctor", env_extra={"DINGAUTH_CONFIG": conf})
t.check("init: doctor reads the written config",
        re.search(r"^ok\s+config\s+read from " + re.escape(conf), r2.stdout,
                  re.M), desc(r2))
t.check("init: generated keys pass validation (callback configured)",
        re.search(r"^ok\s+config\s+callback: configured", r2.stdout, re.M),
        desc(r2))

# --- idempotence, never overwriting ---------------------------------------
before = sha(conf)
st_before = os.stat(conf)
con = sqlite3.connect(db)
con.execute("INSERT INTO departments (dept_id, parent_id, name, updated_at) "
            "VALUES (42, NULL, 'kept', 1)")
con.commit()
con.close()
r = run("init", "--config", conf)
t.check("init: second run exits 0", r.returncode == 0, desc(r))
t.eq("init: second run leaves the config byte for byte", sha(conf), before)
t.eq("init: second run leaves the config's inode",
     os.stat(conf).st_ino, st_before.st_ino)
t.check("init: second run says the config exists",
        "exists" in r.stdout, desc(r))
con = sqlite3.connect(db)
kept = con.execute("SELECT name FROM departments WHERE dept_id = 42").fetchall()
con.close()
t.eq("init: second run keeps the database's rows", kept, [("kept",)])
t.eq("init: second run: same schema version", user_version(db),
     latest_migration())
t.eq("init: second run: config still 0640", mode(conf), 0o640)
t.check("init: second run prints the next steps again",
        "dingauth doctor" in r.stdout, desc(r))

d, conf, db = fresh("existing")
mine = "# mine\nDINGAUTH_DB = %s\nDINGAUTH_PUBLIC_URL = https://erp.example.com\n" % db
with open(conf, "w", encoding="utf-8") as f:
    f.write(mine)
os.chmod(conf, 0o600)
r = run("init", "--config", conf, "--db", os.path.join(d, "other.db"))
t.check("init: existing config: exits 0", r.returncode == 0, desc(r))
with open(conf, encoding="utf-8") as f:
    t.eq("init: existing config never overwritten", f.read(), mine)
t.eq("init: existing config keeps its mode", mode(conf), 0o600)
t.check("init: existing config: database at its DINGAUTH_DB",
        os.path.isfile(db) and not os.path.exists(os.path.join(d, "other.db")),
        desc(r))
t.check("init: existing config: --db ignored, said so",
        "--db ignored" in r.stdout, desc(r))
t.check("init: login redirect URL from DINGAUTH_PUBLIC_URL",
        "https://erp.example.com/dingauth/exchange" in r.stdout, desc(r))

# DINGAUTH_CONFIG names the file when --config is not given.
d, conf, db = fresh("env")
r = run("init", "--db", db, env_extra={"DINGAUTH_CONFIG": conf})
t.check("init: DINGAUTH_CONFIG names the config without --config",
        r.returncode == 0 and os.path.isfile(conf) and os.path.isfile(db),
        desc(r))
aes2 = config_values(conf).get("DINGTALK_AES_TOKEN")
t.check("init: every new config gets its own key", aes2 and aes2 != aes, aes2)

# An old database is migrated; an existing one with open modes tightened.
d, conf, db = fresh("old")
os.makedirs(os.path.dirname(db))
con = sqlite3.connect(db)
with open(os.path.join(ROOT, "sql", "001-schema.sql"), encoding="utf-8") as f:
    con.executescript(f.read())
con.execute("PRAGMA user_version = 1")
con.commit()
con.close()
os.chmod(db, 0o644)
r = run("init", "--config", conf, "--db", db)
t.check("init: old database: exits 0", r.returncode == 0, desc(r))
t.eq("init: old database migrated to the latest version", user_version(db),
     latest_migration())
t.eq("init: database with 'other' bits tightened to 0640", mode(db), 0o640)
if IS_ROOT:
    st = os.stat(os.path.dirname(db))
    t.eq("init: an existing directory's owner gets the database",
         (os.stat(db).st_uid, os.stat(db).st_gid), (st.st_uid, st.st_gid))

# A database from a newer release is refused, clearly, and left alone.
con = sqlite3.connect(db)
con.execute("PRAGMA user_version = %d" % (latest_migration() + 1))
con.commit()
con.close()
r = run("init", "--config", conf)
t.check("init: a newer schema is refused (exit 1, says newer)",
        r.returncode == 1 and "newer" in r.stderr, desc(r))
t.eq("init: a newer schema is left as it is", user_version(db),
     latest_migration() + 1)
r = run("doctor", env_extra={"DINGAUTH_CONFIG": conf})
t.check("doctor: a newer schema is a FAIL naming it",
        r.returncode == 1 and re.search(r"^FAIL\s+database .*newer",
                                        r.stdout, re.M), desc(r))

# --group and --owner; a bad group changes nothing.
d, conf, db = fresh("badgroup")
r = run("init", "--config", conf, "--db", db, "--group", "no-such-group-x")
t.eq("init: unknown --group exits 1", r.returncode, 1)
t.check("init: unknown --group writes nothing",
        not os.path.exists(conf) and not os.path.exists(db), desc(r))
if IS_ROOT and have_user("nobody") is not None and have_group("nogroup"):
    d, conf, db = fresh("owner")
    r = run("init", "--config", conf, "--db", db, "--owner", "nobody",
            "--group", "nogroup")
    st = os.stat(db)
    t.check("init: --owner/--group own the directory and the database",
            r.returncode == 0 and
            (st.st_uid, st.st_gid) == (have_user("nobody"), have_group("nogroup"))
            and os.stat(os.path.dirname(db)).st_uid == have_user("nobody"),
            desc(r))
    t.eq("init: --group is the config's group", os.stat(conf).st_gid,
         have_group("nogroup"))

r = run("init", "--help")
t.check("init --help exits 0 and names the options",
        r.returncode == 0 and "--config" in r.stdout and "--group" in r.stdout,
        desc(r))
r = run("init", "--bogus")
t.eq("init: unknown option exits 2", r.returncode, 2)
r = run("--help")
t.check("dingauth --help lists init", r.returncode == 0 and
        re.search(r"^\s+init\s", r.stdout, re.M), desc(r))

# --- next steps in Stream mode ---------------------------------------------
with open(conf, "a", encoding="utf-8") as f:
    f.write("DINGAUTH_EVENT_MODE = stream\n")
r = run("init", "--config", conf)
out = r.stdout
t.check("init (stream mode): the events step says Stream, not callback "
        "register", r.returncode == 0 and "Stream" in out and
        "callback register" not in out and
        out.find("dingauth sync") < out.find("Stream") < out.find("dingauth-worker"),
        desc(r))

# --- --version ------------------------------------------------------------
with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
    version = re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M).group(1)
r = run("--version")
t.check("dingauth --version prints the Makefile's VERSION, exit 0",
        r.returncode == 0 and r.stdout == "dingauth %s\n" % version, desc(r))
for prog in sorted(os.listdir(CGI_DIR)):
    if not prog.endswith(".fcgi"):
        continue
    r = run("--version", prog=os.path.join(CGI_DIR, prog),
            env_extra={"DINGAUTH_CONFIG": os.path.join(TMP, "none.conf")})
    t.check("%s --version prints the version, exit 0, no config needed"
            % prog, r.returncode == 0 and r.stdout == "%s %s\n" % (prog, version),
            desc(r))

shutil.rmtree(TMP, ignore_errors=True)
t.done()
