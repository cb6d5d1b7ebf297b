# -*- coding: utf-8 -*-
"""fakedt: run tests/fake_dingtalk.py for a test and drive its control API.

Standard library only, so any Python 3 can import it; the fake itself always
runs under Debian's /usr/bin/python3 (it needs python3-cryptography).

    import os, sys
    sys.path.insert(0, "tests")
    from fakedt import FakeDingTalk

    with FakeDingTalk() as fake:                      # the built-in demo corp
        env = dict(os.environ, DINGTALK_OAPI_URL=fake.url, DINGTALK_API_URL=fake.url,
                   DINGTALK_LOGIN_URL=fake.url, **fake.config_env())
        code = fake.code(userid="u001")["code"]           # a tmp auth code, no browser needed
        code = fake.inapp_code(userid="u001")             # an in-app (requestAuthCode) code
        fake.fault("/topapi/v2/user/get", "invalid_token", count=1)
        ...                                               # run the program under test
        calls = fake.log(path="/topapi/v2/user/get")      # what it asked
        assert calls[0]["json"] == {"userid": "u001", "language": "zh_CN"}

FakeDingTalk(corp=None | dict | "file.json", generate="depts=N,users=M,depth=D,seed=S",
             qps=None, token_ttl=None, code_ttl=None, callback_timeout=None, log=None, ...)
starts the fake on an ephemeral port (start() or the with-block), `.url` is its
origin, `.stop()` ends it (also called by __exit__ and at interpreter exit; the
fake also exits by itself when this process dies, through --watch-stdin).
"""

import atexit
import http.client
import json
import os
import select
import subprocess
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_SCRIPT = os.path.join(HERE, "fake_dingtalk.py")
PYTHON = "/usr/bin/python3"


class FakeError(Exception):
    """The fake could not start, or a control call failed."""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.text[:200])


