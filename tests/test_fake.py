#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Self-test of the fake DingTalk (tests/fake_dingtalk.py and tests/fakedt.py).

    /usr/bin/python3 tests/test_fake.py [-k SUBSTRING]

Prints `ok - NAME` or `not ok - NAME` per check; exits 1 if any check failed.
The browser section runs only when chromium, chromedriver and selenium exist.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

import fake_dingtalk as fd  # noqa: E402
from fakedt import FAKE_SCRIPT, PYTHON, FakeDingTalk  # noqa: E402

VECTORS = os.environ.get("DINGAUTH_CRYPTO_VECTORS",
                         os.path.join(HERE, "data", "crypto-vectors.json"))

FAILURES = []
COUNT = [0]


def check(name, cond, detail=""):
    COUNT[0] += 1
    if cond:
        print("ok - %s" % name)
    else:
        FAILURES.append(name)
        print("not ok - %s%s" % (name, ("  # " + str(detail)[:600]) if detail else ""))
    sys.stdout.flush()
    return cond


def equal(name, got, want):
    return check(name, got == want, "got %r, want %r" % (got, want))


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class CallbackReceiver:
    """A correct (or deliberately wrong) callback endpoint, like the one dingauth serves."""

    def __init__(self, token, aes_key, receiver):
        self.crypto = fd.CallbackCrypto(token, aes_key, receiver)
        self.mode = "good"          # good | plain | badsig | slow | status500
        self.received = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
                status, reply = outer.answer(q, body)
                data = reply.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:         # the fake gave up waiting (timeout tests)
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/dingauth/callback" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, q, body):
        entry = {"query": q, "body": body.decode("utf-8", "replace"), "plaintext": None, "code": None}
        self.received.append(entry)
        try:
            sig = q.get("msg_signature") or q.get("signature")
            ts = q.get("timeStamp") or q.get("timestamp")
            encrypt = json.loads(body)["encrypt"]
            if fd.CallbackCrypto.sign(self.crypto.token, ts, q["nonce"], encrypt) != sig:
                raise fd.CryptoError(900005, "signature")
            entry["plaintext"] = self.crypto.decrypt(encrypt)
        except fd.CryptoError as e:
            entry["code"] = e.code
            return 400, json.dumps({"code": e.code})
        except (ValueError, KeyError, TypeError) as e:
            entry["code"] = str(e)
            return 400, "{}"
        if self.mode == "plain":
            return 200, "success"
        if self.mode == "slow":
            time.sleep(2.5)
        if self.mode == "status500":
            return 500, "{}"
        env = self.crypto.envelope("success", tamper="signature" if self.mode == "badsig" else None)
        return 200, json.dumps(env)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw_plaintext(aes_key, encrypt):
    key = base64.b64decode(aes_key + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return dec.update(base64.b64decode(encrypt)) + dec.finalize()


def qs(url):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------

def test_crypto_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        data = json.load(f)
    for v in data["aes_key_vectors"]:
        key = fd.CallbackCrypto.derive_key(v["aes_key"])
        equal("crypto: key of %s" % v["name"], key.hex(), v["key_hex"])
        equal("crypto: iv of %s" % v["name"], key[:16].hex(), v["iv_hex"])
    for v in data["signature_only_vectors"]:
        s = v["strings"] + [""] * (4 - len(v["strings"]))
        equal("crypto: signature-only %s" % v["name"], fd.CallbackCrypto.sign(*s), v["sha1"])
    for v in data["sns_signature_vectors"]:
        sig = fd.sns_signature(v["app_secret"], v["timestamp"])
        equal("crypto: sns signature %s" % v["name"], sig, v["signature"])
        equal("crypto: sns signature urlencoded %s" % v["name"],
              urllib.parse.quote(sig, safe=""), v["signature_urlencoded"])
    for v in data["vectors"]:
        c = fd.CallbackCrypto(v["token"], v["aes_key"], v["receiver_id"])
        equal("crypto: signature %s" % v["name"],
              c.sign(v["token"], v["timestamp"], v["nonce"], v["encrypt"]), v["msg_signature"])
        plain = c.decrypt(v["encrypt"])
        if "plaintext" in v:
            equal("crypto: decrypt %s" % v["name"], plain, v["plaintext"])
        else:
            check("crypto: decrypt %s" % v["name"], plain.startswith("{"), plain)
        random16 = v.get("random16") or raw_plaintext(v["aes_key"], v["encrypt"])[:16].decode()
        equal("crypto: bit-exact re-encryption %s" % v["name"], c.encrypt(plain, random16), v["encrypt"])
        if v.get("reply_json"):
            env = c.envelope(plain, v["timestamp"], v["nonce"], random16)
            equal("crypto: reply JSON %s" % v["name"], env, v["reply_json"])
    c = fd.CallbackCrypto("tok123456", fd.DEFAULT_CALLBACK["aes_key"], "dingcorp0001")
    text = '{"EventType":"user_add_org","UserId":["张三的ID"],"中文":"' + "测" * 40 + '"}'
    enc = c.encrypt(text)
    equal("crypto: Chinese round trip", c.decrypt(enc), text)
    raw = raw_plaintext(fd.DEFAULT_CALLBACK["aes_key"], enc)
    equal("crypto: length field counts UTF-8 bytes", int.from_bytes(raw[16:20], "big"), len(text.encode()))
    check("crypto: 32-byte padding", len(raw) % 32 == 0 and 1 <= raw[-1] <= 32, raw[-1])
    for tamper, code in (("base64", 900008), ("blocklen", 900008), ("padding", 900009),
                         ("length", 900009), ("utf8", 900009), ("receiver", 900010)):
        try:
            c.decrypt(c.encrypt(text, tamper=tamper))
            check("crypto: tamper %s is rejected" % tamper, False, "decrypted")
        except fd.CryptoError as e:
            equal("crypto: tamper %s is rejected with %d" % (tamper, code), e.code, code)
    env = c.envelope("x", tamper="signature")
    check("crypto: tamper signature", env["msg_signature"] != c.sign(c.token, env["timeStamp"], env["nonce"],
                                                                     env["encrypt"]))
    try:
        fd.CallbackCrypto("t", "short", "r")
        check("crypto: short aes_key rejected", False)
    except fd.CryptoError as e:
        equal("crypto: short aes_key rejected", e.code, 900004)


def test_process():
    r = subprocess.run([PYTHON, FAKE_SCRIPT, "--host", "0.0.0.0"], capture_output=True, timeout=20)
    check("process: refuses a non-loopback host", r.returncode == 2 and b"127.0.0.1" in r.stderr, r)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write('{"corp_id": ')
    r = subprocess.run([PYTHON, FAKE_SCRIPT, "--corp", f.name], capture_output=True, timeout=20)
    os.unlink(f.name)
    check("process: a bad corp file exits 2", r.returncode == 2, r)
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = subprocess.Popen([PYTHON, FAKE_SCRIPT], stdout=subprocess.PIPE)
        line = p.stdout.readline().decode()
        check("process: prints LISTENING line (%s)" % sig.name,
              line.startswith("LISTENING http://127.0.0.1:") and line.endswith("\n")
              and line.split(":")[-1].strip().isdigit(), line)
        port = int(line.split(":")[-1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)   # an idle keep-alive connection
        conn.request("GET", "/_fake/stats")
        conn.getresponse().read()
        start = time.monotonic()
        p.send_signal(sig)
        try:
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        check("process: exits cleanly on %s" % sig.name, rc == 0 and time.monotonic() - start < 4, rc)
        rest = p.stdout.read()
        equal("process: nothing else on stdout (%s)" % sig.name, rest, b"")
        conn.close()
    with tempfile.TemporaryDirectory() as tmp:
        logfile = os.path.join(tmp, "fake.log")
        with FakeDingTalk(log=logfile) as fake:
            fake.get("/gettoken", {"appkey": "k", "appsecret": "s"})
        with open(logfile, encoding="utf-8") as f:
            lines = [json.loads(x) for x in f]
        check("process: --log writes one JSON line per request", len(lines) == 1 and
              lines[0]["path"] == "/gettoken" and lines[0]["errcode"] == 40096, lines)
    # --watch-stdin: the fake ends when its parent's pipe closes
    p = subprocess.Popen([PYTHON, FAKE_SCRIPT, "--watch-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdout.readline()
    p.stdin.close()
    try:
        check("process: --watch-stdin exits on EOF", p.wait(5) == 0)
    except subprocess.TimeoutExpired:
        p.kill()
        check("process: --watch-stdin exits on EOF", False)
    p.stdout.close()
    fake = FakeDingTalk().start()
    pid = fake.proc.pid
    fake.stop()
    check("fakedt: stop() ends the process", not os.path.exists("/proc/%d" % pid) or
          open("/proc/%d/stat" % pid).read().split()[2] == "Z")


def test_corp_files():
    corp = {"corp_id": "dingfilecorp", "departments": [{"dept_id": 1, "name": "File Co", "parent_id": 0},
                                                       {"dept_id": 7, "name": "Seven", "parent_id": 1}],
            "users": [{"userid": "f1", "unionid": "ufile1", "name": "文件用户", "dept_id_list": [7]}],
            "external": [{"unionid": "x9", "name": "Ext"}]}
    with FakeDingTalk(corp=corp) as fake:
        got = fake.corp()
        equal("corp file: corp_id loaded", got["corp_id"], "dingfilecorp")
        equal("corp file: default apps filled in", got["apps"]["appkey"], "dingappkey001")
        r = fake.topapi("/topapi/v2/department/listsub", {"dept_id": 1})
        equal("corp file: departments served", [d["dept_id"] for d in r["result"]], [7])
    spec = "depts=40,users=600,depth=4,seed=7"
    a, b = fd.generate_corp(spec), fd.generate_corp(spec)
    equal("generate: deterministic", a, b)
    check("generate: other seed differs", fd.generate_corp("depts=40,users=600,depth=4,seed=8") != a)
    equal("generate: department count", len(a["departments"]), 40)
    equal("generate: user count", len(a["users"]), 600)
    parent = {d["dept_id"]: d["parent_id"] for d in a["departments"]}

    def depth(d):
        n = 0
        while d != 1:
            d, n = parent[d], n + 1
        return n
    check("generate: depth >= 4", max(depth(d) for d in parent) >= 4)
    counts = {}
    for u in a["users"]:
        for d in u["dept_id_list"]:
            counts[d] = counts.get(d, 0) + 1
    check("generate: some departments have > 100 members", sum(1 for c in counts.values() if c > 100) >= 1,
          counts)
    multi = sum(1 for u in a["users"] if len(u["dept_id_list"]) > 1)
    check("generate: about 10%% of users in 2-3 departments (%d)" % multi,
          0.05 * 600 <= multi <= 0.16 * 600 and all(len(u["dept_id_list"]) <= 3 for u in a["users"]))
    equal("generate: unique userids", len({u["userid"] for u in a["users"]}), 600)
    with FakeDingTalk(generate=spec) as fake:
        equal("generate: served corp equals generate_corp", fake.corp()["users"][5]["userid"], a["users"][5]["userid"])


def test_tokens(fake):
    apps = fake.apps()
    r = fake.get("/gettoken", {"appkey": apps["appkey"], "appsecret": apps["appsecret"]}).json()
    check("gettoken: answers token and expires_in", r.get("errcode") == 0 and len(r.get("access_token", "")) == 32
          and r.get("expires_in") == 7200, r)
    r2 = fake.get("/gettoken", {"appkey": apps["appkey"], "appsecret": apps["appsecret"]}).json()
    equal("gettoken: same token within validity", r2["access_token"], r["access_token"])
    equal("gettoken: missing parameters -> 40035",
          fake.get("/gettoken", {"appkey": apps["appkey"]}).json()["errcode"], 40035)
    form = fake.request("GET", "/gettoken", body="appkey=%s&appsecret=%s" % (apps["appkey"], apps["appsecret"]),
                        headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    equal("gettoken: form body ignored -> 40035", form["errcode"], 40035)
    bad = fake.get("/gettoken", {"appkey": apps["appkey"], "appsecret": "wrong"})
    check("gettoken: bad secret -> 40096 not wrapped (HTTP 200)",
          bad.status == 200 and bad.json() == {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}, bad)
    equal("gettoken: POST -> 43001", fake.post("/gettoken", {}).json()["errcode"], 43001)
    v1 = fake.post("/v1.0/oauth2/accessToken", {"appKey": apps["appkey"], "appSecret": apps["appsecret"]})
    check("v1 accessToken: same corp token", v1.status == 200 and v1.json() == {
        "accessToken": r["access_token"], "expireIn": 7200}, v1)
    v1bad = fake.post("/v1.0/oauth2/accessToken", {"appKey": apps["appkey"], "appSecret": "x"})
    check("v1 accessToken: bad secret -> 400 invalidClientIdOrSecret",
          v1bad.status == 400 and v1bad.json()["code"] == "invalidClientIdOrSecret"
          and "requestid" in v1bad.json(), v1bad)
    v1form = fake.request("POST", "/v1.0/oauth2/accessToken", body="appKey=a&appSecret=b",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("v1 accessToken: form body -> 400 Missingbody", v1form.status == 400 and
          v1form.json()["code"] == "Missingbody", v1form)
    v1miss = fake.post("/v1.0/oauth2/accessToken", {"appKey": apps["appkey"]})
    check("v1 accessToken: missing appSecret -> 400 MissingappSecret", v1miss.status == 400 and
          v1miss.json()["code"] == "MissingappSecret", v1miss)

    token = r["access_token"]
    top = fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, token)
    equal("topapi: valid token works", top["errcode"], 0)
    fake.expire_tokens()
    top = fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, token)
    check("tokens/expire: topapi 88 + sub_code 42001", top.get("errcode") == 88 and top.get("sub_code") == "42001"
          and top.get("errmsg", "").startswith("ding talk error[subcode=42001") and "request_id" in top, top)
    cb = fake.get("/call_back/get_call_back", {"access_token": token}).json()
    equal("tokens/expire: oapi 42001", cb, {"errcode": 42001, "errmsg": "access_token超时"})
    token2 = fake.corp_token()
    check("tokens/expire: a new token is issued afterwards", token2 != token)
    equal("tokens/expire: the new token works",
          fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, token2)["errcode"], 0)
    fake.revoke_tokens()
    token3 = fake.corp_token()
    top = fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, token3)
    check("tokens/revoke_permanently: fresh tokens rejected (88/40014)",
          top.get("errcode") == 88 and top.get("sub_code") == "40014", top)
    fake.restore_tokens()
    equal("tokens/restore: tokens work again",
          fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, fake.corp_token())["errcode"], 0)
    top = fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, "nonsense")
    equal("topapi: invalid token wrapped exactly", {k: top.get(k) for k in ("errcode", "sub_code", "sub_msg", "errmsg")},
          {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token",
           "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]"})
    top = fake.post("/topapi/v2/user/get", {"userid": "u001"}).json()
    check("topapi: missing token -> 88/41001", top.get("errcode") == 88 and top.get("sub_code") == "41001", top)
    equal("oapi: missing token -> 41001", fake.get("/call_back/get_call_back").json()["errcode"], 41001)
    sns = fake.sns_app_token()
    top = fake.topapi("/topapi/v2/user/get", {"userid": "u001"}, sns)
    check("topapi: an sns app token is not a corp token (88/40014)", top.get("sub_code") == "40014", top)

    with FakeDingTalk(token_ttl=1) as short:
        t = short.corp_token()
        short_resp = short.topapi("/topapi/v2/user/get", {"userid": "u001"}, t)
        time.sleep(1.3)
        late = short.topapi("/topapi/v2/user/get", {"userid": "u001"}, t)
        check("--token-ttl: token expires by time (88/42001)",
              short_resp["errcode"] == 0 and late.get("sub_code") == "42001", late)
        equal("--token-ttl: expires_in reports the ttl", short.get("/gettoken", {
            "appkey": "dingappkey001", "appsecret": "appsecret001"}).json()["expires_in"], 1)
        t1 = short.corp_token()
        time.sleep(0.6)
        t2 = short.corp_token()
        time.sleep(0.6)
        check("gettoken: a re-fetch extends the token's life",
              t1 == t2 and short.topapi("/topapi/v2/user/get", {"userid": "u001"}, t1)["errcode"] == 0)


