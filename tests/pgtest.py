"""A private PostgreSQL for the tests, and a small libpq client.

    python3 tests/pgtest.py start DIR   -> prints the server's base URI
    python3 tests/pgtest.py stop DIR

PgServer runs Debian's initdb and postgres (/usr/lib/postgresql/*/bin)
in a temporary directory as an unprivileged user (the tests run as root,
which PostgreSQL refuses), listening only on 127.0.0.1 on a free port, no
Unix socket; it is stopped (and its directory removed) at the end. Tests
run it without fsync; make bench DB=pg with durable=True (commits on
disk, as SQLite's synchronous=FULL on the other side).

Conn talks to it through libpq itself (ctypes over libpq.so.5: Debian's
python3 has no PostgreSQL driver), so tests read and write the database
the programs use without a second implementation of the protocol.
"""
import ctypes
import ctypes.util
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RUN_AS = "nobody"
TEMPLATE = "dingauth_template"


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found "
                           "(Debian package postgresql)")
    return dirs[-1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _as_user(cmd):
    """Run cmd as RUN_AS when we are root."""
    if os.getuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        return ["setpriv", "--reuid=%d" % pw.pw_uid,
                "--regid=%d" % pw.pw_gid, "--clear-groups", "--"] + cmd
    return cmd


class PgServer:
    """initdb + postgres in dir (made if None), on a free loopback port."""

    def __init__(self, dir=None, port=None, durable=False):
        self.durable = durable      # fsync and synchronous commits on
        self.own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="dingauth-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = port or free_port()
        self.bindir = pg_bindir()
        self.log = os.path.join(self.dir, "postgres.log")
        self.uri = "postgresql://dingauth@127.0.0.1:%d/" % self.port

    def _chown(self, path):
        if os.getuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self):
        os.chmod(self.dir, 0o755)
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        self._chown(self.data)
        open(self.log, "a").close()
        self._chown(self.log)
        subprocess.run(_as_user([os.path.join(self.bindir, "initdb"),
                                 "-D", self.data, "-U", "dingauth",
                                 "--auth=trust", "-E", "UTF8",
                                 "--no-locale", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd="/")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = ''\n"
                    "max_connections = 200\n"
                    "shared_buffers = 32MB\n" % self.port)
            if not self.durable:
                f.write("fsync = off\nsynchronous_commit = off\n"
                        "full_page_writes = off\n")
        return self

    def start(self, wait=20.0):
        subprocess.run(_as_user([os.path.join(self.bindir, "pg_ctl"), "-D",
                                 self.data, "-l", self.log, "-w", "-t",
                                 str(int(wait)), "start"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        return self

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(_as_user([os.path.join(self.bindir, "pg_ctl"),
                                     "-D", self.data, "-m", mode, "-w",
                                     "stop"]),
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd="/")

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop("immediate")
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def db_uri(self, name):
        return self.uri + name

    def make_template(self, migrate):
        """The database every test database is copied from: migrated by
        migrate(uri) (the programs' own migration)."""
        with Conn(self.db_uri("postgres")) as c:
            c.execute("DROP DATABASE IF EXISTS %s" % TEMPLATE)
            c.execute("CREATE DATABASE %s" % TEMPLATE)
        migrate(self.db_uri(TEMPLATE))
        return self

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# --- libpq through ctypes ---------------------------------------------

_pq = None


def _lib():
    global _pq
    if _pq is None:
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        _pq = ctypes.CDLL(name)
        _pq.PQconnectdb.restype = ctypes.c_void_p
        _pq.PQconnectdb.argtypes = [ctypes.c_char_p]
        _pq.PQstatus.argtypes = [ctypes.c_void_p]
        _pq.PQerrorMessage.restype = ctypes.c_char_p
        _pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
        _pq.PQfinish.argtypes = [ctypes.c_void_p]
        _pq.PQexecParams.restype = ctypes.c_void_p
        _pq.PQexecParams.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        _pq.PQexec.restype = ctypes.c_void_p
        _pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        _pq.PQresultStatus.argtypes = [ctypes.c_void_p]
        _pq.PQresultErrorMessage.restype = ctypes.c_char_p
        _pq.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
        _pq.PQntuples.argtypes = [ctypes.c_void_p]
        _pq.PQnfields.argtypes = [ctypes.c_void_p]
        _pq.PQftype.restype = ctypes.c_uint
        _pq.PQftype.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _pq.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                    ctypes.c_int]
        _pq.PQgetvalue.restype = ctypes.c_void_p
        _pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                   ctypes.c_int]
        _pq.PQgetlength.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                    ctypes.c_int]
        _pq.PQclear.argtypes = [ctypes.c_void_p]
    return _pq


class PgError(Exception):
    pass


# Result types: int2, int4, int8, oid; bool; bytea; numeric; float4/8.
_INTS = (20, 21, 23, 26)


def _value(oid, raw):
    s = raw.decode("utf-8")
    if oid in _INTS:
        return int(s)
    if oid == 16:
        return 1 if s == "t" else 0
    if oid == 17:
        return bytes.fromhex(s[2:])
    if oid == 1700:
        return int(s) if "." not in s else float(s)
    if oid in (700, 701):
        return float(s)
    return s


class Conn:
    """One libpq connection: execute(sql, params) -> list of row tuples.
    Parameters are $1, $2, ...: str, int, bytes (bytea) or None."""

    def __init__(self, uri):
        pq = _lib()
        self.pq = pq
        self.c = pq.PQconnectdb(uri.encode())
        if pq.PQstatus(self.c) != 0:
            msg = pq.PQerrorMessage(self.c).decode("utf-8", "replace")
            pq.PQfinish(self.c)
            self.c = None
            raise PgError(msg.strip())

    def execute(self, sql, params=()):
        pq = self.pq
        n = len(params)
        vals = (ctypes.c_char_p * max(n, 1))()
        lens = (ctypes.c_int * max(n, 1))()
        fmts = (ctypes.c_int * max(n, 1))()
        for i, p in enumerate(params):
            if p is None:
                vals[i] = None
            elif isinstance(p, (bytes, bytearray)):
                vals[i] = bytes(p)
                lens[i] = len(p)
                fmts[i] = 1
            elif isinstance(p, bool):
                vals[i] = b"1" if p else b"0"
            else:
                vals[i] = str(p).encode()
        if n:
            res = pq.PQexecParams(self.c, sql.encode(), n, None, vals, lens,
                                  fmts, 0)
        else:
            res = pq.PQexec(self.c, sql.encode())
        try:
            st = pq.PQresultStatus(res)
            if st not in (1, 2):        # PGRES_COMMAND_OK, PGRES_TUPLES_OK
                msg = (pq.PQresultErrorMessage(res) or
                       pq.PQerrorMessage(self.c) or b"").decode(
                           "utf-8", "replace")
                raise PgError("%s\n(SQL: %s)" % (msg.strip(), sql))
            rows = []
            nf = pq.PQnfields(res)
            types = [pq.PQftype(res, j) for j in range(nf)]
            for i in range(pq.PQntuples(res)):
                row = []
                for j in range(nf):
                    if pq.PQgetisnull(res, i, j):
                        row.append(None)
                        continue
                    ln = pq.PQgetlength(res, i, j)
                    raw = ctypes.string_at(pq.PQgetvalue(res, i, j), ln)
                    row.append(_value(types[j], raw))
                rows.append(tuple(row))
            return rows
        finally:
            pq.PQclear(res)

    def close(self):
        if self.c is not None:
            self.pq.PQfinish(self.c)
            self.c = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def main(argv):
    """start DIR MIGRATE-TOOL: a server for a whole test run, its template
    migrated by MIGRATE-TOOL URI; prints the base URI. stop DIR."""
    if len(argv) >= 3 and argv[1] == "start":
        os.makedirs(argv[2], exist_ok=True)
        srv = PgServer(argv[2]).init().start()
        srv.make_template(lambda uri: subprocess.run([argv[3], uri],
                                                     check=True))
        print(srv.uri)
        return 0
    if len(argv) >= 3 and argv[1] == "stop":
        srv = PgServer(argv[2])
        srv.stop("immediate")
        shutil.rmtree(argv[2], ignore_errors=True)
        return 0
    print("usage: pgtest.py start DIR MIGRATE-TOOL | stop DIR",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv))