class FakeDingTalk:
    def __init__(self, corp=None, generate=None, qps=None, token_ttl=None, code_ttl=None,
                 callback_timeout=None, log=None, port=0, python=PYTHON, extra_args=(),
                 startup_timeout=15.0, stderr=None, stream_ca=None):
        if corp is not None and generate is not None:
            raise ValueError("give corp or generate, not both")
        self.corp_arg = corp
        self.generate = generate
        self.options = [("--qps", qps), ("--token-ttl", token_ttl), ("--code-ttl", code_ttl),
                        ("--callback-timeout", callback_timeout), ("--log", log)]
        self.port = port
        self.python = python
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.stderr = stderr
        self.stream_ca = stream_ca      # a path: serve Stream mode, its CA written there
        self.proc = None
        self.url = None
        self._tmp_corp = None

    # -- process -------------------------------------------------------------------
    def start(self):
        if self.proc:
            return self
        args = [self.python, FAKE_SCRIPT, "--port", str(self.port), "--watch-stdin"]
        if isinstance(self.corp_arg, dict):
            fd, self._tmp_corp = tempfile.mkstemp(prefix="fakedt-corp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.corp_arg, f, ensure_ascii=False)
            args += ["--corp", self._tmp_corp]
        elif self.corp_arg is not None:
            args += ["--corp", str(self.corp_arg)]
        if self.generate is not None:
            args += ["--generate", self.generate]
        for flag, value in self.options:
            if value is not None:
                args += [flag, str(value)]
        if self.stream_ca:
            args += ["--stream-ca", str(self.stream_ca)]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        atexit.register(self.stop)
        line = self._read_line(self.startup_timeout)
        if not line.startswith("LISTENING http://127.0.0.1:"):
            self.stop()
            raise FakeError("fake_dingtalk did not start (first line %r)" % line)
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 1)
            if not chunk:
                break
            buf += chunk
        return buf.decode("utf-8", "replace").strip()

    def stop(self):
        proc, self.proc = self.proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe:
                    pipe.close()
        if self._tmp_corp:
            try:
                os.unlink(self._tmp_corp)
            except OSError:
                pass
            self._tmp_corp = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- raw HTTP (a fresh connection per call) ----------------------------------------
    def request(self, method, path, query=None, json_body=None, body=None, headers=None, timeout=30):
        """Send one request to the fake; returns a Response (any status)."""
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def get(self, path, query=None, **kw):
        return self.request("GET", path, query=query, **kw)

    def post(self, path, json_body=None, query=None, **kw):
        return self.request("POST", path, query=query, json_body=json_body, **kw)

    def control(self, method, path, body=None, query=None):
        resp = self.request(method, "/_fake/" + path.lstrip("/"), query=query,
                            json_body=body if method == "POST" else None)
        if resp.status != 200:
            raise FakeError("control %s %s: HTTP %d %s" % (method, path, resp.status, resp.text))
        return resp.json()

    # -- control helpers ------------------------------------------------------------------
    def log(self, path=None, since=0):
        query = {}
        if path:
            query["path"] = path
        if since:
            query["since"] = since
        return self.control("GET", "log", query=query)

    def notifications(self):
        """The work notifications the fake took (asyncsend_v2), oldest first."""
        return self.control("GET", "notifications")

    def clear_log(self):
        return self.control("POST", "log/clear", {})

    def stats(self):
        return self.control("GET", "stats")

    def fault(self, path, kind, count=1, **options):
        """kind: invalid_token, errcode (errcode=, sub_code=, errmsg=, status=, code=), rate_limit,
        http500, slow (delay_ms=, after=True: answer first, then wait), garbage, drop.
        path "*" matches any non-control path; match={"userid": "u002"} only requests carrying
        these values (JSON body or query)."""
        return self.control("POST", "fault", dict(options, path=path, kind=kind, count=count))

    def clear_faults(self):
        return self.control("POST", "fault/clear", {})

    def faults(self):
        return self.control("GET", "fault")

    def expire_tokens(self):
        return self.control("POST", "tokens/expire", {})

    def revoke_tokens(self):
        return self.control("POST", "tokens/revoke_permanently", {})

    def restore_tokens(self):
        return self.control("POST", "tokens/restore", {})

    def tokens(self):
        return self.control("GET", "tokens")

    def code(self, unionid=None, userid=None, kind="tmp", app=None):
        """Mint a login code: kind tmp (sns flows), oauth (authCode) or login_tmp (loginTmpCode)."""
        body = {"kind": kind}
        for key, value in (("unionid", unionid), ("userid", userid), ("app", app)):
            if value is not None:
                body[key] = value
        return self.control("POST", "code", body)

    def inapp_code(self, userid=None, unionid=None):
        """A free-login code of the in-app page [i.1], as requestAuthCode gives it."""
        return self.code(userid=userid, unionid=unionid, kind="inapp")["code"]

    def jsapi(self, **setting):
        """What the JSAPI stand-in (/dingtalk.open.js) does: userid=/unionid= (that person, at
        once), fail={errorCode, errorMessage}, platform=, missing=True; nothing: the picker."""
        return self.control("POST", "jsapi", setting)

    def put_user(self, user):
        return self.control("POST", "users", user)

    def delete_user(self, userid):
        return self.control("POST", "users/delete", {"userid": userid})

    def put_dept(self, dept):
        return self.control("POST", "depts", dept)

    def delete_dept(self, dept_id):
        return self.control("POST", "depts/delete", {"dept_id": dept_id})

    def corp(self):
        return self.control("GET", "corp")

    def callback(self):
        return self.control("GET", "callback")

    def set_callback(self, url=None, **fields):
        return self.control("POST", "callback", dict(fields, url=url))

    def push(self, url, event, **options):
        """Encrypt event (dict, or a string sent verbatim) and POST it to url like DingTalk.
        options: receiver, token, aes_key, timestamp, nonce, random, tamper, sigparam, tsparam,
        timeout, extra_body, record_failed. Returns {status, body, elapsed_ms, reply_ok, ...}."""
        return self.control("POST", "push", dict(options, url=url, event=event))

    def encrypt(self, event, **options):
        """Like push, without sending: {query, body, encrypt, signature, timestamp, nonce, reply}."""
        return self.control("POST", "encrypt", dict(options, event=event))

    def decrypt(self, envelope, **options):
        """Check an envelope (reply JSON or push fields): {ok, plaintext, receiver, code, error}."""
        return self.control("POST", "decrypt", dict(options, **envelope))

    def add_failed(self, call_back_tag, **fields):
        return self.control("POST", "failed", dict(fields, call_back_tag=call_back_tag))

    def failed_shape(self, shape):
        return self.control("POST", "failed/shape", {"shape": shape})

    def failed(self):
        return self.control("GET", "failed")

    def set_qps(self, qps):
        return self.control("POST", "qps", {"qps": qps})

    # -- Stream mode (needs stream_ca=PATH) ----------------------------------------------------
    def stream_event(self, event, **options):
        """Push an EVENT frame: event {eventType, eventId, eventCorpId, data}; options messageId,
        lose_ack. Returns {messageId, eventId, sent_to}."""
        return self.control("POST", "stream/event", dict(options, event=event))

    def stream_system(self, topic, **options):
        return self.control("POST", "stream/system", dict(options, topic=topic))

    def stream_raw(self, text, conn=None):
        return self.control("POST", "stream/raw", {"text": text, "conn": conn})

    def stream_drop(self):
        return self.control("POST", "stream/drop", {})

    def stream_silence(self, on=True):
        return self.control("POST", "stream/silence", {"on": on})

    def stream_refuse(self, count, status=503):
        return self.control("POST", "stream/refuse", {"count": count, "status": status})

    def stream_state(self):
        return self.control("GET", "stream")

    # -- API conveniences ---------------------------------------------------------------------
    def apps(self):
        return self.corp()["apps"]

    def config_env(self):
        """DINGTALK_* configuration values matching the fake's corp (docs/contract.md names)."""
        corp = self.corp()
        return {"DINGTALK_CORP_ID": corp["corp_id"], "DINGTALK_APP_KEY": corp["apps"]["appkey"],
                "DINGTALK_CORP_SECRET": corp["apps"]["appsecret"],
                "DINGTALK_APP_ID": corp["apps"]["sns_appid"],
                "DINGTALK_APP_SECRET": corp["apps"]["sns_appsecret"],
                "DINGTALK_AES_TOKEN": corp["callback"]["aes_key"],
                "DINGTALK_TOKEN": corp["callback"]["token"],
                "DINGTALK_OAPI_URL": self.url, "DINGTALK_API_URL": self.url,
                "DINGTALK_LOGIN_URL": self.url, "DINGTALK_DDLOGIN_JS": self.url + "/ddlogin.js",
                "DINGTALK_JSAPI_JS": self.url + "/dingtalk.open.js"}

    def corp_token(self):
        apps = self.apps()
        resp = self.get("/gettoken", {"appkey": apps["appkey"], "appsecret": apps["appsecret"]}).json()
        if resp.get("errcode") != 0:
            raise FakeError("gettoken: %r" % resp)
        return resp["access_token"]

    def sns_app_token(self):
        apps = self.apps()
        resp = self.get("/sns/gettoken", {"appid": apps["sns_appid"], "appsecret": apps["sns_appsecret"]}).json()
        if resp.get("errcode") != 0:
            raise FakeError("sns/gettoken: %r" % resp)
        return resp["access_token"]

    def topapi(self, path, body, token=None):
        """POST a topapi call with the corp token; returns the parsed answer."""
        return self.post(path, body, query={"access_token": token or self.corp_token()}).json()