def test_sns_flow(fake):
    apps = fake.apps()
    r = fake.get("/sns/gettoken", {"appid": apps["sns_appid"], "appsecret": apps["sns_appsecret"]}).json()
    check("sns/gettoken: token", r.get("errcode") == 0 and r.get("access_token"), r)
    sns = r["access_token"]
    equal("sns/gettoken: same token again", fake.sns_app_token(), sns)
    equal("sns/gettoken: bad secret -> 40089",
          fake.get("/sns/gettoken", {"appid": apps["sns_appid"], "appsecret": "x"}).json()["errcode"], 40089)
    code = fake.code(userid="u002")["code"]
    p = fake.post("/sns/get_persistent_code", {"tmp_auth_code": code}, query={"access_token": sns}).json()
    check("sns/get_persistent_code: openid, persistent_code, unionid",
          p.get("errcode") == 0 and p.get("unionid") == "un002" and p.get("openid") and p.get("persistent_code"), p)
    again = fake.post("/sns/get_persistent_code", {"tmp_auth_code": code}, query={"access_token": sns}).json()
    equal("sns/get_persistent_code: code is single-use (40078)", again, {"errcode": 40078, "errmsg": "不存在的临时授权码"})
    bad = fake.post("/sns/get_persistent_code", {"tmp_auth_code": "x"}, query={"access_token": "bad"}).json()
    equal("sns/get_persistent_code: invalid token -> 40014 not wrapped", bad,
          {"errcode": 40014, "errmsg": "不合法的access_token"})
    corp_tok = fake.corp_token()
    bad = fake.post("/sns/get_persistent_code", {"tmp_auth_code": "x"}, query={"access_token": corp_tok}).json()
    equal("sns/get_persistent_code: corp token is not an sns token", bad["errcode"], 40014)
    s = fake.post("/sns/get_sns_token", {"openid": p["openid"], "persistent_code": p["persistent_code"]},
                  query={"access_token": sns}).json()
    check("sns/get_sns_token: sns_token", s.get("errcode") == 0 and s.get("sns_token") and s.get("expires_in") == 7200, s)
    equal("sns/get_sns_token: bad persistent code -> 40079", fake.post(
        "/sns/get_sns_token", {"openid": p["openid"], "persistent_code": "nope"},
        query={"access_token": sns}).json()["errcode"], 40079)
    u = fake.get("/sns/getuserinfo", {"sns_token": s["sns_token"]}).json()
    check("sns/getuserinfo: user_info and corp_info",
          u.get("errcode") == 0 and u["user_info"]["unionid"] == "un002" and u["user_info"]["nick"] == "李四"
          and u["user_info"]["openid"] == p["openid"] and "dingId" in u["user_info"]
          and "****" in u["user_info"]["maskedMobile"] and u["corp_info"][0]["corp_name"] == "Demo Co", u)
    equal("sns/getuserinfo: bad sns_token -> 40014",
          fake.get("/sns/getuserinfo", {"sns_token": "bad"}).json()["errcode"], 40014)
    code = fake.code(unionid="unext1")["code"]
    p = fake.post("/sns/get_persistent_code", {"tmp_auth_code": code}, query={"access_token": sns}).json()
    equal("sns: an external person logs in to DingTalk too", p.get("unionid"), "unext1")


