"""TLS to DingTalk: the HTTPS calls verify the certificate chain and the
host name, with the CA bundle named by DINGAUTH_CA_FILE, else OpenSSL's
SSL_CERT_FILE (docs/contract.md, TLS), else the system's store.

The fake DingTalk speaks plain HTTP; a TLS tunnel on 127.0.0.1 with a
throwaway CA stands in front of it, so `dingauth token refresh` reaches
the fake over HTTPS.
"""
import os
import socket
import ssl
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
from fake_dingtalk import make_test_tls  # noqa: E402

t = T()


class Tunnel:
    """TLS on a free loopback port, each connection piped to upstream."""

    def __init__(self, ctx, upstream):
        self.ctx, self.upstream = ctx, upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            c.settimeout(10)
            s = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            c.close()       # the client refused our certificate
            return
        u = socket.create_connection(self.upstream, timeout=10)

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        th = threading.Thread(target=pump, args=(u, s), daemon=True)
        th.start()
        pump(s, u)
        th.join(5)
        s.close()
        u.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def gettokens(fk):
    return [e for e in fk.log() if e.get("path") == "/gettoken"]


with tempfile.TemporaryDirectory() as d, FakeDingTalk() as fk, Env(fake=fk) as env:
    ca = os.path.join(d, "ca.pem")
    other = os.path.join(d, "other-ca.pem")
    ctx = make_test_tls(ca)
    make_test_tls(other)            # a CA that did not sign the tunnel's cert
    host, port = fk.url.split("//")[1].split(":")
    tun = Tunnel(ctx, (host, int(port)))
    try:
        url = "https://127.0.0.1:%d" % tun.port
        base = {"DINGTALK_OAPI_URL": url, "DINGTALK_API_URL": url}
        cases = [
            ("neither set: the system's store does not know the test CA",
             {}, False),
            ("SSL_CERT_FILE names the test CA", {"SSL_CERT_FILE": ca}, True),
            ("SSL_CERT_FILE names another CA", {"SSL_CERT_FILE": other}, False),
            ("DINGAUTH_CA_FILE names the test CA", {"DINGAUTH_CA_FILE": ca}, True),
            ("DINGAUTH_CA_FILE wins over SSL_CERT_FILE",
             {"DINGAUTH_CA_FILE": other, "SSL_CERT_FILE": ca}, False),
        ]
        for name, extra, ok in cases:
            before = len(gettokens(fk))
            e = dict(base)
            e.update(extra)
            r = env.cmd("token", "refresh", extra_env=e)
            got = len(gettokens(fk)) - before
            if ok:
                t.check("%s: token refresh over HTTPS works" % name,
                        r.returncode == 0 and got == 1,
                        (r.returncode, got, r.stdout, r.stderr[-400:]))
            else:
                t.check("%s: refused before any request reaches DingTalk" % name,
                        r.returncode != 0 and got == 0,
                        (r.returncode, got, r.stdout, r.stderr[-400:]))
    finally:
        tun.close()
t.done()