def test_bycode(fake):
    apps = fake.apps()

    def call(code, ts=None, secret=None, access_key=None, sig=None, raw_sig=None):
        ts = str(ts if ts is not None else int(time.time() * 1000))
        sig = sig or fd.sns_signature(secret or apps["sns_appsecret"], ts)
        path = "/sns/getuserinfo_bycode?accessKey=%s&timestamp=%s&signature=%s" % (
            access_key or apps["sns_appid"], ts, raw_sig or urllib.parse.quote(sig, safe=""))
        return fake.request("POST", path, json_body={"tmp_auth_code": code}).json()

    code = fake.code(userid="u004")["code"]
    r = call(code)
    check("getuserinfo_bycode: user_info fields", r.get("errcode") == 0 and set(r["user_info"]) >= {
        "nick", "unionid", "openid", "main_org_auth_high_level", "dingId"} and r["user_info"]["unionid"] == "un004"
        and r["user_info"]["nick"] == "<script>alert(\"x\")</script> O'Hara & \"Q\"", r)
    equal("getuserinfo_bycode: single use (40078)", call(code)["errcode"], 40078)
    code = fake.code(userid="u001")["code"]
    equal("getuserinfo_bycode: wrong secret -> 853004", call(code, secret="wrong")["errcode"], 853004)
    equal("getuserinfo_bycode: timestamp 6 min old -> 853004",
          call(code, ts=int(time.time() * 1000) - 360000)["errcode"], 853004)
    equal("getuserinfo_bycode: timestamp in seconds -> 853004", call(code, ts=int(time.time()))["errcode"], 853004)
    ts = str(int(time.time() * 1000))
    sig = fd.sns_signature(apps["sns_appsecret"], ts)
    double = urllib.parse.quote(urllib.parse.quote(sig, safe=""), safe="")
    equal("getuserinfo_bycode: double-encoded signature -> 853004", call(code, ts=ts, raw_sig=double)["errcode"], 853004)
    now = int(time.time() * 1000)
    ts = next(str(now - i) for i in range(1000) if "+" in fd.sns_signature(apps["sns_appsecret"], str(now - i)))
    sig = fd.sns_signature(apps["sns_appsecret"], ts)
    equal("getuserinfo_bycode: signature with '+' sent unencoded fails",
          call(code, ts=ts, raw_sig=sig)["errcode"], 853004)
    equal("getuserinfo_bycode: unknown accessKey -> 40089", call(code, access_key="nope")["errcode"], 40089)
    equal("getuserinfo_bycode: code still valid after failed checks", call(code)["errcode"], 0)
    code = fake.code(userid="u001")["code"]
    r = call(code, access_key=apps["appkey"], secret=apps["appsecret"])
    equal("getuserinfo_bycode: AppKey as accessKey with AppSecret", r.get("errcode"), 0)


def test_oauth2(fake):
    apps = fake.apps()

    def exchange(code, **over):
        body = {"clientId": apps["appkey"], "clientSecret": apps["appsecret"], "code": code,
                "grantType": "authorization_code"}
        body.update(over)
        return fake.post("/v1.0/oauth2/userAccessToken", body)

    code = fake.code(userid="u003", kind="oauth")["code"]
    r = exchange(code)
    j = r.json()
    check("userAccessToken: accessToken, refreshToken, expireIn, corpId",
          r.status == 200 and set(j) == {"accessToken", "refreshToken", "expireIn", "corpId"}
          and j["corpId"] == "dingcorp0001" and j["expireIn"] == 7200, r)
    again = exchange(code)
    check("userAccessToken: code single use -> 400 invalidAuthCode",
          again.status == 400 and again.json()["code"] == "invalidAuthCode", again)
    badc = exchange(fake.code(userid="u003", kind="oauth")["code"], clientSecret="x")
    check("userAccessToken: bad client -> 400 invalidClientIdOrSecret",
          badc.status == 400 and badc.json()["code"] == "invalidClientIdOrSecret", badc)
    tmp = fake.code(userid="u003")["code"]
    check("userAccessToken: an sns tmp code is not an authCode", exchange(tmp).status == 400)
    me = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": j["accessToken"]})
    mj = me.json()
    check("users/me: fields", me.status == 200 and mj["unionId"] == "un003" and mj["nick"] == "王五"
          and set(mj) >= {"nick", "avatarUrl", "mobile", "openId", "unionId", "stateCode"} and "email" not in mj, me)
    miss = fake.get("/v1.0/contact/users/me", query={"access_token": j["accessToken"]})
    check("users/me: token in query -> 400 AuthenticationFailed.MissingParameter",
          miss.status == 400 and miss.json()["code"] == "AuthenticationFailed.MissingParameter", miss)
    bearer = fake.get("/v1.0/contact/users/me", headers={"Authorization": "Bearer " + j["accessToken"]})
    check("users/me: Bearer header -> 400 MissingParameter", bearer.status == 400, bearer)
    bad = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": "bad"})
    check("users/me: bad token -> 400 InvalidAuthentication", bad.status == 400 and bad.json() == {
        "code": "InvalidAuthentication", "message": "不合法的access_token", "requestid": bad.json()["requestid"]}, bad)
    corp = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": fake.corp_token()})
    check("users/me: corp token is not a user token", corp.status == 400, corp)
    ref = fake.post("/v1.0/oauth2/userAccessToken", {"clientId": apps["appkey"], "clientSecret": apps["appsecret"],
                                                     "grantType": "refresh_token", "refreshToken": j["refreshToken"]})
    check("userAccessToken: refresh_token grant", ref.status == 200 and ref.json()["accessToken"] != j["accessToken"], ref)
    ref2 = fake.post("/v1.0/oauth2/userAccessToken", {"clientId": apps["appkey"], "clientSecret": apps["appsecret"],
                                                      "grantType": "refresh_token", "refreshToken": j["refreshToken"]})
    check("userAccessToken: refresh token single use", ref2.status == 400, ref2)
    ext = exchange(fake.code(unionid="unext1", kind="oauth")["code"]).json()
    check("userAccessToken: external person has no corpId", "corpId" not in ext and "accessToken" in ext, ext)
    fake.expire_tokens()
    exp = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": j["accessToken"]})
    check("users/me: expired token -> 400 InvalidAuthentication",
          exp.status == 400 and exp.json()["code"] == "InvalidAuthentication", exp)
    unknown = fake.get("/v1.0/nothing/here")
    check("v1: unknown path -> 404 InvalidAction.NotFound", unknown.status == 404 and
          unknown.json()["code"] == "InvalidAction.NotFound", unknown)


USER_GET_FIELDS = {"userid", "unionid", "name", "avatar", "state_code", "manager_userid", "mobile", "hide_mobile",
                   "telephone", "job_number", "title", "email", "work_place", "remark", "org_email",
                   "dept_id_list", "dept_order_list", "extension", "hired_date", "active", "real_authed",
                   "senior", "admin", "boss", "leader_in_dept", "role_list", "exclusive_account", "union_emp_ext"}
USER_LIST_FIELDS = {"userid", "unionid", "name", "avatar", "state_code", "mobile", "hide_mobile", "telephone",
                    "job_number", "title", "email", "org_email", "work_place", "remark", "dept_id_list",
                    "dept_order", "extension", "hired_date", "active", "admin", "boss", "leader",
                    "exclusive_account"}


def test_directory(fake):
    tok = fake.corp_token()
    top = lambda path, body: fake.topapi(path, body, tok)  # noqa: E731
    r = top("/topapi/user/getbyunionid", {"unionid": "un002"})
    check("getbyunionid: member", r.get("errcode") == 0 and r["result"] == {"contact_type": 0, "userid": "u002"}
          and r["errmsg"] == "ok" and r.get("request_id"), r)
    equal("getbyunionid: external -> 60121", top("/topapi/user/getbyunionid", {"unionid": "unext1"})["errcode"], 60121)
    equal("getbyunionid: unknown -> 60121", top("/topapi/user/getbyunionid", {"unionid": "zz"})["errcode"], 60121)
    u = top("/topapi/v2/user/get", {"userid": "u002", "language": "zh_CN"})
    res = u.get("result", {})
    check("user/get: only documented fields", set(res) <= USER_GET_FIELDS, set(res) - USER_GET_FIELDS)
    check("user/get: values", res.get("name") == "李四" and res.get("dept_id_list") == [4, 6]
          and res.get("unionid") == "un002" and res.get("active") is True, res)
    res3 = top("/topapi/v2/user/get", {"userid": "u003"})["result"]
    check("user/get: empty email is omitted", "email" not in res3, res3)
    equal("user/get: inactive user is still returned", top("/topapi/v2/user/get", {"userid": "u005"})["result"]["active"],
          False)
    missing = top("/topapi/v2/user/get", {"userid": "nobody"})
    check("user/get: unknown -> 60121 with request_id", missing.get("errcode") == 60121 and
          missing.get("errmsg") == "找不到该用户" and "request_id" in missing, missing)
    equal("user/get: missing userid -> 40035", top("/topapi/v2/user/get", {})["errcode"], 40035)
    form = fake.request("POST", "/topapi/v2/user/get?access_token=" + tok, body='{"userid":"u001"}',
                        headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    equal("topapi: JSON sent as a form is not read (40035)", form["errcode"], 40035)
    equal("topapi: GET on a POST API -> 43002",
          fake.get("/topapi/v2/user/get", {"access_token": tok, "userid": "u001"}).json()["errcode"], 43002)
    subs = top("/topapi/v2/department/listsub", {"dept_id": 1})["result"]
    equal("listsub: direct children of root", [d["dept_id"] for d in subs], [2, 3])
    equal("listsub: fields", set(subs[0]), {"dept_id", "name", "parent_id", "create_dept_group", "auto_add_user"})
    equal("listsub: unknown dept -> 60003", top("/topapi/v2/department/listsub", {"dept_id": 999})["errcode"], 60003)
    equal("listsub: leaf has no children", top("/topapi/v2/department/listsub", {"dept_id": 4})["result"], [])
    equal("listsubid", top("/topapi/v2/department/listsubid", {"dept_id": 2})["result"], {"dept_id_list": [4, 5]})
    d = top("/topapi/v2/department/get", {"dept_id": 2, "language": "zh_CN"})["result"]
    check("department/get: fields", {"dept_id", "name", "parent_id", "order", "dept_manager_userid_list",
                                     "create_dept_group", "auto_add_user", "hide_dept", "outer_dept",
                                     "member_count"} <= set(d) and d["name"] == "研发部 R&D", d)
    equal("department/get: member_count counts the subtree once per person", d["member_count"], 4)
    check("department/get: root has no parent_id",
          "parent_id" not in top("/topapi/v2/department/get", {"dept_id": 1})["result"])
    lst = top("/topapi/v2/user/list", {"dept_id": 4, "cursor": 0, "size": 100})
    res = lst["result"]
    equal("user/list: direct members only", [x["userid"] for x in res["list"]], ["u002", "u005"])
    check("user/list: fields", all(set(x) <= USER_LIST_FIELDS for x in res["list"]) and res["has_more"] is False
          and "next_cursor" not in res, res)
    equal("user/list: root lists only its direct members",
          [x["userid"] for x in top("/topapi/v2/user/list", {"dept_id": 1, "cursor": 0, "size": 10})["result"]["list"]],
          ["u001"])
    equal("user/list: size 101 -> 40035", top("/topapi/v2/user/list", {"dept_id": 4, "cursor": 0, "size": 101})["errcode"],
          40035)
    equal("user/list: unknown dept -> 60003",
          top("/topapi/v2/user/list", {"dept_id": 999, "cursor": 0, "size": 10})["errcode"], 60003)
    equal("user/list: string numbers accepted",
          top("/topapi/v2/user/list", {"dept_id": "6", "cursor": "0", "size": "10"})["errcode"], 0)
    # control: add / delete people and departments
    fake.put_dept({"dept_id": 9, "name": "新部门", "parent_id": 3})
    fake.put_user({"userid": "u100", "unionid": "un100", "name": "新人", "dept_id_list": [9], "title": "Intern"})
    equal("control users: a new user is served", top("/topapi/v2/user/get", {"userid": "u100"})["result"]["title"],
          "Intern")
    equal("control depts: a new department is listed",
          [x["dept_id"] for x in top("/topapi/v2/department/listsub", {"dept_id": 3})["result"]], [6, 9])
    fake.put_user({"userid": "u100", "unionid": "un100", "name": "改名", "dept_id_list": [9]})
    equal("control users: replace", top("/topapi/v2/user/get", {"userid": "u100"})["result"]["name"], "改名")
    fake.delete_user("u100")
    equal("control users/delete: the leaver is 60121", top("/topapi/v2/user/get", {"userid": "u100"})["errcode"], 60121)
    equal("control users/delete: getbyunionid 60121",
          top("/topapi/user/getbyunionid", {"unionid": "un100"})["errcode"], 60121)
    fake.delete_dept(9)
    equal("control depts/delete: gone (60003)", top("/topapi/v2/department/get", {"dept_id": 9})["errcode"], 60003)
    r = fake.request("POST", "/_fake/users", json_body={"userid": "bad", "dept_id_list": [12345]})
    equal("control users: unknown department refused", r.status, 400)
    corp = fake.corp()
    check("control corp: whole corp JSON", corp["corp_id"] == "dingcorp0001" and len(corp["users"]) == 6
          and corp["external"][0]["unionid"] == "unext1", corp)


def test_paging():
    with FakeDingTalk(generate="depts=30,users=700,depth=3,seed=3", qps=0) as fake:
        corp = fake.corp()
        counts = {}
        for u in corp["users"]:
            for d in u["dept_id_list"]:
                counts.setdefault(d, []).append(u["userid"])
        big = max(counts, key=lambda d: len(counts[d]))
        tok = fake.corp_token()
        seen, cursor, pages = [], 0, 0
        while True:
            r = fake.topapi("/topapi/v2/user/list", {"dept_id": big, "cursor": cursor, "size": 100}, tok)["result"]
            seen += [x["userid"] for x in r["list"]]
            pages += 1
            if not r["has_more"]:
                break
            cursor = r["next_cursor"]
        check("user/list paging: > 100 members over several pages (%d members, %d pages)"
              % (len(counts[big]), pages), pages >= 2 and len(counts[big]) > 100)
        equal("user/list paging: every member exactly once", seen, counts[big])
        # a BFS over listsub reaches every department
        found, todo = [], [1]
        while todo:
            d = todo.pop(0)
            subs = fake.topapi("/topapi/v2/department/listsub", {"dept_id": d}, tok)["result"]
            found += [s["dept_id"] for s in subs]
            todo += [s["dept_id"] for s in subs]
        equal("listsub BFS reaches every department", sorted(found + [1]),
              sorted(x["dept_id"] for x in corp["departments"]))


def test_callback_management(fake):
    corp = fake.corp()
    cbcfg = corp["callback"]
    rx = CallbackReceiver(cbcfg["token"], cbcfg["aes_key"], corp["corp_id"])
    tok = fake.corp_token()
    body = {"call_back_tag": ["user_add_org", "user_leave_org", "org_dept_create"], "token": cbcfg["token"],
            "aes_key": cbcfg["aes_key"], "url": rx.url}

    def call(path, payload=None, method="POST"):
        if method == "GET":
            return fake.get(path, {"access_token": tok}).json()
        return fake.post(path, payload, query={"access_token": tok}).json()
    try:
        equal("get_call_back: none registered -> 71007", call("/call_back/get_call_back", method="GET")["errcode"], 71007)
        r = call("/call_back/register_call_back", body)
        equal("register_call_back: ok after check_url", r, {"errcode": 0, "errmsg": "ok"})
        first = rx.received[-1] if rx.received else {}
        check("register_call_back: check_url pushed, receiver = CorpId, legacy query names",
              first.get("plaintext") == '{"EventType":"check_url"}' and "signature" in first.get("query", {})
              and "timestamp" in first.get("query", {}) and "nonce" in first.get("query", {}), first)
        got = call("/call_back/get_call_back", method="GET")
        check("get_call_back: shows the registration", got.get("errcode") == 0 and got.get("url") == rx.url
              and got.get("call_back_tag") == body["call_back_tag"] and got.get("aes_key") == cbcfg["aes_key"], got)
        equal("register_call_back: second register -> 71006", call("/call_back/register_call_back", body)["errcode"],
              71006)
        rx.mode = "plain"
        r = call("/call_back/update_call_back", dict(body, call_back_tag=["user_modify_org"]))
        equal("update_call_back: a plain 'success' reply -> 71009", r["errcode"], 71009)
        rx.mode = "badsig"
        equal("update_call_back: reply with a bad signature -> 71009",
              call("/call_back/update_call_back", body)["errcode"], 71009)
        rx.mode = "status500"
        equal("update_call_back: HTTP 500 -> 71009", call("/call_back/update_call_back", body)["errcode"], 71009)
        rx.mode = "slow"
        t0 = time.monotonic()
        r = call("/call_back/update_call_back", body)
        check("update_call_back: a reply slower than --callback-timeout -> 71012",
              r["errcode"] == 71012 and time.monotonic() - t0 < 2.4, r)
        rx.mode = "good"
        r = call("/call_back/update_call_back", dict(body, call_back_tag=["user_modify_org"]))
        equal("update_call_back: ok", r["errcode"], 0)
        equal("update_call_back: tags replaced", call("/call_back/get_call_back", method="GET")["call_back_tag"],
              ["user_modify_org"])
        dead = "http://127.0.0.1:%d/cb" % free_port()
        equal("update_call_back: unreachable -> 71012", call("/call_back/update_call_back", dict(body, url=dead))["errcode"],
              71012)
        equal("update_call_back: bad url -> 71011", call("/call_back/update_call_back", dict(body, url="ftp://x"))["errcode"],
              71011)
        equal("update_call_back: unknown tag -> 71008",
              call("/call_back/update_call_back", dict(body, call_back_tag=["no_such_event"]))["errcode"], 71008)
        equal("update_call_back: bad aes_key -> 40035",
              call("/call_back/update_call_back", dict(body, aes_key="short"))["errcode"], 40035)
        equal("update_call_back: missing url -> 40035",
              call("/call_back/update_call_back", {k: v for k, v in body.items() if k != "url"})["errcode"], 40035)
        wrong = CallbackReceiver(cbcfg["token"], cbcfg["aes_key"], "dingsomeappkey")
        r = call("/call_back/update_call_back", dict(body, url=wrong.url))
        check("update_call_back: receiver checking an AppKey rejects check_url (71009)",
              r["errcode"] == 71009 and wrong.received[-1]["code"] == 900010, r)
        wrong.close()
        equal("delete_call_back", call("/call_back/delete_call_back", method="GET"), {"errcode": 0, "errmsg": "ok"})
        equal("delete_call_back: gone", call("/call_back/get_call_back", method="GET")["errcode"], 71007)
        equal("register_call_back: GET -> 43002", call("/call_back/register_call_back", method="GET")["errcode"], 43002)
        fake.set_callback(url=rx.url)
        equal("control callback: stored registration makes register 71006",
              call("/call_back/register_call_back", body)["errcode"], 71006)
        fake.set_callback(None)
        equal("control callback: cleared", fake.callback(), None)
    finally:
        rx.close()


def test_failed_list(fake):
    tok = fake.corp_token()
    for i in range(250):
        fake.add_failed("user_add_org", userid=["u%03d" % i], event_time=1606126433000 + i)
    fake.add_failed("org_dept_create", deptid=[7])
    r1 = fake.get("/call_back/get_call_back_failed_result", {"access_token": tok}).json()
    check("failed_result: first page 200 with has_more", r1.get("errcode") == 0 and len(r1["failed_list"]) == 200
          and r1["has_more"] is True, {k: r1[k] for k in r1 if k != "failed_list"})
    first = r1["failed_list"][0]
    equal("failed_result: nested shape (object named after the tag)", first,
          {"call_back_tag": "user_add_org", "event_time": 1606126433000,
           "user_add_org": {"userid": ["u000"], "corpid": "dingcorp0001"}})
    r2 = fake.get("/call_back/get_call_back_failed_result", {"access_token": tok}).json()
    check("failed_result: second page 51, no more", len(r2["failed_list"]) == 51 and r2["has_more"] is False, r2)
    equal("failed_result: dept entry", r2["failed_list"][-1]["org_dept_create"]["deptid"], [7])
    r3 = fake.get("/call_back/get_call_back_failed_result", {"access_token": tok}).json()
    equal("failed_result: consumed as fetched", (r3["failed_list"], r3["has_more"]), ([], False))
    fake.failed_shape("flat")
    fake.add_failed("user_leave_org", userid=["u009"], event_time=1)
    r = fake.get("/call_back/get_call_back_failed_result", {"access_token": tok}).json()
    equal("failed_result: flat 2016 shape", r["failed_list"],
          [{"call_back_tag": "user_leave_org", "event_time": 1, "userid": ["u009"], "corpid": "dingcorp0001"}])
    fake.failed_shape("nested")


def test_push(fake):
    corp = fake.corp()
    cb = corp["callback"]
    rx = CallbackReceiver(cb["token"], cb["aes_key"], corp["corp_id"])
    try:
        event = {"EventType": "user_add_org", "TimeStamp": "1645077203219", "UserId": ["u001", "张三"],
                 "CorpId": corp["corp_id"]}
        r = fake.push(rx.url, event)
        check("push: reply_ok with a correct receiver", r["reply_ok"] is True and r["status"] == 200
              and isinstance(r["elapsed_ms"], int), r)
        equal("push: the receiver decrypts the event", json.loads(rx.received[-1]["plaintext"]), event)
        q = rx.received[-1]["query"]
        check("push: legacy query names by default", set(q) == {"signature", "timestamp", "nonce"}
              and len(q["timestamp"]) == 13, q)
        fake.push(rx.url, event, sigparam="msg_signature", tsparam="timeStamp", timestamp="1614767836", nonce="n0nce")
        equal("push: sigparam/tsparam/timestamp/nonce options", rx.received[-1]["query"],
              {"msg_signature": rx.received[-1]["query"].get("msg_signature"), "timeStamp": "1614767836",
               "nonce": "n0nce"})
        for tamper, code in (("signature", 900005), ("base64", 900008), ("blocklen", 900008),
                             ("padding", 900009), ("length", 900009), ("utf8", 900009), ("receiver", 900010)):
            r = fake.push(rx.url, event, tamper=tamper)
            check("push: tamper %s is caught by a correct receiver (%d)" % (tamper, code),
                  r["reply_ok"] is False and r["status"] == 400 and rx.received[-1]["code"] == code,
                  (r, rx.received[-1]))
        r = fake.push(rx.url, event, receiver="dingappkey001")
        check("push: receiver option (AppKey) -> receiver mismatch", rx.received[-1]["code"] == 900010
              and r["reply_ok"] is False, r)
        other = CallbackReceiver("othertoken", fd.DEFAULT_CALLBACK["aes_key"][::-1], "dingappkey001")
        r = fake.push(other.url, event, receiver="dingappkey001", token="othertoken",
                      aes_key=fd.DEFAULT_CALLBACK["aes_key"][::-1])
        check("push: token/aes_key/receiver options", r["reply_ok"] is True, r)
        other.close()
        rx.mode = "plain"
        r = fake.push(rx.url, event)
        check("push: plain success is not a valid reply", r["reply_ok"] is False and r["body"] == "success"
              and r["reply_error"], r)
        before = len(fake.failed()["pending"])
        fake.push(rx.url, event, record_failed=True)
        pend = fake.failed()["pending"]
        check("push: record_failed queues a failed entry", len(pend) == before + 1
              and pend[-1]["data"]["userid"] == ["u001", "张三"], pend[-1:])
        fake.get("/call_back/get_call_back_failed_result", {"access_token": fake.corp_token()})
        rx.mode = "badsig"
        check("push: reply with a bad signature is not ok", fake.push(rx.url, event)["reply_ok"] is False)
        rx.mode = "good"
        r = fake.push(rx.url, "raw text 原文")
        check("push: a string event is sent verbatim", r["reply_ok"] and rx.received[-1]["plaintext"] == "raw text 原文")
        dead = "http://127.0.0.1:%d/x" % free_port()
        r = fake.push(dead, event)
        check("push: unreachable url -> status 0", r["status"] == 0 and r["reply_ok"] is False and r["reply_error"], r)
        e = fake.encrypt(event, random="1234567890123456", timestamp="1445827045067", nonce="nEXhMP4r")
        check("encrypt: query and body", set(qs("?" + e["query"])) == {"signature", "timestamp", "nonce"}
              and json.loads(e["body"]) == {"encrypt": e["encrypt"]}, e)
        e2 = fake.encrypt(event, random="1234567890123456", timestamp="1445827045067", nonce="nEXhMP4r")
        equal("encrypt: deterministic with random/timestamp/nonce", e2["encrypt"], e["encrypt"])
        for attempt in range(2):     # send it ourselves, twice (a replay)
            conn = http.client.HTTPConnection("127.0.0.1", rx.server.server_address[1], timeout=5)
            conn.request("POST", "/dingauth/callback?" + e["query"], body=e["body"],
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            reply = resp.read().decode()
            conn.close()
            check("encrypt: the envelope is accepted when sent by the test (%d)" % attempt,
                  resp.status == 200 and json.loads(rx.received[-1]["plaintext"]) == event)
        d = fake.decrypt(json.loads(reply))
        check("decrypt: verifies a receiver's success reply", d.get("ok") is True and d.get("plaintext") == "success", d)
        bad = fake.decrypt(dict(json.loads(reply), nonce="other"))
        equal("decrypt: signature mismatch -> 900005", bad.get("code"), 900005)
        bad = fake.decrypt(fake.encrypt("x", receiver="someone")["reply"])
        equal("decrypt: receiver mismatch -> 900010", bad.get("code"), 900010)
        r = fake.request("POST", "/_fake/push", json_body={"url": rx.url, "event": event, "tamper": "nope"})
        equal("push: unknown tamper -> control 400", r.status, 400)
    finally:
        rx.close()


def test_rate_limit(fake):
    tok = fake.corp_token()
    fake.set_qps(3)
    try:
        fake.clear_log()
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        answers = []
        for _ in range(5):
            conn.request("POST", "/topapi/v2/user/get?access_token=" + tok, body='{"userid":"u001"}',
                         headers={"Content-Type": "application/json"})
            answers.append(json.loads(conn.getresponse().read()))
        codes = [a["errcode"] for a in answers]
        equal("rate limit: 4th and 5th request in a second -> 90018", codes, [0, 0, 0, 90018, 90018])
        check("rate limit: topapi shape", set(answers[3]) == {"errcode", "errmsg", "request_id"}, answers[3])
        other = fake.topapi("/topapi/v2/department/listsub", {"dept_id": 1}, tok)
        equal("rate limit: per API path", other["errcode"], 0)
        log = fake.log(path="/topapi/v2/user/get")
        equal("rate limit: limited requests are logged and flagged", [e["rate_limited"] for e in log],
              [False, False, False, True, True])
        time.sleep(1.05)
        conn.request("POST", "/topapi/v2/user/get?access_token=" + tok, body='{"userid":"u001"}',
                     headers={"Content-Type": "application/json"})
        equal("rate limit: sliding window frees up after a second", json.loads(conn.getresponse().read())["errcode"], 0)
        conn.close()
        ucode = fake.code(userid="u001", kind="oauth")["code"]
        apps = fake.apps()
        ut = fake.post("/v1.0/oauth2/userAccessToken", {"clientId": apps["appkey"], "clientSecret": apps["appsecret"],
                                                        "code": ucode, "grantType": "authorization_code"}).json()
        res = [fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": ut["accessToken"]})
               for _ in range(4)]
        check("rate limit: v1 -> 403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
              [r.status for r in res] == [200, 200, 200, 403]
              and res[3].json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", res)
        oapi = [fake.get("/call_back/get_call_back", {"access_token": tok}).json()["errcode"] for _ in range(4)]
        equal("rate limit: oapi -> 90018", oapi[3], 90018)
        fake.set_qps(0)
        many = [fake.topapi("/topapi/v2/department/get", {"dept_id": 1}, tok)["errcode"] for _ in range(40)]
        equal("rate limit: qps 0 disables", set(many), {0})
    finally:
        fake.set_qps(20)
    with FakeDingTalk(qps=2) as f2:
        t = f2.corp_token()
        r = [f2.topapi("/topapi/v2/user/get", {"userid": "u001"}, t)["errcode"] for _ in range(3)]
        equal("--qps flag", r, [0, 0, 90018])


def test_faults(fake):
    tok = fake.corp_token()
    path = "/topapi/v2/user/get"

    def get_user():
        return fake.topapi(path, {"userid": "u001"}, tok)

    fake.fault(path, "invalid_token")
    r = get_user()
    check("fault invalid_token: topapi 88/40014", r.get("errcode") == 88 and r.get("sub_code") == "40014", r)
    equal("fault: only the next N requests", get_user()["errcode"], 0)
    fake.fault("/call_back/get_call_back", "invalid_token")
    equal("fault invalid_token: oapi 40014",
          fake.get("/call_back/get_call_back", {"access_token": tok}).json()["errcode"], 40014)
    fake.fault("/v1.0/contact/users/me", "invalid_token")
    r = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": "whatever"})
    check("fault invalid_token: v1 400 InvalidAuthentication", r.status == 400 and
          r.json()["code"] == "InvalidAuthentication", r)
    fake.fault(path, "invalid_token", sub_code="42001")
    equal("fault invalid_token: sub_code option", get_user().get("sub_code"), "42001")
    fake.fault(path, "errcode", errcode=60011, errmsg="没有调用该接口的权限")
    r = get_user()
    check("fault errcode: plain errcode", r.get("errcode") == 60011 and r.get("errmsg") == "没有调用该接口的权限"
          and "request_id" in r, r)
    fake.fault(path, "errcode", sub_code="60011", sub_msg="无权限")
    r = get_user()
    check("fault errcode: wrapped sub_code", r.get("errcode") == 88 and r.get("sub_code") == "60011"
          and r.get("sub_msg") == "无权限", r)
    fake.fault(path, "errcode", errcode=-1)
    equal("fault errcode: -1 system busy", get_user()["errcode"], -1)
    fake.fault(path, "rate_limit", count=2)
    rs = [get_user()["errcode"] for _ in range(3)]
    equal("fault rate_limit: count 2", rs, [90018, 90018, 0])
    check("fault rate_limit: flagged in the log", fake.log(path=path)[-2]["rate_limited"] is True
          and fake.log(path=path)[-2]["fault"] == "rate_limit")
    fake.fault("/v1.0/oauth2/accessToken", "rate_limit")
    r = fake.post("/v1.0/oauth2/accessToken", {"appKey": "dingappkey001", "appSecret": "appsecret001"})
    check("fault rate_limit: v1 403", r.status == 403 and r.json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", r)
    fake.fault(path, "http500")
    r = fake.post(path, {"userid": "u001"}, query={"access_token": tok})
    equal("fault http500", r.status, 500)
    fake.fault(path, "garbage")
    r = fake.post(path, {"userid": "u001"}, query={"access_token": tok})
    try:
        json.loads(r.body)
        parsed = True
    except ValueError:
        parsed = False
    check("fault garbage: HTTP 200 with non-JSON", r.status == 200 and not parsed and
          r.headers.get("content-length") == str(len(r.body)), r)
    fake.fault(path, "slow", delay_ms=700)
    t0 = time.monotonic()
    r = get_user()
    check("fault slow: delayed, then a normal answer", time.monotonic() - t0 >= 0.65 and r["errcode"] == 0, r)
    fake.fault(path, "errcode", errcode=50002, errmsg="不在可见范围", count=5, match={"userid": "u002"})
    a = get_user()["errcode"]
    b = fake.topapi(path, {"userid": "u002"}, tok)["errcode"]
    equal("fault match: only the matching request, count kept for it", (a, b), (0, 50002))
    fake.clear_faults()
    fake.fault(path, "slow", delay_ms=700, after=True, match={"userid": "u009"})
    fake.put_user({"userid": "u009", "name": "Later", "dept_id_list": [1]})
    box = {}
    th = threading.Thread(target=lambda: box.update(r=fake.topapi(path, {"userid": "u009"}, tok)))
    t0 = time.monotonic()
    th.start()
    time.sleep(0.3)
    fake.delete_user("u009")
    th.join()
    check("fault slow after: the answer held is the one computed on arrival",
          time.monotonic() - t0 >= 0.65 and box["r"]["errcode"] == 0 and
          box["r"]["result"]["userid"] == "u009", box)
    fake.fault(path, "errcode", errcode=15, sub_code="isp.top-remote-connection-timeout")
    r = get_user()
    check("fault errcode 15: DingTalk's remote connection timeout", r.get("errcode") == 15 and
          r.get("sub_code") == "isp.top-remote-connection-timeout", r)
    fake.fault(path, "errcode", errcode=88, sub_code="")
    r = get_user()
    check("fault errcode 88 with an empty sub_code", r.get("errcode") == 88 and
          r.get("sub_code") == "", r)
    fake.fault("/v1.0/contact/users/me", "http504")
    r = fake.get("/v1.0/contact/users/me")
    check("fault http504: a gateway timeout page", r.status == 504 and b"504" in r.body, r)
    fake.fault(path, "throttle_html")
    r = fake.post(path, {"userid": "u001"}, query={"access_token": tok})
    check("fault throttle_html: HTTP 200, an HTML page naming the punishment",
          r.status == 200 and r.headers.get("content-type", "").startswith("text/html") and
          b"punish" in r.body and fake.log(path=path)[-1]["rate_limited"] is True, r)
    fake.fault(path, "drop")
    try:
        fake.post(path, {"userid": "u001"}, query={"access_token": tok})
        check("fault drop: connection closed without an answer", False)
    except (http.client.HTTPException, ConnectionError):
        check("fault drop: connection closed without an answer", True)
    equal("fault drop: logged with status null", fake.log(path=path)[-1]["status"], None)
    fake.fault("*", "http500", count=2)
    a = fake.get("/gettoken", {"appkey": "x", "appsecret": "y"}).status
    b = fake.get("/ddlogin.js").status
    c = fake.get("/_fake/stats").status
    d = fake.get("/ddlogin.js").status
    equal("fault *: any non-control path, control exempt", (a, b, c, d), (500, 500, 200, 200))
    fake.fault(path, "errcode", errcode=1, count=5)
    equal("fault list", fake.faults()[0]["count"], 5)
    fake.clear_faults()
    equal("fault/clear", (fake.faults(), get_user()["errcode"]), ([], 0))
    r = fake.request("POST", "/_fake/fault", json_body={"path": path, "kind": "nonsense"})
    equal("fault: unknown kind -> control 400", r.status, 400)


def test_log_and_stats(fake):
    fake.clear_log()
    equal("log/clear", fake.log(), [])
    tok = fake.corp_token()
    before = fake.stats()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    heads = []
    for i in range(3):
        conn.request("POST", "/topapi/v2/user/get?access_token=%s&x=%d" % (tok, i), body='{"userid":"u00%d"}' % (i + 1),
                     headers={"Content-Type": "application/json; charset=utf-8"})
        resp = conn.getresponse()
        heads.append((resp.getheader("Content-Length"), len(resp.read()), resp.getheader("Connection")))
    conn.request("GET", "/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": "tk"})
    conn.getresponse().read()
    conn.close()
    after = fake.stats()
    check("keep-alive: Content-Length on every answer, connection kept",
          all(h[0] == str(h[1]) and h[2] is None for h in heads), heads)
    log = fake.log(path="/topapi/v2/user/get")
    equal("keep-alive: one connection carried the requests", len({e["conn"] for e in log}), 1)
    equal("stats: one more API connection", after["api_connections"] - before["api_connections"], 1)
    check("stats: connections counts accepted TCP connections", after["connections"] > before["connections"])
    equal("stats: requests and by_path", (after["requests"] - before["requests"],
                                          after["by_path"]["/topapi/v2/user/get"] - before["by_path"].get(
                                              "/topapi/v2/user/get", 0)), (4, 3))
    e = log[0]
    check("log: entry fields", {"seq", "t", "method", "path", "query", "json", "headers", "conn", "status",
                                "errcode", "rate_limited"} <= set(e), e)
    check("log: values", e["method"] == "POST" and e["query"] == {"access_token": tok, "x": "0"}
          and e["json"] == {"userid": "u001"} and e["headers"]["content-type"] == "application/json; charset=utf-8"
          and e["status"] == 200 and e["errcode"] == 0 and e["rate_limited"] is False and isinstance(e["t"], float), e)
    check("log: seq increases", [x["seq"] for x in log] == sorted(x["seq"] for x in log))
    me = fake.log(path="/v1.0/contact/users/me")[-1]
    check("log: v1 header recorded, errcode = code", me["headers"]["x-acs-dingtalk-access-token"] == "tk"
          and me["status"] == 400 and me["errcode"] == "InvalidAuthentication", me)
    check("log: control calls are not logged", all(not x["path"].startswith("/_fake/") for x in fake.log()))
    since = log[-1]["seq"]
    equal("log: since filter", [x["path"] for x in fake.log(since=since)], ["/v1.0/contact/users/me"])
    r = fake.get("/_fake/nope")
    equal("control: unknown path -> 404", r.status, 404)
    equal("plain oapi: unknown path -> errcode 404", fake.get("/no/such/api").json(),
          {"errcode": 404, "errmsg": "请求的URI地址不存在"})
    r = fake.post("/topapi/no/such", {}).json()
    check("topapi: unknown path -> errcode 22 Invalid method", r["errcode"] == 22 and r["errmsg"] == "Invalid method", r)
    big = ('{"userid":"%s"}' % ("x" * 5000)).encode()   # curl sends large bodies after a 100 Continue
    s = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    s.sendall(b"POST /topapi/v2/user/get?access_token=" + tok.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: "
              + str(len(big)).encode() + b"\r\n\r\n")
    interim = s.recv(100)
    s.sendall(big)
    data = b""
    while b"request_id" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    check("Expect: 100-continue is answered before the body", interim.startswith(b"HTTP/1.1 100")
          and b'"errcode":60121' in data, (interim, data[:200]))
    s = socket.create_connection(("127.0.0.1", fake.port))
    s.sendall(b"POST /topapi/v2/user/get?access_token=" + tok.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\n{\"use\r\nc\r\nrid\":\"u001\"}\r\n0\r\n\r\n")
    data = b""
    while b"request_id" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    check("chunked request bodies are read", b'"errcode":0' in data, data[:300])


def test_pages(fake):
    apps = fake.apps()
    js = fake.get("/ddlogin.js")
    check("ddlogin.js: JavaScript defining DDLogin and DTFrameLogin",
          js.status == 200 and "javascript" in js.headers["content-type"] and "window.DDLogin" in js.text
          and "window.DTFrameLogin" in js.text and "event.origin !== ORIGIN" in js.text, js)
    redirect_uri = "http://app.example/dingauth/exchange?x=1"
    sns_url = ("%s/connect/oauth2/sns_authorize?appid=%s&response_type=code&scope=snsapi_login&state=ST%%201"
               "&redirect_uri=%s" % (fake.url, apps["sns_appid"], urllib.parse.quote(redirect_uri, safe="")))
    page = fake.get("/login/qrcode.htm", {"goto": sns_url})
    t = page.text
    check("qrcode.htm: a button per corp user and external person",
          page.status == 200 and t.count("<button") == 7 and 'data-userid="u002" data-unionid="un002">李四</button>' in t
          and 'data-userid="" data-unionid="unext1">Outsider</button>' in t, t[:300])
    check("qrcode.htm: names are HTML-escaped",
          "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Hara &amp; &quot;Q&quot;" in t
          and '<script>alert("x")' not in t)
    check("qrcode.htm: posts loginTmpCode to the parent", 'window.parent.postMessage(d.loginTmpCode, "*")' in t)
    bad = fake.get("/login/qrcode.htm", {"goto": sns_url.replace(apps["sns_appid"], "nosuchapp")})
    check("qrcode.htm: unknown appid -> error page", bad.status == 400 and "nosuchapp" in bad.text, bad)
    double = fake.get("/login/qrcode.htm?goto=" + urllib.parse.quote(urllib.parse.quote(
        sns_url.replace(apps["sns_appid"], "nosuchapp"), safe=""), safe=""))
    equal("qrcode.htm: finds the appid in a doubly encoded goto", double.status, 400)
    pick = fake.post("/login/pick", {"unionid": "un004"})
    ltc = pick.json().get("loginTmpCode")
    check("login/pick: mints a loginTmpCode", pick.status == 200 and ltc, pick)
    r = fake.get(urllib.parse.urlsplit(sns_url).path + "?" + urllib.parse.urlsplit(sns_url).query +
                 "&loginTmpCode=" + ltc)
    loc = r.headers.get("location", "")
    check("sns_authorize + loginTmpCode: 302 to redirect_uri?code=&state=",
          r.status == 302 and loc.startswith(redirect_uri + "&code=") and qs(loc).get("state") == "ST 1"
          and qs(loc).get("x") == "1", (r.status, loc))
    code = qs(loc).get("code")
    sns = fake.sns_app_token()
    p = fake.post("/sns/get_persistent_code", {"tmp_auth_code": code}, query={"access_token": sns}).json()
    equal("sns_authorize: the code works with get_persistent_code", p.get("unionid"), "un004")
    again = fake.get(urllib.parse.urlsplit(sns_url).path + "?" + urllib.parse.urlsplit(sns_url).query +
                     "&loginTmpCode=" + ltc)
    equal("sns_authorize: loginTmpCode is single use", again.status, 400)
    base = urllib.parse.urlsplit(sns_url).path + "?" + urllib.parse.urlsplit(sns_url).query
    full = fake.get(base)
    check("sns_authorize without loginTmpCode: full-page picker", full.status == 200 and
          'data-mode="sns_page"' in full.text and full.text.count("<button") == 7 and "pick=un001" in full.text)
    r = fake.get(base + "&pick=un001")
    check("sns_authorize pick fallback: 302 with code", r.status == 302 and "code=" in r.headers["location"], r)
    r = fake.get(base.replace("/connect/oauth2/sns_authorize", "/connect/qrconnect") + "&pick=un006")
    code = qs(r.headers.get("location", "")).get("code")
    ts = str(int(time.time() * 1000))
    by = fake.request("POST", "/sns/getuserinfo_bycode?" + urllib.parse.urlencode(
        {"accessKey": apps["sns_appid"], "timestamp": ts, "signature": fd.sns_signature(apps["sns_appsecret"], ts)}),
        json_body={"tmp_auth_code": code}).json()
    equal("qrconnect: the code works with getuserinfo_bycode", by.get("user_info", {}).get("unionid"), "un006")
    bad = fake.get(base.replace(apps["sns_appid"], "nosuch"))
    check("sns_authorize: unknown appid -> error page", bad.status == 400 and "text/html" in bad.headers["content-type"]
          and "nosuch" in bad.text, bad)
    equal("sns_authorize: bad redirect_uri -> error page", fake.get(base.replace("redirect_uri=http", "redirect_uri=xx")).status,
          400)
    oauth = ("/oauth2/auth?redirect_uri=%s&response_type=code&client_id=%s&scope=openid&state=S2&prompt=consent"
             % (urllib.parse.quote("http://app.example/dingauth/exchange", safe=""), apps["appkey"]))
    r = fake.get(oauth)
    check("oauth2/auth: picker page", r.status == 200 and 'data-mode="oauth_page"' in r.text and
          r.text.count("<button") == 7, r)
    r = fake.get(oauth + "&pick=un002")
    loc = r.headers.get("location", "")
    check("oauth2/auth pick: 302 redirect_uri?authCode=&state=", r.status == 302 and
          loc.startswith("http://app.example/dingauth/exchange?authCode=") and qs(loc)["state"] == "S2", loc)
    ut = fake.post("/v1.0/oauth2/userAccessToken", {"clientId": apps["appkey"], "clientSecret": apps["appsecret"],
                                                    "code": qs(loc)["authCode"], "grantType": "authorization_code"})
    equal("oauth2/auth: the authCode works with userAccessToken", ut.status, 200)
    r = fake.get(oauth + "&embed=1")
    check("oauth2/auth embed=1: picker posting to the parent", r.status == 200 and 'data-mode="oauth_embed"' in r.text
          and "window.parent.postMessage({redirectUrl: d.redirectUrl, authCode: d.authCode, state: d.state}" in r.text)
    r = fake.post("/oauth2/pick", {"unionid": "unext1", "client_id": apps["appkey"],
                                   "redirect_uri": "http://app.example/x", "state": "S3"}).json()
    check("oauth2/pick: authCode, redirectUrl, state", r.get("state") == "S3" and
          r.get("redirectUrl") == "http://app.example/x?authCode=%s&state=S3" % r.get("authCode"), r)
    bad = fake.get(oauth.replace(apps["appkey"], "nosuch") + "&embed=1")
    check("oauth2/auth: unknown client_id -> error page (posting errorMsg when embedded)",
          bad.status == 400 and "nosuch" in bad.text and "errorMsg" in bad.text, bad)
    log = fake.log(path="/connect/oauth2/sns_authorize")
    check("pages are logged", len(log) >= 3 and log[-1]["status"] == 400, log[-1:])


def test_browser(fake):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        webdriver = None
    if not (chromium and driver and webdriver):
        print("ok - browser: skipped (no chromium/chromedriver/selenium) # SKIP")
        return
    apps = fake.apps()
    hits = []

    class Site(BaseHTTPRequestHandler):
        """The relying site on another origin: a login page and the redirect target."""

        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            if u.path == "/done":
                hits.append(qs(self.path))
                body = "<html><title>done</title><body>done</body></html>"
            elif u.path == "/sns":
                redirect = "http://127.0.0.1:%d/done" % self.server.server_address[1]
                goto = ("%s/connect/oauth2/sns_authorize?appid=%s&response_type=code&scope=snsapi_login"
                        "&state=BR1&redirect_uri=%s" % (fake.url, apps["sns_appid"],
                                                        urllib.parse.quote(redirect, safe="")))
                body = """<html><head><script src="%s/ddlogin.js"></script></head><body>
<div id="login_container"></div><script>
var GOTO = %s;
DDLogin({id: "login_container", goto: encodeURIComponent(GOTO), style: "border:none", width: "365", height: "400"});
window.addEventListener("message", function (event) {
  if (event.origin !== %s) return;
  window.location.href = GOTO + "&loginTmpCode=" + event.data;
});
</script></body></html>""" % (fake.url, json.dumps(goto), json.dumps(fake.url))
            else:
                redirect = "http://127.0.0.1:%d/done" % self.server.server_address[1]
                body = """<html><head><script src="%s/ddlogin.js"></script></head><body>
<div id="box"></div><script>
window.DTFrameLogin({id: "box", width: 300, height: 300},
  {redirect_uri: encodeURIComponent(%s), client_id: %s, scope: "openid", response_type: "code",
   state: "BR2", prompt: "consent"},
  function (r) { document.title = "ok"; window.location.href = r.redirectUrl; },
  function (msg) { document.title = "fail:" + msg; });
</script></body></html>""" % (fake.url, json.dumps(redirect), json.dumps(apps["appkey"]))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    site_url = "http://127.0.0.1:%d" % site.server_address[1]
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    browser = None
    try:
        browser = webdriver.Chrome(service=Service(driver), options=opts)
        browser.set_page_load_timeout(20)
        browser.get(site_url + "/sns")
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.TAG_NAME, "iframe"))
        browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, 'button[data-userid="u004"]'))
        button = browser.find_element(By.CSS_SELECTOR, 'button[data-userid="u004"]')
        equal("browser DDLogin: escaped name shown as text", button.text,
              "<script>alert(\"x\")</script> O'Hara & \"Q\"")
        button.click()
        browser.switch_to.default_content()
        WebDriverWait(browser, 10).until(lambda b: hits)
        got = hits.pop()
        check("browser DDLogin: postMessage -> sns_authorize -> redirect with code and state",
              got.get("state") == "BR1" and got.get("code"), got)
        p = fake.post("/sns/get_persistent_code", {"tmp_auth_code": got.get("code", "")},
                      query={"access_token": fake.sns_app_token()}).json()
        equal("browser DDLogin: the code belongs to the person picked", p.get("unionid"), "un004")
        browser.get(site_url + "/frame")
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.TAG_NAME, "iframe"))
        browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, 'button[data-unionid="un006"]'))
        browser.find_element(By.CSS_SELECTOR, 'button[data-unionid="un006"]').click()
        browser.switch_to.default_content()
        WebDriverWait(browser, 10).until(lambda b: hits)
        got = hits.pop()
        check("browser DTFrameLogin: ok({redirectUrl, authCode, state}) -> redirect", got.get("state") == "BR2"
              and got.get("authCode"), got)
        ut = fake.post("/v1.0/oauth2/userAccessToken", {"clientId": apps["appkey"], "clientSecret": apps["appsecret"],
                                                        "code": got.get("authCode", ""),
                                                        "grantType": "authorization_code"}).json()
        me = fake.get("/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": ut.get("accessToken", "")})
        equal("browser DTFrameLogin: the authCode belongs to the person picked", me.json().get("unionId"), "un006")
    finally:
        if browser:
            browser.quit()
        site.shutdown()
        site.server_close()


def test_inapp(fake):
    """topapi/v2/user/getuserinfo and the JSAPI stand-in [i.1]."""
    tok = fake.corp_token()
    path = "/topapi/v2/user/getuserinfo"

    def ask(code, token=tok):
        query = {"access_token": token} if token else None
        return fake.post(path, {"code": code} if code is not None else {}, query=query).json()

    code = fake.inapp_code(userid="u002")
    fake.clear_log()
    j = ask(code)
    check("getuserinfo: errcode 0, result, request_id",
          j.get("errcode") == 0 and j.get("errmsg") == "ok" and j.get("request_id") and
          set(j.get("result", {})) == {"userid", "unionid", "name", "device_id", "sys",
                                        "sys_level", "associated_unionid"}, j)
    equal("getuserinfo: the person", {k: j["result"][k] for k in ("userid", "unionid", "name",
                                                                   "sys", "sys_level")},
          {"userid": "u002", "unionid": "un002", "name": "李四", "sys": False, "sys_level": 0})
    e = fake.log(path=path)[-1]
    check("getuserinfo: recorded, POST, JSON {code}, corp token in the query",
          e["method"] == "POST" and e["json"] == {"code": code} and
          e["query"].get("access_token") == tok and e["errcode"] == 0, e)
    boss = ask(fake.inapp_code(userid="u001"))["result"]
    equal("getuserinfo: the boss is sys, level 100", (boss["sys"], boss["sys_level"]), (True, 100))
    again = ask(code)
    equal("getuserinfo: a code is single use -> 40078",
          (again.get("errcode"), again.get("errmsg"), "result" in again),
          (40078, "不存在的临时授权码", False))
    equal("getuserinfo: an oauth authCode is not an in-app code",
          ask(fake.code(userid="u002", kind="oauth")["code"]).get("errcode"), 40078)
    equal("getuserinfo: someone outside the company -> 60121",
          ask(fake.inapp_code(unionid="unext1")).get("errcode"), 60121)
    equal("getuserinfo: no code -> 40035", ask(None).get("errcode"), 40035)
    nt = ask(fake.inapp_code(userid="u002"), token=None)
    equal("getuserinfo: no token -> 88 / sub_code 41001", (nt.get("errcode"), nt.get("sub_code")),
          (88, "41001"))
    equal("getuserinfo: GET -> 43002",
          fake.get(path, {"access_token": tok}).json().get("errcode"), 43002)

    r = fake.get("/dingtalk.open.js")
    check("JSAPI stand-in: a script, not cached, with requestAuthCode and the CorpId",
          r.status == 200 and r.headers.get("content-type", "").startswith(
              "application/javascript") and r.headers.get("cache-control") == "no-store" and
          b"requestAuthCode" in r.body and b'"corpId": "dingcorp0001"' in r.body, r)
    codes = re.findall(r'"code": "([0-9a-f]{32})"', r.text)
    equal("JSAPI stand-in: without a setting, one code per person (the picker)",
          len(codes), len(fake.corp()["users"]) + len(fake.corp()["external"]))
    equal("JSAPI stand-in: control set", fake.jsapi(userid="u006"), {"userid": "u006"})
    codes = re.findall(r'"code": "([0-9a-f]{32})"', fake.get("/dingtalk.open.js").text)
    equal("JSAPI stand-in: the set person's code, which getuserinfo takes",
          [ask(c).get("result", {}).get("userid") for c in codes], ["u006"])
    fake.jsapi(missing=True)
    equal("JSAPI stand-in: missing -> 404", fake.get("/dingtalk.open.js").status, 404)
    bad = fake.request("POST", "/_fake/jsapi", json_body={"userid": "nobody"})
    equal("JSAPI control: unknown userid -> 400", bad.status, 400)
    bad = fake.request("POST", "/_fake/jsapi", json_body={"fail": "x"})
    equal("JSAPI control: fail must be an object -> 400", bad.status, 400)
    equal("JSAPI control: {} resets", (fake.jsapi(), fake.control("GET", "jsapi")), ({}, {}))


SECTIONS = [
    ("crypto", test_crypto_vectors, False),
    ("process", test_process, False),
    ("corp", test_corp_files, False),
    ("paging", test_paging, False),
    ("tokens", test_tokens, True),
    ("sns", test_sns_flow, True),
    ("bycode", test_bycode, True),
    ("oauth2", test_oauth2, True),
    ("inapp", test_inapp, True),
    ("directory", test_directory, True),
    ("callback", test_callback_management, True),
    ("failed", test_failed_list, True),
    ("push", test_push, True),
    ("ratelimit", test_rate_limit, True),
    ("faults", test_faults, True),
    ("log", test_log_and_stats, True),
    ("pages", test_pages, True),
    ("browser", test_browser, True),
]


def main():
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    for name, fn, needs_fake in SECTIONS:
        if only and only not in name:
            continue
        try:
            if needs_fake:
                with FakeDingTalk(callback_timeout=1.5) as fake:
                    fn(fake)
            else:
                fn()
        except Exception:
            check("%s: section ran to the end" % name, False, traceback.format_exc())
    print("# %d checks, %d failed" % (COUNT[0], len(FAILURES)))
    for name in FAILURES:
        print("#   failed: %s" % name)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
