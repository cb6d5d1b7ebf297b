#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Fake DingTalk: a test double for oapi.dingtalk.com, api.dingtalk.com and
login.dingtalk.com on one loopback origin, speaking the wire protocol written
down in docs/dingtalk.md (sections in brackets below refer to it).

Run with Debian's interpreter (standard library + python3-cryptography only):

    /usr/bin/python3 tests/fake_dingtalk.py [--host 127.0.0.1] [--port 0]
        [--corp FILE.json | --generate depts=N,users=M,depth=D,seed=S]
        [--qps 20] [--token-ttl 7200] [--code-ttl 300] [--callback-timeout 5]
        [--log FILE|-] [--watch-stdin]

It prints exactly one line, ``LISTENING http://127.0.0.1:PORT``, then serves
until SIGTERM/SIGINT (or, with --watch-stdin, until its stdin closes).
tests/fakedt.py starts it as a subprocess for tests.

Families and their error shapes [h.1]
  oapi    plain REST (/gettoken, /sns/..., /call_back/...): HTTP 200, {"errcode","errmsg",...}
  topapi  /topapi/...: HTTP 200, {"errcode":0,"errmsg":"ok","result":...,"request_id":...};
          token errors wrapped as errcode 88 + sub_code (string)
  v1      /v1.0/...: 2xx bare object, errors 4xx {"code","message","requestid"}
  page    /ddlogin.js, /login/..., /connect/..., /oauth2/... (HTML/JS, the QR stand-in),
          /dingtalk.open.js (the JSAPI stand-in of the in-app login [i.1])
  control /_fake/... (JSON; never logged, never faulted, never rate limited)

Control API (JSON in and out; errors are HTTP 400/404/405 {"error": "..."}):
  GET  /_fake/log[?path=P][&since=SEQ]  [{seq,t,method,path,query,raw_query,json,body,headers{content-type,
                                         x-acs-dingtalk-access-token,authorization},conn,status,errcode,
                                         sub_code,rate_limited,fault}]   (status null for a dropped request;
                                         errcode is the v1 "code" string on v1 errors)
  POST /_fake/log/clear                 GET /_fake/stats -> {connections, api_connections, requests, by_path}
  POST /_fake/fault {path|"*", kind, count=1, delay_ms, errcode, errmsg, sub_code, sub_msg, status, code,
       match, after}
       kinds: invalid_token (sub_code may pick 42001), errcode, rate_limit, http500, http504, slow,
       garbage, throttle_html, drop. DingTalk's documented timeouts: errcode with errcode=15,
       sub_code="isp.top-remote-connection-timeout"; errcode with errcode=88, sub_code=""; http504
       (a gateway timeout page). throttle_html: the HTML page of IP-level throttling [h.1].
       match {name: value, ...}: only requests whose JSON body (or query) has these values (compared as
       strings), e.g. {"userid": "u002"}; the others pass untouched and do not use up count.
       after (slow only): answer first, then wait delay_ms before sending it, so the answer is what
       the fake held when the request arrived.
  GET  /_fake/fault                     POST /_fake/fault/clear
  POST /_fake/tokens/expire | /_fake/tokens/revoke_permanently | /_fake/tokens/restore;  GET /_fake/tokens
  POST /_fake/code {unionid|userid, kind: tmp|oauth|login_tmp|inapp, app?} -> {code, unionid}
  POST /_fake/jsapi {userid|unionid?, fail? {errorCode, errorMessage}, platform?, missing?} ({} resets)
       what the JSAPI stand-in /dingtalk.open.js does [i.1]: with a person, requestAuthCode hands
       out a fresh in-app code for them at once; with none, it shows a picker of the corp's people
       (the simulated client's "who is signed in"); fail: onFail(fail); platform: dd.env.platform
       (default from the User-Agent); missing: the script is a 404. GET /_fake/jsapi: the setting.
  POST /_fake/users {user...}           POST /_fake/users/delete {userid}
  POST /_fake/depts {dept...}           POST /_fake/depts/delete {dept_id}      GET /_fake/corp
  GET  /_fake/callback                  POST /_fake/callback {url, call_back_tag?, token?, aes_key?} ({} clears)
  POST /_fake/push {url, event (object, or string sent verbatim), receiver?, token?, aes_key?, timestamp?,
       nonce?, random? (16 chars), tamper?: signature|base64|padding|length|receiver|blocklen|utf8,
       sigparam: signature|msg_signature, tsparam: timestamp|timeStamp, timeout?, extra_body?, record_failed?}
       -> {status, body, elapsed_ms, reply_ok, reply_error, content_type, query, sent_body, encrypt,
           signature, timestamp, nonce}      (status 0 = unreachable; reply_ok also needs HTTP 200)
  POST /_fake/encrypt {same as push without url} -> {query, body, encrypt, signature, timestamp, nonce, reply}
  POST /_fake/decrypt {msg_signature|signature, timeStamp|timestamp, nonce, encrypt, token?, aes_key?,
       receiver?} -> {ok, plaintext, receiver, code (900005/900008/900009/900010), error}
  GET  /_fake/failed                    POST /_fake/failed {call_back_tag, event_time?, userid?, deptid?, data?}
  POST /_fake/failed/shape {shape: nested|flat}
  POST /_fake/qps {qps}
  GET  /_fake/notifications             the work notifications taken by asyncsend_v2 [i.2], oldest first:
                                        [{task_id, agent_id, userid_list (array), msg, t}]
  Stream mode (with --stream-ca FILE: POST /v1.0/gateway/connections/open hands out single-use
  90 s tickets for a wss:// gateway on another loopback port, certificate from a throwaway CA):
  POST /_fake/stream/event {event: {eventType, eventId, eventCorpId, eventBornTime, data}, messageId?,
       lose_ack?} -> {messageId, eventId, sent_to}: pending until ACKed SUCCESS (pushed again on
       every new link, and redeliver 1 s after a LATER)
  POST /_fake/stream/system {topic: ping|disconnect|..., data?, cut_after_ms? (disconnect: 10000)}
  POST /_fake/stream/raw {text, conn?}   POST /_fake/stream/drop {conn?} (no close frame)
  POST /_fake/stream/silence {on}  (the link stops answering: half-open)
  POST /_fake/stream/refuse {count, status=503}   POST /_fake/stream/clear
  POST /_fake/stream/burst {count, prefix, eventType}  (events sent from a thread; for make bench)
  GET  /_fake/stream/count -> {acks, success, pending, live, conns}
  GET  /_fake/stream -> {conns [{id, opened, closed, close_code, pings}], live, acks [{t, conn,
       messageId, code, message, data, raw, lost?}], opens [{t, refused}], pending}

Error codes chosen where the reference is silent (documented choices, not facts):
  missing access_token          oapi 41001 "缺少access_token参数"; topapi 88/sub_code "41001";
                                v1 400 AuthenticationFailed.MissingParameter
  revoked/unknown/wrong-kind    40014 "不合法的access_token" (topapi 88/"40014", v1 400 InvalidAuthentication)
  expired (time or control)     42001 "access_token超时"   (topapi 88/"42001", v1 400 InvalidAuthentication)
  wrong HTTP method             oapi/topapi 43001 "需要GET请求" / 43002 "需要POST请求"; v1 404 InvalidAction.NotFound
  unknown /v1.0 path            404 InvalidAction.NotFound
  missing/invalid parameter     40035 "缺少参数 X" / "不合法的参数 X" (topapi size outside 1..100 too);
                                v1: 400 "Missing<name>" ("<name> is mandatory for this action."),
                                non-JSON body 400 "Missingbody"
  /sns/gettoken bad creds       40089 "不合法的appid或appSecret"
  get_sns_token bad code        40079 "不存在的授权信息"
  sns/getuserinfo bad sns_token 40014 "不合法的sns_token" (expired: 42001)
  topapi/v2/user/getuserinfo    unknown/used/expired code 40078 "不存在的临时授权码"; the person is no
                                member (an external contact, or deleted since) 60121 "找不到该用户"
  getuserinfo_bycode            unknown accessKey 40089; bad signature 853004 "签名校验失败";
                                timestamp not ms or outside +-5 min 853004 "签名校验失败: timestamp超出有效期"
  userAccessToken               bad client 400 invalidClientIdOrSecret; unknown/used/expired code
                                400 invalidAuthCode; bad refresh token 400 invalidRefreshToken;
                                other grantType 400 invalidGrantType
  get_call_back, none stored    71007 "未注册回调"
  update_call_back, none stored behaves like register_call_back
  register: bad aes_key/token   40035; bad url 71011; unknown tag 71008; exists 71006;
                                check_url unreachable/timeout 71012; reply not the encrypted success 71009
  rate limit                    oapi/topapi 90018; v1 403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi
  unknown plain path            errcode 404 "请求的URI地址不存在" (HTTP 200); unknown topapi: errcode 22 "Invalid method"
  pages: unknown appid/client_id, bad redirect_uri, used loginTmpCode -> HTTP 400 HTML error page
  (class="error", data-error="...").

Behaviour notes: optional empty string fields of users (email, mobile, title,
...) are omitted from answers, as DingTalk does; department/get of the root
has no parent_id; tokens are 32 hex chars; tmp/auth codes live --code-ttl
seconds and are single use; the corp token and the sns app token are the same
string within their validity and each fetch extends it [e]; sns_token and user
tokens are new on each fetch.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import html
import http.client
import json
import os
import random
import secrets
import signal
import socket
import string
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque, namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ALNUM = string.ascii_letters + string.digits
MAX_BODY = 1 << 20
FAILED_PAGE = 200
BYCODE_WINDOW_MS = 5 * 60 * 1000

OAPI, TOPAPI, V1, PAGE, CONTROL = "oapi", "topapi", "v1", "page", "control"

TOKEN_MESSAGES = {
    "40014": "不合法的access_token",
    "42001": "access_token超时",
    "41001": "缺少access_token参数",
}
QPS_MESSAGE = "当前应用调用该接口的QPS超过限制,请稍后重试"
QPS_V1_CODE = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
# IP-level throttling as an HTML page [h.1, h.3]: the gateway's deny page,
# whose script carries the same "punish" settings as the JSON form.
THROTTLE_PAGE = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>访问被拒绝</title></head>\n"
                 "<body><div id=\"container\"><h1>访问被拒绝</h1><p>您的访问过于频繁，请稍后再试。</p></div>\n"
                 "<script>window._config_ = {\"action\":\"deny\",\"source\":\"x5\",\"punish\":\"deny\","
                 "\"wait\":5};</script></body></html>\n")

CALLBACK_TAGS = {
    "user_add_org", "user_modify_org", "user_leave_org", "user_active_org",
    "org_admin_add", "org_admin_remove", "org_dept_create", "org_dept_modify",
    "org_dept_remove", "org_remove", "org_change", "label_user_change",
    "label_conf_add", "label_conf_modify", "label_conf_del",
    "bpms_instance_change", "bpms_task_change", "check_in",
    "attendance_check_record", "attendance_schedule_change",
    "attendance_overtime_duration", "meetingroom_book", "meetingroom_room_info",
}
CALLBACK_TAG_PREFIXES = ("edu_", "chat_")


def now_ms():
    return int(time.time() * 1000)


def random_alnum(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def top_request_id():
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(13))


def v1_request_id():
    return str(uuid.uuid4()).upper()


def const_eq(a, b):
    return hmac.compare_digest(str(a).encode(), str(b).encode())


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def add_query(url, **params):
    """Append params to url (before any fragment), percent-encoding values."""
    base, _, frag = url.partition("#")
    sep = "&" if "?" in base else "?"
    base += sep + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return base + ("#" + frag if frag else "")


def is_web_url(url):
    parts = urllib.parse.urlsplit(url or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# ---------------------------------------------------------------------------
# Callback crypto [a]
# ---------------------------------------------------------------------------

class CryptoError(Exception):
    """A failed check, with the DingTalk helper code of [a.9]."""

    def __init__(self, code, reason):
        super().__init__("%d: %s" % (code, reason))
        self.code = code
        self.reason = reason


class CallbackCrypto:
    """The event-push envelope: AES-256-CBC, IV = key[:16], PKCS#7 to 32 bytes,
    random16 || be32(len) || msg || receiver, SHA-1 signature over sorted strings."""

    BLOCK = 32
    TAMPERS = ("signature", "base64", "padding", "length", "receiver", "blocklen", "utf8")

    def __init__(self, token, aes_key, receiver):
        self.token = token
        self.key = self.derive_key(aes_key)
        self.receiver = receiver

    @staticmethod
    def derive_key(aes_key):
        if len(aes_key) != 43 or any(c not in ALNUM for c in aes_key):
            raise CryptoError(900004, "aes_key must be 43 characters of [A-Za-z0-9]")
        # Lenient decode: the last 2 bits of the 43rd character are discarded [a.1].
        return base64.b64decode(aes_key + "=")

    @staticmethod
    def sign(token, timestamp, nonce, encrypt):
        joined = "".join(sorted([token, timestamp, nonce, encrypt]))
        return hashlib.sha1(joined.encode("utf-8")).hexdigest()

    def _cipher(self):
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, message, random16=None, tamper=None):
        """Return the base64 'encrypt' string; tamper breaks exactly one thing."""
        msg = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        rnd = (random16 if random16 is not None else random_alnum(16))
        rnd = rnd.encode("utf-8") if isinstance(rnd, str) else bytes(rnd)
        if len(rnd) != 16:
            raise ValueError("random16 must be 16 bytes")
        receiver = self.receiver.encode("utf-8")
        length = len(msg)
        if tamper == "length":
            length = len(msg) + len(receiver) + 64
        elif tamper == "receiver":
            receiver = b"dingwrongreceiver0"
        elif tamper == "utf8":
            msg = b"\xff" + msg[1:] if msg else b"\xff"
            length = len(msg)
        plain = rnd + struct.pack(">I", length) + msg + receiver
        pad = self.BLOCK - len(plain) % self.BLOCK
        plain += bytes([pad]) * pad
        if tamper == "padding":
            plain = plain[:-1] + b"\x00"
        enc = self._cipher().encryptor()
        raw = enc.update(plain) + enc.finalize()
        if tamper == "blocklen":
            raw = raw[:-5]
        text = base64.b64encode(raw).decode("ascii")
        if tamper == "base64":
            text = text[:8] + "*" + text[9:]
        return text

    def open(self, encrypt):
        """Decrypt and return (message, receiver_id) without checking the receiver."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError(900008, "encrypt is not valid base64")
        if not raw or len(raw) % 16:
            raise CryptoError(900008, "ciphertext length %d is not a positive multiple of 16" % len(raw))
        dec = self._cipher().decryptor()
        plain = dec.update(raw) + dec.finalize()
        pad = plain[-1]
        if pad < 1 or pad > self.BLOCK or pad > len(plain) - 20:
            raise CryptoError(900009, "bad padding value %d" % pad)
        (msg_len,) = struct.unpack(">I", plain[16:20])
        if 20 + msg_len > len(plain) - pad:
            raise CryptoError(900009, "message length %d overflows the plaintext" % msg_len)
        try:
            msg = plain[20:20 + msg_len].decode("utf-8")
            receiver = plain[20 + msg_len:len(plain) - pad].decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError(900009, "message is not UTF-8")
        return msg, receiver

    def decrypt(self, encrypt):
        msg, receiver = self.open(encrypt)
        if receiver != self.receiver:
            raise CryptoError(900010, "receiver id %r does not match %r" % (receiver, self.receiver))
        return msg

    def envelope(self, message, timestamp=None, nonce=None, random16=None, tamper=None):
        """The signed envelope as DingTalk's reply JSON keys (msg_signature, timeStamp, nonce, encrypt)."""
        timestamp = str(timestamp if timestamp is not None else now_ms())
        nonce = nonce if nonce is not None else random_alnum(8)
        encrypt = self.encrypt(message, random16, tamper)
        sig = self.sign(self.token, timestamp, nonce, encrypt)
        if tamper == "signature":
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        return {"msg_signature": sig, "timeStamp": timestamp, "nonce": nonce, "encrypt": encrypt}

    def check_reply(self, status, text):
        """(ok, reason): is this an HTTP answer DingTalk accepts as 'success' [a.8]?"""
        if status != 200:
            return False, "HTTP status %s" % status
        try:
            obj = json.loads(text)
        except ValueError:
            return False, "reply is not JSON"
        if not isinstance(obj, dict):
            return False, "reply is not a JSON object"
        for key in ("msg_signature", "timeStamp", "nonce", "encrypt"):
            if not isinstance(obj.get(key), str):
                return False, "reply field %s missing or not a string" % key
        want = self.sign(self.token, obj["timeStamp"], obj["nonce"], obj["encrypt"])
        if not const_eq(want, obj["msg_signature"]):
            return False, "reply signature does not verify"
        try:
            msg = self.decrypt(obj["encrypt"])
        except CryptoError as e:
            return False, "reply does not decrypt: %s" % e
        if msg != "success":
            return False, "reply decrypts to %r, not 'success'" % msg
        return True, "ok"


def sns_signature(app_secret, timestamp):
    """base64(HMAC-SHA256(key=appSecret, msg=timestamp)) [c.4]."""
    mac = hmac.new(app_secret.encode("utf-8"), str(timestamp).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


_NO_PROXY_OPENER = None


def _opener():
    global _NO_PROXY_OPENER
    if _NO_PROXY_OPENER is None:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None
        _NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    return _NO_PROXY_OPENER


def push_envelope(crypto, url, plaintext, *, timestamp=None, nonce=None, random16=None,
                  tamper=None, sigparam="signature", tsparam="timestamp", timeout=5.0,
                  extra_body=None):
    """POST an encrypted event to url the way DingTalk does [a.7]; check the reply [a.8]."""
    env = crypto.envelope(plaintext, timestamp, nonce, random16, tamper)
    query = urllib.parse.urlencode([(sigparam, env["msg_signature"]), (tsparam, env["timeStamp"]),
                                    ("nonce", env["nonce"])])
    body_obj = {"encrypt": env["encrypt"]}
    body_obj.update(extra_body or {})
    body = dumps(body_obj)
    out = {"status": 0, "body": "", "elapsed_ms": 0, "reply_ok": False, "reply_error": "",
           "content_type": "", "query": query, "sent_body": body, "encrypt": env["encrypt"],
           "signature": env["msg_signature"], "timestamp": env["timeStamp"], "nonce": env["nonce"]}
    full = url + ("&" if "?" in url else "?") + query
    req = urllib.request.Request(full, data=body.encode("utf-8"), method="POST",
                                 headers={"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with _opener().open(req, timeout=timeout) as resp:
            out["status"], raw = resp.status, resp.read()
            out["content_type"] = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        out["status"], raw = e.code, e.read()
        out["content_type"] = e.headers.get("Content-Type", "") if e.headers else ""
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        out["elapsed_ms"] = int((time.monotonic() - start) * 1000)
        out["reply_error"] = "unreachable: %s" % (getattr(e, "reason", None) or e)
        return out
    out["elapsed_ms"] = int((time.monotonic() - start) * 1000)
    out["body"] = raw.decode("utf-8", "replace")
    out["reply_ok"], out["reply_error"] = crypto.check_reply(out["status"], out["body"])
    if out["reply_ok"]:
        out["reply_error"] = ""
    return out


# ---------------------------------------------------------------------------
# Corp model
# ---------------------------------------------------------------------------

DEFAULT_APPS = {"appkey": "dingappkey001", "appsecret": "appsecret001", "agent_id": 1001,
                "sns_appid": "dingoasnsapp001", "sns_appsecret": "snssecret001"}
DEFAULT_CALLBACK = {"token": "tok123456", "aes_key": "dingauthFakeAesKey0123456789abcdefghijklmno"}

USER_DEFAULTS = {
    "unionid": None, "name": None, "title": "", "job_number": "", "email": "", "mobile": "",
    "dept_id_list": [1], "admin": False, "active": True, "boss": False, "avatar": "",
    "telephone": "", "work_place": "", "remark": "", "org_email": "", "hired_date": None,
    "manager_userid": "", "state_code": "86", "hide_mobile": False, "senior": False,
    "real_authed": True, "exclusive_account": False, "extension": "", "leader_in_dept": [],
    "role_list": [],
}
OPTIONAL_STRINGS = ("title", "job_number", "email", "mobile", "telephone", "work_place", "remark",
                    "org_email", "manager_userid", "extension")


def default_corp():
    return {
        "corp_id": "dingcorp0001",
        "apps": dict(DEFAULT_APPS),
        "callback": dict(DEFAULT_CALLBACK),
        "departments": [
            {"dept_id": 1, "name": "Demo Co", "parent_id": 0},
            {"dept_id": 2, "name": "研发部 R&D", "parent_id": 1},
            {"dept_id": 3, "name": "销售部 Sales", "parent_id": 1},
            {"dept_id": 4, "name": "平台组", "parent_id": 2},
            {"dept_id": 5, "name": "前端组", "parent_id": 2},
            {"dept_id": 6, "name": "华东销售", "parent_id": 3},
        ],
        "users": [
            {"userid": "u001", "unionid": "un001", "name": "张三", "title": "CEO", "job_number": "E001",
             "email": "zhangsan@demo.example", "mobile": "13800000001", "dept_id_list": [1],
             "admin": True, "active": True, "boss": True},
            {"userid": "u002", "unionid": "un002", "name": "李四", "title": "工程师", "job_number": "E002",
             "email": "lisi@demo.example", "mobile": "13800000002", "dept_id_list": [4, 6],
             "admin": False, "active": True, "boss": False},
            {"userid": "u003", "unionid": "un003", "name": "王五", "title": "Frontend Engineer",
             "job_number": "E003", "email": "", "mobile": "13800000003", "dept_id_list": [5],
             "admin": False, "active": True, "boss": False},
            {"userid": "u004", "unionid": "un004", "name": "<script>alert(\"x\")</script> O'Hara & \"Q\"",
             "title": "Sales <b>Lead</b>", "job_number": "E004", "email": "ohara@demo.example",
             "mobile": "13800000004", "dept_id_list": [6], "admin": False, "active": True, "boss": False},
            {"userid": "u005", "unionid": "un005", "name": "赵六", "title": "实习生", "job_number": "E005",
             "email": "", "mobile": "13800000005", "dept_id_list": [4], "admin": False,
             "active": False, "boss": False},
            {"userid": "u006", "unionid": "un006", "name": "Alice Smith", "title": "Engineer",
             "job_number": "E006", "email": "alice@demo.example", "mobile": "13800000006",
             "dept_id_list": [2], "admin": False, "active": True, "boss": False},
        ],
        "external": [{"unionid": "unext1", "name": "Outsider"}],
    }


SURNAMES = "张王李赵刘陈杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞宇浩然子轩梓涵一诺欣怡晨"
DEPT_WORDS = ["研发", "产品", "设计", "测试", "运维", "销售", "市场", "财务", "人事", "法务",
              "客服", "采购", "物流", "数据", "安全", "平台", "算法", "前端", "后端", "移动"]


def parse_generate(spec):
    params = {"depts": 20, "users": 300, "depth": 3, "seed": 1}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, value = item.partition("=")
        if key not in params or not value.lstrip("-").isdigit():
            raise ValueError("bad --generate item %r (want depts=N,users=M,depth=D,seed=S)" % item)
        params[key] = int(value)
    if params["depth"] < 1 or params["depts"] < params["depth"] + 1 or params["users"] < 1:
        raise ValueError("--generate needs depth >= 1, depts >= depth+1, users >= 1")
    return params


def generate_corp(spec):
    """A deterministic corp: N departments (tree depth >= D below the root), M users,
    some departments with more than 100 members, ~10% of users in 2-3 departments."""
    p = parse_generate(spec)
    rng = random.Random(p["seed"])
    corp = default_corp()
    corp["departments"] = [{"dept_id": 1, "name": "Generated Co %d" % p["seed"], "parent_id": 0}]
    depth = {1: 0}
    next_id = 2

    def add_dept(parent):
        nonlocal next_id
        dept_id = next_id
        next_id += 1
        name = "%s%s %d" % (rng.choice(DEPT_WORDS), rng.choice(["部", "组", "中心", "室"]), dept_id)
        corp["departments"].append({"dept_id": dept_id, "name": name, "parent_id": parent})
        depth[dept_id] = depth[parent] + 1
        return dept_id

    parent = 1
    for _ in range(p["depth"]):                      # one chain guarantees the depth
        parent = add_dept(parent)
    while len(corp["departments"]) < p["depts"]:
        candidates = [d for d in depth if depth[d] < p["depth"] + 1]
        add_dept(rng.choice(candidates))

    dept_ids = sorted(depth)
    non_root = dept_ids[1:]
    n_users = p["users"]
    big_share = int(n_users * 0.6)
    n_big = max(1, min(3, big_share // 120))
    big = rng.sample(non_root, min(n_big, len(non_root)))
    primary = []
    for i in range(n_users):
        if i < big_share:
            primary.append(big[i % len(big)])
        else:
            primary.append(rng.choice(dept_ids))
    rng.shuffle(primary)

    users = []
    for i in range(n_users):
        userid = "g%05d" % (i + 1)
        depts = [primary[i]]
        if rng.random() < 0.10 and len(dept_ids) > 2:
            extra = rng.sample([d for d in dept_ids if d != primary[i]], rng.choice([1, 2]))
            depts += extra
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))
        if i == 2:
            name = "<img src=x onerror=alert(1)> O'Brien & \"Co\""
        users.append({
            "userid": userid, "unionid": "gu%016x" % rng.getrandbits(64), "name": name,
            "title": rng.choice(["工程师", "经理", "Engineer", "Designer", ""]),
            "job_number": "G%05d" % (i + 1),
            "email": "%s@gen.example" % userid if rng.random() < 0.8 else "",
            "mobile": "139%08d" % (i + 1), "dept_id_list": depts,
            "admin": i == 0, "active": rng.random() < 0.95 or i == 0, "boss": i == 0,
        })
    corp["users"] = users
    corp["external"] = [{"unionid": "unext1", "name": "Outsider"},
                        {"unionid": "unext2", "name": "外部访客"}]
    return corp


def normalize_user(u):
    if not isinstance(u, dict) or not isinstance(u.get("userid"), str) or not u["userid"]:
        raise ValueError("a user needs a non-empty string userid")
    out = {"userid": u["userid"]}
    for key, default in USER_DEFAULTS.items():
        value = u.get(key, default)
        out[key] = json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value
    out["unionid"] = out["unionid"] or "un_" + u["userid"]
    out["name"] = out["name"] if out["name"] is not None else u["userid"]
    out["dept_id_list"] = [int(d) for d in out["dept_id_list"]]
    for key in u:
        if key not in out:
            out[key] = u[key]
    return out


def normalize_dept(d):
    if not isinstance(d, dict) or "dept_id" not in d:
        raise ValueError("a department needs dept_id")
    out = {"dept_id": int(d["dept_id"]), "name": str(d.get("name", "dept %s" % d["dept_id"])),
           "parent_id": int(d.get("parent_id", 1 if int(d["dept_id"]) != 1 else 0)),
           "order": int(d.get("order", d["dept_id"])),
           "create_dept_group": bool(d.get("create_dept_group", False)),
           "auto_add_user": bool(d.get("auto_add_user", False)),
           "hide_dept": bool(d.get("hide_dept", False)),
           "outer_dept": bool(d.get("outer_dept", False)),
           "dept_manager_userid_list": list(d.get("dept_manager_userid_list", []))}
    for key in d:
        if key not in out:
            out[key] = d[key]
    return out


def normalize_corp(c):
    if not isinstance(c, dict) or not c.get("corp_id"):
        raise ValueError("corp needs corp_id")
    apps = dict(DEFAULT_APPS)
    apps.update(c.get("apps") or {})
    callback = dict(DEFAULT_CALLBACK)
    callback.update(c.get("callback") or {})
    CallbackCrypto.derive_key(callback["aes_key"])
    depts = [normalize_dept(d) for d in c.get("departments") or [{"dept_id": 1, "name": "Corp"}]]
    if not any(d["dept_id"] == 1 for d in depts):
        raise ValueError("corp needs the root department 1")
    external = []
    for e in c.get("external") or []:
        if not e.get("unionid"):
            raise ValueError("an external person needs a unionid")
        external.append({"unionid": e["unionid"], "name": e.get("name", e["unionid"])})
    return {"corp_id": c["corp_id"], "apps": apps, "callback": callback, "departments": depts,
            "users": [normalize_user(u) for u in c.get("users") or []], "external": external}


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class ApiError(Exception):
    """A business error; the dispatcher renders it in the family's shape."""

    def __init__(self, errcode, errmsg, *, v1_status=400, v1_code=None, sub_code=None,
                 sub_msg=None, rate_limited=False):
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.v1_status = v1_status
        self.v1_code = v1_code
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.rate_limited = rate_limited


class TokenError(Exception):
    """Token rejected: sub_code "40014" (invalid), "42001" (expired), "41001" (missing)."""

    def __init__(self, sub_code, message=None):
        super().__init__(sub_code)
        self.sub_code = sub_code
        self.message = message or TOKEN_MESSAGES.get(sub_code, "access_token错误")


def rate_limit_error():
    return ApiError(90018, QPS_MESSAGE, v1_status=403, v1_code=QPS_V1_CODE, rate_limited=True)


Token = namedtuple("Token", "value kind owner unionid")
Code = namedtuple("Code", "kind unionid app expires_at")


class CorpState:
    """Everything DingTalk knows about the corp, under one lock: directory,
    tokens, login codes, the callback registration and the failed-push queue."""

    def __init__(self, corp, token_ttl=7200, code_ttl=300):
        self.lock = threading.RLock()
        self.corp = normalize_corp(corp)
        self.token_ttl = token_ttl
        self.code_ttl = code_ttl
        self._tokens = {}           # value -> [Token, expires_at, invalidated]
        self._current = {}          # (kind, owner) -> value of the reusable app token
        self._codes = {}            # code -> Code
        self._persistent = {}       # persistent_code -> (app, unionid)
        self.revoked = False
        self.callback = None        # the register_call_back registration
        self.failed = deque()
        self.failed_shape = "nested"
        self._idx = None            # lookups by id, rebuilt after any change

    def _index(self):
        """{"userid": {}, "unionid": {}, "dept": {}, "members": {}, "children": {}}."""
        if self._idx is None:
            idx = {"userid": {}, "unionid": {}, "dept": {}, "members": {}, "children": {}}
            for u in self.corp["users"]:
                idx["userid"][u["userid"]] = u
                idx["unionid"].setdefault(u["unionid"], u)
                for d in u["dept_id_list"]:
                    idx["members"].setdefault(d, []).append(u)
            for d in self.corp["departments"]:
                idx["dept"][d["dept_id"]] = d
                if d["parent_id"] != d["dept_id"]:
                    idx["children"].setdefault(d["parent_id"], []).append(d)
            for kids in idx["children"].values():
                kids.sort(key=lambda d: (d["order"], d["dept_id"]))
            self._idx = idx
        return self._idx

    def _changed(self):
        self._idx = None

    # -- directory -----------------------------------------------------------
    @property
    def apps(self):
        return self.corp["apps"]

    def user(self, userid):
        with self.lock:
            return self._index()["userid"].get(userid)

    def user_by_unionid(self, unionid):
        with self.lock:
            return self._index()["unionid"].get(unionid)

    def person(self, unionid):
        """A corp member or an external DingTalk user: (kind, record) or (None, None)."""
        with self.lock:
            u = self.user_by_unionid(unionid)
            if u:
                return "member", u
            e = next((e for e in self.corp["external"] if e["unionid"] == unionid), None)
            return ("external", e) if e else (None, None)

    def dept(self, dept_id):
        with self.lock:
            return self._index()["dept"].get(dept_id)

    def children(self, dept_id):
        with self.lock:
            return list(self._index()["children"].get(dept_id, []))

    def members(self, dept_id):
        with self.lock:
            return list(self._index()["members"].get(dept_id, []))

    def subtree(self, dept_id):
        with self.lock:
            out, todo = [], [dept_id]
            while todo:
                d = todo.pop()
                out.append(d)
                todo.extend(c["dept_id"] for c in self.children(d))
            return out

    def put_user(self, record):
        user = normalize_user(record)
        with self.lock:
            for d in user["dept_id_list"]:
                if not self.dept(d):
                    raise ValueError("department %d does not exist" % d)
            self._changed()
            users = self.corp["users"]
            for i, u in enumerate(users):
                if u["userid"] == user["userid"]:
                    users[i] = user
                    return user
            users.append(user)
            return user

    def delete_user(self, userid):
        with self.lock:
            self._changed()
            before = len(self.corp["users"])
            self.corp["users"] = [u for u in self.corp["users"] if u["userid"] != userid]
            return len(self.corp["users"]) != before

    def put_dept(self, record):
        dept = normalize_dept(record)
        with self.lock:
            if dept["dept_id"] != 1 and not self.dept(dept["parent_id"]):
                raise ValueError("parent department %d does not exist" % dept["parent_id"])
            self._changed()
            depts = self.corp["departments"]
            for i, d in enumerate(depts):
                if d["dept_id"] == dept["dept_id"]:
                    depts[i] = dept
                    return dept
            depts.append(dept)
            return dept

    def delete_dept(self, dept_id):
        with self.lock:
            if dept_id == 1:
                raise ValueError("the root department cannot be deleted")
            if not self.dept(dept_id):
                return False
            if self.children(dept_id):
                raise ValueError("department %d still has sub-departments" % dept_id)
            self._changed()
            self.corp["departments"] = [d for d in self.corp["departments"] if d["dept_id"] != dept_id]
            for u in self.corp["users"]:
                u["dept_id_list"] = [d for d in u["dept_id_list"] if d != dept_id]
            return True

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.corp))

    def openid(self, app, unionid):
        return "oid" + hashlib.sha1(("%s:%s" % (app, unionid)).encode()).hexdigest()[:24]

    @staticmethod
    def ding_id(unionid):
        return "$:LWCP_v1:$" + base64.b64encode(hashlib.sha1(unionid.encode()).digest()[:12]).decode()

    # -- tokens ------------------------------------------------------------------
    def issue_app_token(self, kind, owner):
        """The reusable app token: the same string while valid, each fetch extends it [e]."""
        with self.lock:
            now = time.time()
            value = self._current.get((kind, owner))
            slot = self._tokens.get(value)
            if slot and not slot[2] and slot[1] > now:
                slot[1] = now + self.token_ttl
                return value
            return self._new_token(kind, owner, None, current=True)

    def issue_token(self, kind, owner, unionid, ttl=None):
        with self.lock:
            return self._new_token(kind, owner, unionid, ttl=ttl)

    def _new_token(self, kind, owner, unionid, current=False, ttl=None):
        value = secrets.token_hex(16)
        self._tokens[value] = [Token(value, kind, owner, unionid),
                               time.time() + (ttl or self.token_ttl), False]
        if current:
            self._current[(kind, owner)] = value
        return value

    def check_token(self, value, kinds):
        """Return the Token or raise TokenError."""
        if not value:
            raise TokenError("41001")
        with self.lock:
            slot = self._tokens.get(value)
            if slot is None or slot[0].kind not in kinds or self.revoked:
                raise TokenError("40014")
            if slot[2] or slot[1] <= time.time():
                raise TokenError("42001")
            return slot[0]

    def take_token(self, value, kind):
        """Consume a single-use token (refresh tokens); None when not usable."""
        with self.lock:
            slot = self._tokens.get(value)
            if not slot or slot[0].kind != kind or slot[2] or slot[1] <= time.time() or self.revoked:
                return None
            slot[2] = True
            return slot[0]

    def expire_tokens(self):
        with self.lock:
            for slot in self._tokens.values():
                slot[2] = True
            return len(self._tokens)

    def list_tokens(self):
        with self.lock:
            now = time.time()
            return [{"token": t.value, "kind": t.kind, "owner": t.owner, "unionid": t.unionid,
                     "expires_in": round(exp - now, 1), "invalidated": inval}
                    for t, exp, inval in self._tokens.values()]

    # -- login codes -------------------------------------------------------------
    def mint_code(self, kind, unionid, app=None):
        with self.lock:
            code = secrets.token_hex(16)
            self._codes[code] = Code(kind, unionid, app, time.time() + self.code_ttl)
            return code

    def take_code(self, kind, code, app=None):
        """Single use: return the Code and forget it, or None."""
        with self.lock:
            c = self._codes.get(code or "")
            if not c or c.kind != kind or (c.app and app and c.app != app):
                return None
            del self._codes[code]
            return c if c.expires_at > time.time() else None

    def persistent_code(self, app, unionid):
        with self.lock:
            code = secrets.token_hex(16)
            self._persistent[code] = (app, unionid)
            return code

    def lookup_persistent(self, code):
        with self.lock:
            return self._persistent.get(code or "")

    # -- callback failed list ------------------------------------------------------
    def add_failed(self, tag, event_time, data):
        with self.lock:
            self.failed.append({"call_back_tag": tag, "event_time": event_time, "data": data})
            return len(self.failed)

    def take_failed(self):
        with self.lock:
            page = [self.failed.popleft() for _ in range(min(FAILED_PAGE, len(self.failed)))]
            items = []
            for e in page:
                item = {"call_back_tag": e["call_back_tag"], "event_time": e["event_time"]}
                if self.failed_shape == "flat":
                    item.update(e["data"])
                else:
                    item[e["call_back_tag"]] = e["data"]
                items.append(item)
            return items, bool(self.failed)


class RateLimiter:
    """Per (token, path) sliding one-second window; at most qps accepted requests."""

    def __init__(self, qps):
        self.qps = qps
        self.lock = threading.Lock()
        self.windows = {}

    def allow(self, key):
        with self.lock:
            if not self.qps:
                return True
            now = time.monotonic()
            window = self.windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.qps:
                return False
            window.append(now)
            return True


class FaultTable:
    FAULT_KINDS = ("invalid_token", "errcode", "rate_limit", "http500", "http504", "slow", "garbage",
                   "throttle_html", "drop")

    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []

    def add(self, spec):
        if spec.get("kind") not in self.FAULT_KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(self.FAULT_KINDS))
        if not isinstance(spec.get("path"), str) or not spec["path"]:
            raise ValueError("fault needs a path (or \"*\")")
        fault = dict(spec)
        fault["count"] = int(spec.get("count", 1))
        fault["delay_ms"] = int(spec.get("delay_ms", 1000 if spec["kind"] == "slow" else 0))
        if fault["count"] < 1:
            raise ValueError("count must be >= 1")
        if "match" in spec and not isinstance(spec["match"], dict):
            raise ValueError("match must be an object")
        with self.lock:
            self.faults.append(fault)
        return fault

    @staticmethod
    def matches(fault, req):
        for name, want in (fault.get("match") or {}).items():
            got = req.json.get(name) if isinstance(req.json, dict) else None
            if got is None:
                got = req.query.get(name)
            if got is None or str(got) != str(want):
                return False
        return True

    def take(self, path, req=None):
        with self.lock:
            for f in self.faults:
                if f["path"] in ("*", path) and (req is None or self.matches(f, req)):
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                    return dict(f)
            return None

    def clear(self):
        with self.lock:
            n = len(self.faults)
            self.faults = []
            return n

    def list(self):
        with self.lock:
            return [dict(f) for f in self.faults]


class Recorder:
    """The request log and counters the control API reports."""

    def __init__(self, log_file=None):
        self.lock = threading.Lock()
        self.entries = []
        self.seq = 0
        self.connections = 0
        self.api_connections = set()
        self.requests = 0
        self.by_path = {}
        self.log_file = log_file

    def new_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.entries.append(entry)
            if len(self.entries) > 100000:
                del self.entries[:10000]
            self.requests += 1
            self.api_connections.add(entry["conn"])
            self.by_path[entry["path"]] = self.by_path.get(entry["path"], 0) + 1
            if self.log_file:
                self.log_file.write(dumps(entry) + "\n")
                self.log_file.flush()

    def query(self, path=None, since=0):
        with self.lock:
            return [e for e in self.entries
                    if (path is None or e["path"] == path) and e["seq"] > since]

    def clear(self):
        with self.lock:
            self.entries = []

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "api_connections": len(self.api_connections),
                    "requests": self.requests, "by_path": dict(self.by_path)}


# ---------------------------------------------------------------------------
# Requests and replies
# ---------------------------------------------------------------------------

class Request:
    def __init__(self, method, target, headers, body, conn):
        self.t = time.time()
        self.method = method
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path or "/"
        self.raw_query = parts.query
        self.query_multi = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.query = {k: v[0] for k, v in self.query_multi.items()}
        self.headers = headers
        self.body = body
        self.conn = conn
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self.is_json = ctype == "application/json" or ctype.endswith("+json")
        self.json = None
        self.json_error = False
        if body:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                self.json_error = True
        self.form = {}
        if body and ctype == "application/x-www-form-urlencoded":
            self.form = {k: v[0] for k, v in
                         urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def body_params(self):
        """Parameters from the body as DingTalk would read them: JSON only with a JSON content type."""
        if self.is_json:
            if self.json_error:
                raise ApiError(40035, "不合法的参数: 请求体不是合法的JSON", v1_code="InvalidParameter")
            return self.json if isinstance(self.json, dict) else {}
        return dict(self.form)

    def header(self, name):
        return self.headers.get(name)

    def origin(self):
        return "http://" + (self.headers.get("Host") or "127.0.0.1")


class Reply:
    def __init__(self, status=200, body=b"", ctype="application/json", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.ctype = ctype
        self.headers = headers or []
        self.errcode = None
        self.sub_code = None
        self.rate_limited = False
        self.drop = False
        self.fault = None


def json_reply(obj, status=200, ctype="application/json"):
    reply = Reply(status, dumps(obj), ctype)
    if isinstance(obj, dict):
        reply.errcode = obj.get("errcode", obj.get("code") if status >= 400 else None)
        reply.sub_code = obj.get("sub_code")
    return reply


def html_reply(body, status=200):
    return Reply(status, body, "text/html; charset=utf-8")


def redirect(url):
    reply = Reply(302, b"", "text/html; charset=utf-8", [("Location", url)])
    return reply


Route = namedtuple("Route", "method family auth handler")


def family_of(path):
    if path.startswith("/_fake/"):
        return CONTROL
    if path.startswith("/topapi/"):
        return TOPAPI
    if path.startswith("/v1.0/"):
        return V1
    if path in ("/ddlogin.js", "/dingtalk.open.js") or path.startswith(("/login/", "/connect/", "/oauth2/")):
        return PAGE
    return OAPI


def render_error(family, err):
    """An ApiError or TokenError in the shape of that API family."""
    if isinstance(err, TokenError):
        if family == TOPAPI:
            return json_reply({"errcode": 88, "sub_code": err.sub_code, "sub_msg": err.message,
                               "errmsg": "ding talk error[subcode=%s,submsg=%s]" % (err.sub_code, err.message),
                               "request_id": top_request_id()})
        if family == V1:
            code = "AuthenticationFailed.MissingParameter" if err.sub_code == "41001" else "InvalidAuthentication"
            return json_reply({"code": code, "message": err.message, "requestid": v1_request_id()},
                              400, "application/json;charset=utf-8")
        return json_reply({"errcode": int(err.sub_code), "errmsg": err.message})
    if family == V1:
        reply = json_reply({"code": err.v1_code or str(err.errcode), "message": err.errmsg,
                            "requestid": v1_request_id()}, err.v1_status, "application/json;charset=utf-8")
    elif err.sub_code is not None:
        obj = {"errcode": err.errcode, "sub_code": str(err.sub_code), "sub_msg": err.sub_msg or err.errmsg,
               "errmsg": "ding talk error[subcode=%s,submsg=%s]" % (err.sub_code, err.sub_msg or err.errmsg)}
        if family == TOPAPI:
            obj["request_id"] = top_request_id()
        reply = json_reply(obj)
    else:
        obj = {"errcode": err.errcode, "errmsg": err.errmsg}
        if family == TOPAPI:
            obj["request_id"] = top_request_id()
        reply = json_reply(obj)
    reply.rate_limited = err.rate_limited
    return reply


def need(params, *names):
    for name in names:
        value = params.get(name)
        if value is None or value == "":
            raise ApiError(40035, "缺少参数 %s" % name, v1_code="Missing%s" % name)
    return [params[n] for n in names]


def need_v1(params, *names):
    for name in names:
        if params.get(name) in (None, ""):
            raise ApiError(40035, "%s is mandatory for this action." % name, v1_code="Missing%s" % name)
    return [params[n] for n in names]


def as_int(params, name, default=None):
    value = params.get(name, default)
    if value is None or value == "":
        raise ApiError(40035, "缺少参数 %s" % name)
    if isinstance(value, bool):
        raise ApiError(40035, "不合法的参数 %s" % name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(40035, "不合法的参数 %s" % name)


def error_page(message, *, embed=False, code="error"):
    script = ""
    if embed:
        script = ("<script>if (window.parent !== window) window.parent.postMessage("
                  "{errorMsg: %s}, \"*\");</script>" % js_literal(message))
    body = ("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>钉钉登录错误</title>"
            "</head><body><h1>钉钉登录 (fake)</h1><p class=\"error\" id=\"error\" data-error=\"%s\">%s</p>%s"
            "</body></html>\n" % (html.escape(code), html.escape(message), script))
    return html_reply(body, 400)


def js_literal(value):
    """JSON that is safe inside a <script> element."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# ---------------------------------------------------------------------------
# The application: routes and handlers
# ---------------------------------------------------------------------------

class FakeDingTalkApp:
    """Routes, handlers and the control API over one CorpState."""

    def __init__(self, corp, qps=20, token_ttl=7200, code_ttl=300, callback_timeout=5.0, log_file=None):
        self.state = CorpState(corp, token_ttl, code_ttl)
        self.limiter = RateLimiter(qps)
        self.faults = FaultTable()
        self.recorder = Recorder(log_file)
        self.callback_timeout = callback_timeout
        self.notifications = []     # work notifications sent [i.2]
        self.notify_tasks = 0
        self.notify_lock = threading.Lock()
        self.jsapi = {}             # the JSAPI stand-in's setting [i.1]
        self.routes = {
            # corp app token [e]
            "/gettoken": Route("GET", OAPI, None, self.gettoken),
            "/v1.0/oauth2/accessToken": Route("POST", V1, None, self.v1_access_token),
            # old sns login [c]
            "/sns/gettoken": Route("GET", OAPI, None, self.sns_gettoken),
            "/sns/get_persistent_code": Route("POST", OAPI, "sns_app", self.sns_get_persistent_code),
            "/sns/get_sns_token": Route("POST", OAPI, "sns_app", self.sns_get_sns_token),
            "/sns/getuserinfo": Route("GET", OAPI, None, self.sns_getuserinfo),
            "/sns/getuserinfo_bycode": Route("POST", OAPI, None, self.sns_getuserinfo_bycode),
            # OAuth2 login [d]
            "/v1.0/oauth2/userAccessToken": Route("POST", V1, None, self.v1_user_access_token),
            "/v1.0/contact/users/me": Route("GET", V1, "user", self.v1_users_me),
            # directory [f]
            "/topapi/user/getbyunionid": Route("POST", TOPAPI, "corp", self.top_getbyunionid),
            "/topapi/v2/user/get": Route("POST", TOPAPI, "corp", self.top_user_get),
            "/topapi/v2/user/list": Route("POST", TOPAPI, "corp", self.top_user_list),
            "/topapi/v2/department/listsub": Route("POST", TOPAPI, "corp", self.top_dept_listsub),
            "/topapi/v2/department/listsubid": Route("POST", TOPAPI, "corp", self.top_dept_listsubid),
            "/topapi/v2/department/get": Route("POST", TOPAPI, "corp", self.top_dept_get),
            # callback management [g]
            "/call_back/register_call_back": Route("POST", OAPI, "corp", self.cb_register),
            "/call_back/update_call_back": Route("POST", OAPI, "corp", self.cb_update),
            "/call_back/get_call_back": Route("GET", OAPI, "corp", self.cb_get),
            "/call_back/delete_call_back": Route("GET", OAPI, "corp", self.cb_delete),
            "/call_back/get_call_back_failed_result": Route("GET", OAPI, "corp", self.cb_failed),
            # work notifications [i.2]
            "/topapi/message/corpconversation/asyncsend_v2": Route("POST", TOPAPI, "corp",
                                                                   self.work_notify),
            # in-app login [i.1]
            "/topapi/v2/user/getuserinfo": Route("POST", TOPAPI, "corp", self.top_inapp_userinfo),
            "/dingtalk.open.js": Route("GET", PAGE, None, self.page_jsapi_js),
            # the QR stand-in [c.1, c.2, d.1]
            "/ddlogin.js": Route("GET", PAGE, None, self.page_ddlogin_js),
            "/login/qrcode.htm": Route("GET", PAGE, None, self.page_qrcode),
            "/login/pick": Route("POST", PAGE, None, self.page_login_pick),
            "/connect/oauth2/sns_authorize": Route("GET", PAGE, None, self.page_sns_authorize),
            "/connect/qrconnect": Route("GET", PAGE, None, self.page_sns_authorize),
            "/oauth2/auth": Route("GET", PAGE, None, self.page_oauth2_auth),
            "/oauth2/pick": Route("POST", PAGE, None, self.page_oauth2_pick),
        }
        self.control = {
            ("GET", "/_fake/log"): self.ctl_log,
            ("POST", "/_fake/log/clear"): self.ctl_log_clear,
            ("GET", "/_fake/stats"): self.ctl_stats,
            ("GET", "/_fake/fault"): lambda req, body: self.faults.list(),
            ("POST", "/_fake/fault"): self.ctl_fault,
            ("POST", "/_fake/fault/clear"): lambda req, body: {"cleared": self.faults.clear()},
            ("GET", "/_fake/tokens"): lambda req, body: self.state.list_tokens(),
            ("POST", "/_fake/tokens/expire"): lambda req, body: {"expired": self.state.expire_tokens()},
            ("POST", "/_fake/tokens/revoke_permanently"): self.ctl_revoke,
            ("POST", "/_fake/tokens/restore"): self.ctl_restore,
            ("POST", "/_fake/code"): self.ctl_code,
            ("POST", "/_fake/users"): self.ctl_put_user,
            ("POST", "/_fake/users/delete"): self.ctl_delete_user,
            ("POST", "/_fake/depts"): self.ctl_put_dept,
            ("POST", "/_fake/depts/delete"): self.ctl_delete_dept,
            ("GET", "/_fake/corp"): lambda req, body: self.state.snapshot(),
            ("GET", "/_fake/callback"): lambda req, body: self.state.callback,
            ("POST", "/_fake/callback"): self.ctl_set_callback,
            ("POST", "/_fake/push"): self.ctl_push,
            ("POST", "/_fake/encrypt"): self.ctl_encrypt,
            ("POST", "/_fake/decrypt"): self.ctl_decrypt,
            ("GET", "/_fake/failed"): self.ctl_failed_list,
            ("POST", "/_fake/failed"): self.ctl_failed_add,
            ("POST", "/_fake/failed/shape"): self.ctl_failed_shape,
            ("POST", "/_fake/qps"): self.ctl_qps,
            ("GET", "/_fake/notifications"): self.ctl_notifications,
            ("GET", "/_fake/jsapi"): lambda req, body: dict(self.jsapi),
            ("POST", "/_fake/jsapi"): self.ctl_jsapi,
        }

    @property
    def apps(self):
        return self.state.apps

    # -- dispatch ------------------------------------------------------------------
    def handle(self, req):
        """Answer one request; every non-control request is logged before it is answered."""
        family = family_of(req.path)
        if family == CONTROL:
            return self.handle_control(req)
        fault = self.faults.take(req.path, req)
        try:
            reply = self.apply_fault(req, family, fault) if fault else None
            if reply is None:
                reply = self.dispatch(req, family)
            if fault and fault["kind"] == "slow" and fault.get("after"):
                time.sleep(fault["delay_ms"] / 1000.0)
        except Exception as e:      # a bug in the fake: answer 500 and say so on stderr
            import traceback
            traceback.print_exc()
            reply = Reply(500, "fake_dingtalk internal error: %s" % e, "text/plain; charset=utf-8")
        if fault:
            reply.fault = fault["kind"]
        self.record(req, reply)
        return reply

    def dispatch(self, req, family):
        route = self.routes.get(req.path)
        if route is None:
            if family == TOPAPI:
                return json_reply({"errcode": 22, "errmsg": "Invalid method", "request_id": top_request_id()})
            if family == V1:
                return json_reply({"code": "InvalidAction.NotFound",
                                   "message": "Specified api is not found, please check your url and method.",
                                   "requestid": v1_request_id()}, 404, "application/json;charset=utf-8")
            if family == PAGE:
                return html_reply("<!DOCTYPE html><title>404</title><h1>404 Not Found</h1>\n", 404)
            return json_reply({"errcode": 404, "errmsg": "请求的URI地址不存在"})
        try:
            if req.method != route.method:
                if family == V1:
                    return json_reply({"code": "InvalidAction.NotFound",
                                       "message": "Specified api is not found, please check your url and method.",
                                       "requestid": v1_request_id()}, 404, "application/json;charset=utf-8")
                if family == PAGE:
                    return html_reply("<!DOCTYPE html><title>405</title><h1>405 Method Not Allowed</h1>\n", 405)
                if route.method == "GET":
                    raise ApiError(43001, "需要GET请求")
                raise ApiError(43002, "需要POST请求")
            token = None
            if family != PAGE:
                token_value = (req.header("x-acs-dingtalk-access-token") if family == V1
                               else req.query.get("access_token"))
                if not self.limiter.allow((self.rate_key(req, token_value), req.path)):
                    raise rate_limit_error()
                if route.auth:
                    token = self.state.check_token(token_value, {route.auth})
            result = route.handler(req, token)
        except (ApiError, TokenError) as err:
            return render_error(family, err)
        if isinstance(result, Reply):
            return result
        if family == TOPAPI:
            return json_reply({"errcode": 0, "errmsg": "ok", "result": result, "request_id": top_request_id()})
        if family == V1:
            return json_reply(result, 200, "application/json;charset=utf-8")
        obj = {"errcode": 0, "errmsg": "ok"}
        obj.update(result)
        return json_reply(obj)

    @staticmethod
    def rate_key(req, token_value):
        if token_value:
            return token_value
        for name in ("sns_token", "appkey", "appid", "accessKey"):
            if req.query.get(name):
                return req.query[name]
        if isinstance(req.json, dict):
            for name in ("clientId", "appKey"):
                if isinstance(req.json.get(name), str):
                    return req.json[name]
        return "-"

    def apply_fault(self, req, family, fault):
        """Return the faulty Reply, or None to answer normally (after any delay)."""
        if fault["delay_ms"] and not (fault["kind"] == "slow" and fault.get("after")):
            time.sleep(fault["delay_ms"] / 1000.0)
        kind = fault["kind"]
        shape = family if family in (OAPI, TOPAPI, V1) else OAPI
        if kind == "slow":
            return None
        if kind == "drop":
            reply = Reply(0)
            reply.drop = True
            return reply
        if kind == "http500":
            return Reply(500, "<html><body><h1>500 Internal Server Error</h1></body></html>\n",
                         "text/html; charset=utf-8")
        if kind == "http504":
            return Reply(504, "<html><body><center><h1>504 Gateway Time-out</h1></center>"
                         "</body></html>\n", "text/html; charset=utf-8")
        if kind == "throttle_html":
            reply = Reply(200, THROTTLE_PAGE, "text/html; charset=utf-8")
            reply.rate_limited = True
            return reply
        if kind == "garbage":
            return Reply(200, "<html>upstream gateway: this is not JSON {\n", "text/html; charset=utf-8")
        if kind == "invalid_token":
            return render_error(shape, TokenError(str(fault.get("sub_code") or "40014")))
        if kind == "rate_limit":
            return render_error(shape, rate_limit_error())
        # kind == "errcode"
        errcode = int(fault.get("errcode", 88 if fault.get("sub_code") else -1))
        err = ApiError(errcode, fault.get("errmsg") or ("系统繁忙" if errcode == -1 else "fault injected"),
                       v1_status=int(fault.get("status", 400)), v1_code=fault.get("code") or (
                           str(fault["sub_code"]) if fault.get("sub_code") else None),
                       sub_code=fault.get("sub_code"), sub_msg=fault.get("sub_msg"))
        return render_error(shape, err)

    def record(self, req, reply):
        self.recorder.record({
            "seq": 0, "t": req.t, "method": req.method, "path": req.path,
            "query": {k: (v[0] if len(v) == 1 else v) for k, v in req.query_multi.items()},
            "raw_query": req.raw_query,
            "json": req.json,
            "body": req.body.decode("utf-8", "replace")[:65536],
            "headers": {"content-type": req.header("Content-Type"),
                        "x-acs-dingtalk-access-token": req.header("x-acs-dingtalk-access-token"),
                        "authorization": req.header("Authorization")},
            "conn": req.conn,
            "status": None if reply.drop else reply.status,
            "errcode": reply.errcode, "sub_code": reply.sub_code,
            "rate_limited": reply.rate_limited, "fault": reply.fault,
        })

    # -- corp token [e] ------------------------------------------------------------
    def gettoken(self, req, token):
        appkey, secret = req.query.get("appkey"), req.query.get("appsecret")
        if not appkey or not secret:
            raise ApiError(40035, "缺少参数 corpid or appkey")
        if appkey != self.apps["appkey"] or not const_eq(secret, self.apps["appsecret"]):
            raise ApiError(40096, "不合法的appKey或appSecret")
        value = self.state.issue_app_token("corp", appkey)
        return {"access_token": value, "expires_in": self.state.token_ttl}

    def v1_access_token(self, req, token):
        params = self.v1_body(req)
        app_key, app_secret = need_v1(params, "appKey", "appSecret")
        if app_key != self.apps["appkey"] or not const_eq(app_secret, self.apps["appsecret"]):
            raise ApiError(400, "无效的clientId或者clientSecret", v1_code="invalidClientIdOrSecret")
        return {"accessToken": self.state.issue_app_token("corp", app_key), "expireIn": self.state.token_ttl}

    @staticmethod
    def v1_body(req):
        if not req.body or not req.is_json or req.json_error or not isinstance(req.json, dict):
            raise ApiError(400, "body is mandatory for this action.", v1_code="Missingbody")
        return req.json

    # -- sns login [c] -----------------------------------------------------------------
    def sns_gettoken(self, req, token):
        appid, secret = req.query.get("appid"), req.query.get("appsecret")
        if not appid or not secret:
            raise ApiError(40035, "缺少参数 appid or appsecret")
        if appid != self.apps["sns_appid"] or not const_eq(secret, self.apps["sns_appsecret"]):
            raise ApiError(40089, "不合法的appid或appSecret")
        return {"access_token": self.state.issue_app_token("sns_app", appid),
                "expires_in": self.state.token_ttl}

    def sns_get_persistent_code(self, req, token):
        (code,) = need(req.body_params(), "tmp_auth_code")
        c = self.state.take_code("tmp", code, token.owner)
        if not c:
            raise ApiError(40078, "不存在的临时授权码")
        return {"openid": self.state.openid(token.owner, c.unionid),
                "persistent_code": self.state.persistent_code(token.owner, c.unionid),
                "unionid": c.unionid}

    def sns_get_sns_token(self, req, token):
        openid, pcode = need(req.body_params(), "openid", "persistent_code")
        found = self.state.lookup_persistent(pcode)
        if not found or found[0] != token.owner or self.state.openid(found[0], found[1]) != openid:
            raise ApiError(40079, "不存在的授权信息")
        value = self.state.issue_token("sns_user", token.owner, found[1])
        return {"expires_in": self.state.token_ttl, "sns_token": value}

    def sns_getuserinfo(self, req, token):
        try:
            tok = self.state.check_token(req.query.get("sns_token"), {"sns_user"})
        except TokenError as e:
            if e.sub_code == "40014":
                raise TokenError("40014", "不合法的sns_token")
            raise
        kind, person = self.state.person(tok.unionid)
        info = self.user_info(tok.owner, tok.unionid, person)
        info = {"maskedMobile": self.masked_mobile(person), "nick": info["nick"], "openid": info["openid"],
                "unionid": tok.unionid, "dingId": info["dingId"]}
        corp_info = []
        if kind == "member":
            root = self.state.dept(1)
            corp_info.append({"corp_name": root["name"] if root else "", "is_auth": True,
                              "is_manager": bool(person.get("admin")), "rights_level": 100})
        return {"user_info": info, "corp_info": corp_info}

    def user_info(self, app, unionid, person):
        return {"nick": person["name"] if person else unionid, "unionid": unionid,
                "openid": self.state.openid(app, unionid), "main_org_auth_high_level": True,
                "dingId": self.state.ding_id(unionid)}

    @staticmethod
    def masked_mobile(person):
        mobile = (person or {}).get("mobile") or "13000000000"
        return mobile[:3] + "****" + mobile[-4:]

    def sns_getuserinfo_bycode(self, req, token):
        access_key, timestamp, signature = need(req.query, "accessKey", "timestamp", "signature")
        secrets_by_app = {self.apps["sns_appid"]: self.apps["sns_appsecret"],
                          self.apps["appkey"]: self.apps["appsecret"]}
        if access_key not in secrets_by_app:
            raise ApiError(40089, "不合法的accessKey")
        if not timestamp.isdigit() or abs(int(timestamp) - now_ms()) > BYCODE_WINDOW_MS:
            raise ApiError(853004, "签名校验失败: timestamp超出有效期")
        if not const_eq(signature, sns_signature(secrets_by_app[access_key], timestamp)):
            raise ApiError(853004, "签名校验失败")
        (code,) = need(req.body_params(), "tmp_auth_code")
        c = self.state.take_code("tmp", code, access_key)
        if not c:
            raise ApiError(40078, "不存在的临时授权码")
        kind, person = self.state.person(c.unionid)
        return {"user_info": self.user_info(access_key, c.unionid, person)}

    # -- OAuth2 login [d] ---------------------------------------------------------------
    def v1_user_access_token(self, req, token):
        params = self.v1_body(req)
        client_id, client_secret, grant = need_v1(params, "clientId", "clientSecret", "grantType")
        if client_id != self.apps["appkey"] or not const_eq(client_secret, self.apps["appsecret"]):
            raise ApiError(400, "无效的clientId或者clientSecret", v1_code="invalidClientIdOrSecret")
        if grant == "authorization_code":
            (code,) = need_v1(params, "code")
            c = self.state.take_code("oauth", code, client_id)
            if not c:
                raise ApiError(400, "不合法的临时授权码(不存在、已使用或已过期)", v1_code="invalidAuthCode")
            unionid = c.unionid
        elif grant == "refresh_token":
            (refresh,) = need_v1(params, "refreshToken")
            t = self.state.take_token(refresh, "refresh")
            if not t or t.owner != client_id:
                raise ApiError(400, "不合法的refreshToken", v1_code="invalidRefreshToken")
            unionid = t.unionid
        else:
            raise ApiError(400, "不支持的grantType: %s" % grant, v1_code="invalidGrantType")
        out = {"accessToken": self.state.issue_token("user", client_id, unionid),
               "refreshToken": self.state.issue_token("refresh", client_id, unionid, ttl=30 * 86400),
               "expireIn": self.state.token_ttl}
        kind, _ = self.state.person(unionid)
        if kind == "member":
            out["corpId"] = self.state.corp["corp_id"]
        return out

    def v1_users_me(self, req, token):
        kind, person = self.state.person(token.unionid)
        out = {"nick": person["name"] if person else token.unionid,
               "avatarUrl": (person or {}).get("avatar") or "https://static.example/avatar/%s.png" % token.unionid,
               "mobile": (person or {}).get("mobile", ""), "openId": self.state.openid(token.owner, token.unionid),
               "unionId": token.unionid, "email": (person or {}).get("email", ""),
               "stateCode": (person or {}).get("state_code", "86")}
        return {k: v for k, v in out.items() if v != ""}

    # -- directory [f] -------------------------------------------------------------------
    def top_getbyunionid(self, req, token):
        (unionid,) = need(req.body_params(), "unionid")
        user = self.state.user_by_unionid(unionid)
        if not user:
            raise ApiError(60121, "找不到该用户")
        return {"contact_type": 0, "userid": user["userid"]}

    def user_fields(self, u, full):
        out = {"userid": u["userid"], "unionid": u["unionid"], "name": u["name"], "avatar": u["avatar"],
               "state_code": u["state_code"]}
        if full:
            out["manager_userid"] = u["manager_userid"]
        out.update({"mobile": u["mobile"], "hide_mobile": u["hide_mobile"], "telephone": u["telephone"],
                    "job_number": u["job_number"], "title": u["title"], "email": u["email"],
                    "org_email": u["org_email"], "work_place": u["work_place"], "remark": u["remark"],
                    "dept_id_list": list(u["dept_id_list"]), "extension": u["extension"]})
        if u["hired_date"] is not None:
            out["hired_date"] = u["hired_date"]
        out.update({"active": u["active"], "admin": u["admin"], "boss": u["boss"],
                    "exclusive_account": u["exclusive_account"]})
        leaders = {x.get("dept_id"): bool(x.get("leader")) for x in u["leader_in_dept"]}
        if full:
            out["dept_order_list"] = [{"dept_id": d, "order": 176000000 + i}
                                      for i, d in enumerate(u["dept_id_list"])]
            out["leader_in_dept"] = [{"dept_id": d, "leader": leaders.get(d, False)} for d in u["dept_id_list"]]
            out["real_authed"] = u["real_authed"]
            out["senior"] = u["senior"]
            out["role_list"] = list(u["role_list"])
            out["union_emp_ext"] = {}
        for key in OPTIONAL_STRINGS:
            if out.get(key) == "":
                del out[key]
        return out

    def top_user_get(self, req, token):
        (userid,) = need(req.body_params(), "userid")
        user = self.state.user(userid)
        if not user:
            raise ApiError(60121, "找不到该用户")
        return self.user_fields(user, full=True)

    def top_user_list(self, req, token):
        params = req.body_params()
        dept_id, cursor, size = as_int(params, "dept_id"), as_int(params, "cursor"), as_int(params, "size")
        if size < 1 or size > 100:
            raise ApiError(40035, "不合法的参数 size: 取值范围1~100")
        if cursor < 0:
            raise ApiError(40035, "不合法的参数 cursor")
        if not self.state.dept(dept_id):
            raise ApiError(60003, "部门不存在")
        members = self.state.members(dept_id)
        page = members[cursor:cursor + size]
        has_more = cursor + size < len(members)
        result = {"has_more": has_more,
                  "list": [dict(self.user_fields(u, full=False), leader=any(
                      x.get("dept_id") == dept_id and x.get("leader") for x in u["leader_in_dept"]),
                      dept_order=176000000 + u["dept_id_list"].index(dept_id)) for u in page]}
        if has_more:
            result["next_cursor"] = cursor + size
        return result

    def dept_brief(self, d):
        return {"dept_id": d["dept_id"], "name": d["name"], "parent_id": d["parent_id"],
                "create_dept_group": d["create_dept_group"], "auto_add_user": d["auto_add_user"]}

    def top_dept_listsub(self, req, token):
        dept_id = as_int(req.body_params(), "dept_id", 1)
        if not self.state.dept(dept_id):
            raise ApiError(60003, "部门不存在")
        return [self.dept_brief(d) for d in self.state.children(dept_id)]

    def top_dept_listsubid(self, req, token):
        dept_id = as_int(req.body_params(), "dept_id", 1)
        if not self.state.dept(dept_id):
            raise ApiError(60003, "部门不存在")
        return {"dept_id_list": [d["dept_id"] for d in self.state.children(dept_id)]}

    def top_dept_get(self, req, token):
        dept_id = as_int(req.body_params(), "dept_id")
        d = self.state.dept(dept_id)
        if not d:
            raise ApiError(60003, "部门不存在")
        out = {"dept_id": d["dept_id"], "name": d["name"]}
        if d["dept_id"] != 1:
            out["parent_id"] = d["parent_id"]
        members = {u["userid"] for sub in self.state.subtree(dept_id) for u in self.state.members(sub)}
        out.update({"order": d["order"], "dept_manager_userid_list": list(d["dept_manager_userid_list"]),
                    "create_dept_group": d["create_dept_group"], "auto_add_user": d["auto_add_user"],
                    "hide_dept": d["hide_dept"], "outer_dept": d["outer_dept"],
                    "member_count": len(members)})
        return out

    # -- callback management [g] ------------------------------------------------------------
    def cb_register(self, req, token):
        return self.register_callback(req, replace=False)

    def cb_update(self, req, token):
        return self.register_callback(req, replace=True)

    def register_callback(self, req, replace):
        params = req.body_params()
        tags, cb_token, aes_key, url = need(params, "call_back_tag", "token", "aes_key", "url")
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
            raise ApiError(40035, "不合法的参数 call_back_tag")
        if not isinstance(cb_token, str) or not 6 <= len(cb_token) < 64:
            raise ApiError(40035, "不合法的参数 token")
        try:
            crypto = CallbackCrypto(cb_token, aes_key, self.state.corp["corp_id"])
        except (CryptoError, TypeError):
            raise ApiError(40035, "不合法的参数 aes_key")
        if not isinstance(url, str) or not is_web_url(url):
            raise ApiError(71011, "非法的回调地址")
        for tag in tags:
            if tag not in CALLBACK_TAGS and not tag.startswith(CALLBACK_TAG_PREFIXES):
                raise ApiError(71008, "不合法的回调事件: %s" % tag)
        if not replace and self.state.callback is not None:
            raise ApiError(71006, "回调地址已经存在")
        result = push_envelope(crypto, url, dumps({"EventType": "check_url"}),
                               timeout=self.callback_timeout)
        if result["status"] == 0:
            raise ApiError(71012, "url地址访问异常,错误原因:%s" % result["reply_error"])
        if not result["reply_ok"]:
            raise ApiError(71009, "返回文字非success: %s" % result["reply_error"])
        with self.state.lock:
            if not replace and self.state.callback is not None:
                raise ApiError(71006, "回调地址已经存在")
            self.state.callback = {"call_back_tag": list(tags), "token": cb_token, "aes_key": aes_key, "url": url}
        return {}

    def cb_get(self, req, token):
        cb = self.state.callback
        if cb is None:
            raise ApiError(71007, "未注册回调")
        return dict(cb)

    def cb_delete(self, req, token):
        self.state.callback = None
        return {}

    def cb_failed(self, req, token):
        items, has_more = self.state.take_failed()
        return {"has_more": has_more, "failed_list": items}

    # -- work notifications [i.2] -------------------------------------------------------------
    def work_notify(self, req, token):
        """asyncsend_v2: the message is kept (GET /_fake/notifications); task_id at top level."""
        body = req.json if isinstance(req.json, dict) else {}
        agent_id, userids, msg = body.get("agent_id"), body.get("userid_list"), body.get("msg")
        if agent_id is None or userids is None or msg is None:
            raise ApiError(40035, "缺少参数 agent_id, userid_list or msg")
        if str(agent_id) != str(self.apps.get("agent_id")):
            raise ApiError(40056, "不合法的agentid")
        if not isinstance(userids, str) or not userids.strip():
            raise ApiError(40035, "不合法的参数 userid_list")
        if not isinstance(msg, dict) or msg.get("msgtype") not in ("text", "action_card"):
            raise ApiError(40035, "不合法的参数 msg")
        with self.notify_lock:
            self.notify_tasks += 1
            task_id = self.notify_tasks
            self.notifications.append({"task_id": task_id, "agent_id": agent_id,
                                       "userid_list": userids.split(","), "msg": msg,
                                       "t": time.time()})
        return json_reply({"errcode": 0, "errmsg": "ok", "task_id": task_id,
                           "request_id": top_request_id()})

    def ctl_notifications(self, req, body):
        with self.notify_lock:
            return list(self.notifications)

    # -- in-app login [i.1] ---------------------------------------------------------------------
    def top_inapp_userinfo(self, req, token):
        """topapi/v2/user/getuserinfo: a single-use in-app code -> the member (corp token)."""
        (code,) = need(req.body_params(), "code")
        c = self.state.take_code("inapp", code, token.owner)
        if not c:
            raise ApiError(40078, "不存在的临时授权码")
        user = self.state.user_by_unionid(c.unionid)
        if not user:
            raise ApiError(60121, "找不到该用户")
        level = 100 if user["boss"] else (1 if user["admin"] else 0)
        return {"userid": user["userid"], "unionid": user["unionid"], "name": user["name"],
                "device_id": hashlib.md5(("device:" + user["userid"]).encode()).hexdigest(),
                "sys": bool(user["admin"]), "sys_level": level, "associated_unionid": ""}

    def ctl_jsapi(self, req, body):
        setting = {}
        for key in ("userid", "unionid", "fail", "platform", "missing"):
            if body.get(key) not in (None, "", False):
                setting[key] = body[key]
        if "userid" in setting and not self.state.user(setting["userid"]):
            raise ValueError("unknown userid %r" % setting["userid"])
        if "unionid" in setting and not self.state.person(setting["unionid"])[0]:
            raise ValueError("unknown unionid %r" % setting["unionid"])
        if "fail" in setting and not isinstance(setting["fail"], dict):
            raise ValueError("fail must be an object {errorCode, errorMessage}")
        self.jsapi = setting
        return dict(setting)

    def page_jsapi_js(self, req, token):
        """The JSAPI stand-in: dd.ready, dd.error, dd.env.platform and
        dd.runtime.permission.requestAuthCode, with fresh in-app codes minted now."""
        setting = dict(self.jsapi)
        if setting.get("missing"):
            return Reply(404, "/* 404 Not Found */\n", "application/javascript; charset=utf-8")
        unionid = setting.get("unionid")
        if setting.get("userid"):
            unionid = self.state.user(setting["userid"])["unionid"]
        people = [(userid, uid, name) for userid, uid, name, ext in self.people()
                  if unionid is None or uid == unionid]
        app = self.apps["appkey"]
        config = {"corpId": self.state.corp["corp_id"], "fixed": unionid is not None,
                  "fail": setting.get("fail"), "platform": setting.get("platform"),
                  "people": [{"userid": userid, "name": name,
                              "code": self.state.mint_code("inapp", uid, app)}
                             for userid, uid, name in people]}
        body = JSAPI_JS.replace("__FAKE_CONFIG__", js_literal(config))
        return Reply(200, body, "application/javascript; charset=utf-8",
                     [("Cache-Control", "no-store")])

    # -- the QR stand-in ---------------------------------------------------------------------
    def people(self):
        corp = self.state.snapshot()
        return ([(u["userid"], u["unionid"], u["name"], False) for u in corp["users"]] +
                [("", e["unionid"], e["name"], True) for e in corp["external"]])

    def picker_page(self, title, config):
        buttons = "\n".join(
            '<button type="button"%s data-userid="%s" data-unionid="%s">%s</button>'
            % (' class="external"' if ext else "", html.escape(userid, quote=True),
               html.escape(unionid, quote=True), html.escape(name))
            for userid, unionid, name, ext in self.people())
        fallback = ""
        if config.get("pick_url"):
            fallback = "<noscript><ul>\n%s\n</ul></noscript>\n" % "\n".join(
                '<li><a href="%s">%s</a></li>' % (html.escape(add_query(config["pick_url"], pick=unionid),
                                                              quote=True), html.escape(name))
                for userid, unionid, name, ext in self.people())
        body = (
            "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            "<title>%s</title>\n<style>body{font-family:sans-serif;margin:10px;font-size:14px}"
            "button{display:block;margin:3px 0;padding:5px 10px;min-width:220px;text-align:left;cursor:pointer}"
            "button.external{color:#666;font-style:italic}#status{color:#a00}</style></head>\n"
            "<body data-mode=\"%s\">\n<p>Fake DingTalk — choose who scans the QR code:</p>\n"
            "<div id=\"people\">\n%s\n</div>\n<p id=\"status\" role=\"status\"></p>\n%s"
            "<script type=\"application/json\" id=\"fake-config\">%s</script>\n<script>%s</script>\n"
            "</body></html>\n"
            % (html.escape(title), html.escape(config["mode"]), buttons, fallback,
               js_literal(config), PICKER_JS))
        return html_reply(body)

    def page_ddlogin_js(self, req, token):
        body = DDLOGIN_JS.replace("__FAKE_ORIGIN__", js_literal(req.origin()))
        return Reply(200, body, "application/javascript; charset=utf-8")

    def page_qrcode(self, req, token):
        goto = req.query.get("goto", "")
        appid = self.appid_in(goto)
        if appid is not None and appid not in (self.apps["sns_appid"], self.apps["appkey"]):
            return error_page("appid不存在: %s" % appid, code="unknown_appid")
        return self.picker_page("钉钉扫码登录 (fake)", {"mode": "qrcode", "next": goto})

    @staticmethod
    def appid_in(goto):
        """The appid inside a goto URL, undoing up to two layers of encoding; None if absent."""
        for _ in range(3):
            query = urllib.parse.urlsplit(goto).query
            found = urllib.parse.parse_qs(query).get("appid")
            if found:
                return found[0]
            goto = urllib.parse.unquote(goto)
        return None

    def page_login_pick(self, req, token):
        body = req.json if isinstance(req.json, dict) else {}
        kind, person = self.state.person(body.get("unionid") or "")
        if not kind:
            return json_reply({"error": "unknown unionid"}, 400)
        return json_reply({"loginTmpCode": self.state.mint_code("login_tmp", person["unionid"])})

    def page_sns_authorize(self, req, token):
        q = req.query
        appid = q.get("appid", "")
        if appid not in (self.apps["sns_appid"], self.apps["appkey"]):
            return error_page("appid不存在: %s" % appid, code="unknown_appid")
        if q.get("response_type") != "code":
            return error_page("response_type必须为code", code="bad_response_type")
        if q.get("scope") not in ("snsapi_login", "snsapi_auth"):
            return error_page("scope不合法: %s" % q.get("scope", ""), code="bad_scope")
        redirect_uri, state = q.get("redirect_uri", ""), q.get("state", "")
        if not is_web_url(redirect_uri):
            return error_page("redirect_uri不合法", code="bad_redirect_uri")
        if "loginTmpCode" in q:
            c = self.state.take_code("login_tmp", q["loginTmpCode"])
            if not c:
                return error_page("二维码已失效, 请重新扫码 (loginTmpCode unknown or used)", code="bad_login_tmp_code")
            return redirect(add_query(redirect_uri, code=self.state.mint_code("tmp", c.unionid, appid), state=state))
        if "pick" in q:
            kind, person = self.state.person(q["pick"])
            if not kind:
                return error_page("unknown unionid", code="unknown_unionid")
            return redirect(add_query(redirect_uri, code=self.state.mint_code("tmp", q["pick"], appid), state=state))
        self_url = req.path + "?" + urllib.parse.urlencode(
            [(k, v) for k, v in q.items() if k not in ("pick", "loginTmpCode")])
        return self.picker_page("钉钉登录 (fake)", {"mode": "sns_page", "next": self_url, "pick_url": self_url})

    def oauth_check(self, q):
        """Validate an /oauth2/auth request: None or an error message."""
        if q.get("client_id") != self.apps["appkey"]:
            return "client_id不存在: %s" % q.get("client_id", "")
        if q.get("response_type") != "code":
            return "response_type必须为code"
        if "openid" not in (q.get("scope") or "").split():
            return "scope必须包含openid"
        if not is_web_url(q.get("redirect_uri", "")):
            return "redirect_uri不合法"
        return None

    def page_oauth2_auth(self, req, token):
        q = req.query
        embed = q.get("embed") == "1" or q.get("iframe") == "true"
        problem = self.oauth_check(q)
        if problem:
            return error_page(problem, embed=embed, code="bad_request")
        if "pick" in q:
            kind, person = self.state.person(q["pick"])
            if not kind:
                return error_page("unknown unionid", embed=embed, code="unknown_unionid")
            code = self.state.mint_code("oauth", q["pick"], q["client_id"])
            return redirect(add_query(q["redirect_uri"], authCode=code, state=q.get("state", "")))
        self_url = req.path + "?" + urllib.parse.urlencode(
            [(k, v) for k, v in q.items() if k not in ("pick", "embed", "iframe")])
        config = {"mode": "oauth_embed" if embed else "oauth_page", "pick_url": self_url,
                  "client_id": q["client_id"], "redirect_uri": q["redirect_uri"], "state": q.get("state", "")}
        return self.picker_page("钉钉登录 (fake)", config)

    def page_oauth2_pick(self, req, token):
        body = req.json if isinstance(req.json, dict) else {}
        q = {"client_id": body.get("client_id"), "redirect_uri": body.get("redirect_uri") or "",
             "response_type": "code", "scope": "openid"}
        problem = self.oauth_check(q)
        kind, person = self.state.person(body.get("unionid") or "")
        if problem or not kind:
            return json_reply({"error": problem or "unknown unionid"}, 400)
        code = self.state.mint_code("oauth", person["unionid"], q["client_id"])
        state = body.get("state") or ""
        return json_reply({"authCode": code, "state": state,
                           "redirectUrl": add_query(q["redirect_uri"], authCode=code, state=state)})

    # -- control API ----------------------------------------------------------------------------
    def handle_control(self, req):
        handler = self.control.get((req.method, req.path))
        if handler is None:
            known = any(path == req.path for _, path in self.control)
            return json_reply({"error": "method not allowed" if known else "unknown control path"},
                              405 if known else 404)
        if req.body and req.json_error:
            return json_reply({"error": "control body must be JSON"}, 400)
        body = req.json if isinstance(req.json, dict) else {}
        try:
            result = handler(req, body)
        except (ValueError, KeyError, TypeError, CryptoError) as e:
            return json_reply({"error": str(e)}, 400)
        return json_reply(result)

    def ctl_log(self, req, body):
        since = int(req.query.get("since", "0") or 0)
        return self.recorder.query(req.query.get("path"), since)

    def ctl_log_clear(self, req, body):
        self.recorder.clear()
        return {"ok": True}

    def ctl_stats(self, req, body):
        return self.recorder.stats()

    def ctl_fault(self, req, body):
        return self.faults.add(body)

    def ctl_revoke(self, req, body):
        self.state.revoked = True
        return {"revoked": True}

    def ctl_restore(self, req, body):
        self.state.revoked = False
        return {"revoked": False}

    def ctl_code(self, req, body):
        kind = body.get("kind", "tmp")
        kinds = {"tmp": "tmp", "oauth": "oauth", "login_tmp": "login_tmp", "inapp": "inapp"}
        if kind not in kinds:
            raise ValueError("kind must be tmp, oauth, login_tmp or inapp")
        unionid = body.get("unionid")
        if not unionid and body.get("userid"):
            user = self.state.user(body["userid"])
            if not user:
                raise ValueError("unknown userid %r" % body["userid"])
            unionid = user["unionid"]
        if not unionid:
            raise ValueError("give unionid or userid")
        if not body.get("allow_unknown") and not self.state.person(unionid)[0]:
            raise ValueError("unknown unionid %r" % unionid)
        return {"code": self.state.mint_code(kinds[kind], unionid, body.get("app")), "unionid": unionid}

    def ctl_put_user(self, req, body):
        return self.state.put_user(body)

    def ctl_delete_user(self, req, body):
        return {"deleted": self.state.delete_user(body["userid"])}

    def ctl_put_dept(self, req, body):
        return self.state.put_dept(body)

    def ctl_delete_dept(self, req, body):
        return {"deleted": self.state.delete_dept(int(body["dept_id"]))}

    def ctl_set_callback(self, req, body):
        if body.get("url"):
            self.state.callback = {"call_back_tag": list(body.get("call_back_tag") or ["user_add_org"]),
                                   "token": body.get("token") or self.state.corp["callback"]["token"],
                                   "aes_key": body.get("aes_key") or self.state.corp["callback"]["aes_key"],
                                   "url": body["url"]}
        else:
            self.state.callback = None
        return self.state.callback

    def crypto_from(self, body):
        cb = self.state.corp["callback"]
        return CallbackCrypto(body.get("token") or cb["token"], body.get("aes_key") or cb["aes_key"],
                              body.get("receiver") or self.state.corp["corp_id"])

    @staticmethod
    def plaintext_of(body):
        if "event" not in body:
            raise ValueError("give event (a JSON object, or a string sent verbatim)")
        event = body["event"]
        return event if isinstance(event, str) else dumps(event)

    def check_push_options(self, body):
        tamper = body.get("tamper")
        if tamper is not None and tamper not in CallbackCrypto.TAMPERS:
            raise ValueError("tamper must be one of %s" % ", ".join(CallbackCrypto.TAMPERS))
        if body.get("sigparam", "signature") not in ("signature", "msg_signature"):
            raise ValueError("sigparam must be signature or msg_signature")
        if body.get("tsparam", "timestamp") not in ("timestamp", "timeStamp"):
            raise ValueError("tsparam must be timestamp or timeStamp")
        if body.get("random") is not None and len(str(body["random"]).encode()) != 16:
            raise ValueError("random must be 16 bytes")

    def ctl_push(self, req, body):
        self.check_push_options(body)
        if not is_web_url(body.get("url", "")):
            raise ValueError("give an http(s) url")
        result = push_envelope(self.crypto_from(body), body["url"], self.plaintext_of(body),
                               timestamp=body.get("timestamp"), nonce=body.get("nonce"),
                               random16=body.get("random"), tamper=body.get("tamper"),
                               sigparam=body.get("sigparam", "signature"),
                               tsparam=body.get("tsparam", "timestamp"),
                               timeout=float(body.get("timeout", self.callback_timeout)),
                               extra_body=body.get("extra_body"))
        if body.get("record_failed") and not result["reply_ok"]:
            event = body["event"] if isinstance(body["event"], dict) else {}
            self.failed_from_event(event)
        return result

    def failed_from_event(self, event):
        tag = event.get("EventType", "unknown")
        data = {"corpid": self.state.corp["corp_id"]}
        for src, dst in (("UserId", "userid"), ("userId", "userid"), ("DeptId", "deptid"), ("deptId", "deptid")):
            if src in event:
                data[dst] = event[src]
        self.state.add_failed(tag, now_ms(), data)

    def ctl_encrypt(self, req, body):
        self.check_push_options(body)
        crypto = self.crypto_from(body)
        env = crypto.envelope(self.plaintext_of(body), body.get("timestamp"), body.get("nonce"),
                              body.get("random"), body.get("tamper"))
        query = urllib.parse.urlencode([(body.get("sigparam", "signature"), env["msg_signature"]),
                                        (body.get("tsparam", "timestamp"), env["timeStamp"]),
                                        ("nonce", env["nonce"])])
        return {"query": query, "body": dumps({"encrypt": env["encrypt"]}), "encrypt": env["encrypt"],
                "signature": env["msg_signature"], "timestamp": env["timeStamp"], "nonce": env["nonce"],
                "reply": env}

    def ctl_decrypt(self, req, body):
        """Check an envelope (a push or a reply): {ok, plaintext, receiver, error, code}."""
        crypto = self.crypto_from(body)
        sig = body.get("msg_signature") or body.get("signature")
        ts = body.get("timeStamp") or body.get("timestamp")
        nonce, encrypt = body.get("nonce"), body.get("encrypt")
        if not all(isinstance(x, str) for x in (sig, ts, nonce, encrypt)):
            raise ValueError("give msg_signature|signature, timeStamp|timestamp, nonce, encrypt (strings)")
        if not const_eq(crypto.sign(crypto.token, ts, nonce, encrypt), sig):
            return {"ok": False, "code": 900005, "error": "signature mismatch"}
        try:
            msg, receiver = crypto.open(encrypt)
        except CryptoError as e:
            return {"ok": False, "code": e.code, "error": e.reason}
        if receiver != crypto.receiver:
            return {"ok": False, "code": 900010, "error": "receiver mismatch", "receiver": receiver,
                    "plaintext": msg}
        return {"ok": True, "plaintext": msg, "receiver": receiver}

    def ctl_failed_list(self, req, body):
        with self.state.lock:
            return {"shape": self.state.failed_shape, "pending": list(self.state.failed)}

    def ctl_failed_add(self, req, body):
        tag = body.get("call_back_tag")
        if not isinstance(tag, str) or not tag:
            raise ValueError("give call_back_tag")
        data = dict(body.get("data") or {})
        for key in ("userid", "deptid"):
            if key in body:
                data[key] = body[key]
        data.setdefault("corpid", self.state.corp["corp_id"])
        pending = self.state.add_failed(tag, int(body.get("event_time", now_ms())), data)
        return {"pending": pending}

    def ctl_failed_shape(self, req, body):
        if body.get("shape") not in ("flat", "nested"):
            raise ValueError("shape must be flat or nested")
        self.state.failed_shape = body["shape"]
        return {"shape": self.state.failed_shape}

    def ctl_qps(self, req, body):
        qps = int(body["qps"])
        if qps < 0:
            raise ValueError("qps must be >= 0")
        with self.limiter.lock:
            self.limiter.qps = qps
            self.limiter.windows.clear()
        return {"qps": qps}



# ---------------------------------------------------------------------------
# Stream mode: the open call and a TLS WebSocket gateway (docs/dingtalk.md,
# Stream mode). A handler of its own; it shares only the corp's app keys.
# ---------------------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STREAM_TICKET_TTL = 90


def make_test_tls(ca_path):
    """A throwaway CA (written to ca_path, PEM) and a server certificate for
    127.0.0.1 and localhost signed by it: an ssl.SSLContext for the gateway."""
    import datetime
    import ssl
    import tempfile
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
    import ipaddress

    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake DingTalk test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cf, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kf, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ctx.load_cert_chain(cf, kf)
    return ctx


class StreamConn:
    """One accepted WebSocket link (server side of RFC 6455)."""

    def __init__(self, gw, sock, no, ticket):
        self.gw, self.sock, self.no, self.ticket = gw, sock, no, ticket
        self.opened = time.time()
        self.closed = None
        self.close_code = None
        self.pings = 0
        self.silent = False
        self.wlock = threading.Lock()

    def info(self):
        return {"id": self.no, "opened": self.opened, "closed": self.closed,
                "close_code": self.close_code, "pings": self.pings}

    def send_frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        with self.wlock:
            self.sock.sendall(head + payload)

    def send_text(self, text):
        self.send_frame(1, text.encode("utf-8") if isinstance(text, str) else text)

    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("eof")
            buf += chunk
        return buf

    def read_frame(self):
        b0, b1 = self.read_exact(2)
        opcode, masked, n = b0 & 0x0f, b1 & 0x80, b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        if not masked:
            raise ConnectionError("client frame not masked")
        mask = self.read_exact(4)
        data = bytearray(self.read_exact(n))
        for i in range(n):
            data[i] ^= mask[i % 4]
        return opcode, bytes(data), bool(b0 & 0x80)

    def serve(self):
        try:
            while True:
                opcode, data, fin = self.read_frame()
                if self.silent:
                    continue            # a half-open link: nothing answers
                if opcode == 9:
                    self.pings += 1
                    self.send_frame(10, data)
                elif opcode == 8:
                    self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    try:
                        self.send_frame(8, data[:2])
                    except OSError:
                        pass
                    break
                elif opcode == 1:
                    self.gw.on_ack(self, data)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.drop()

    def drop(self):
        if self.closed is None:
            self.closed = time.time()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.gw.forget(self)


class StreamGateway:
    """The open endpoint's state and the wss:// listener.

    Events pushed through the control API stay pending until a SUCCESS ACK:
    they are sent to the newest live link (now, or when one opens), sent again
    on every new link, and after redeliver_ms when answered LATER."""

    def __init__(self, app, ca_path, redeliver_ms=1000):
        self.app = app
        self.ctx = make_test_tls(ca_path)
        self.lock = threading.RLock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.tickets = {}           # ticket -> expiry
        self.conns = []             # every link ever, StreamConn
        self.live = []
        self.pending = {}           # messageId -> frame text (events not yet ACKed SUCCESS)
        self.lose = set()           # messageIds whose next ACK is ignored
        self.acks = []
        self.opens = []             # [{t, refused}]
        self.refuse = 0
        self.refuse_status = 503
        self.redeliver_ms = redeliver_ms
        self.seq = 0
        threading.Thread(target=self.accept_loop, daemon=True).start()

    # -- the open call ------------------------------------------------------------
    def open(self, req):
        body = req.json if isinstance(req.json, dict) else None
        if body is None:
            raise ApiError(400, "Missingbody", v1_status=400, v1_code="Missingbody")
        for name in ("clientId", "clientSecret", "subscriptions"):
            if name not in body:
                raise ApiError(400, "%s is mandatory for this action." % name, v1_status=400,
                               v1_code="Missing" + name)
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                self.opens.append({"t": time.time(), "refused": True})
                return json_reply({"code": "ServiceUnavailable", "message": "refused by the fake",
                                   "requestid": v1_request_id()}, self.refuse_status)
        apps = self.app.apps
        if body["clientId"] != apps["appkey"] or not const_eq(str(body["clientSecret"]),
                                                              apps["appsecret"]):
            raise ApiError(400, "invalid clientId or clientSecret", v1_status=401,
                           v1_code="InvalidAuthentication")
        subs = body["subscriptions"]
        if not isinstance(subs, list) or not subs or any(
                not isinstance(x, dict) or x.get("type") not in ("EVENT", "CALLBACK") or
                (x.get("type") == "EVENT" and x.get("topic") != "*") for x in subs):
            raise ApiError(400, "invalid subscriptions", v1_status=400, v1_code="InvalidParameter")
        if "application/json" not in (req.header("Accept") or ""):
            return Reply(200, "<xml>Accept: application/json was not sent</xml>", "text/xml")
        ticket = str(uuid.uuid4())
        with self.lock:
            self.tickets[ticket] = time.time() + STREAM_TICKET_TTL
            self.opens.append({"t": time.time(), "refused": False, "ticket": ticket})
        return {"endpoint": "wss://127.0.0.1:%d/connect" % self.port, "ticket": ticket}

    # -- the WebSocket side -------------------------------------------------------
    def accept_loop(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handshake, args=(sock,), daemon=True).start()

    def handshake(self, raw):
        try:
            raw.settimeout(10)
            sock = self.ctx.wrap_socket(raw, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > 8192:
                    raise ConnectionError("bad upgrade")
                head += chunk
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            u = urllib.parse.urlsplit(target)
            ticket = urllib.parse.parse_qs(u.query).get("ticket", [""])[0]
            with self.lock:
                expiry = self.tickets.pop(ticket, None)     # single use
            if u.path != "/connect" or expiry is None or expiry < time.time():
                sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                sock.close()
                return
            key = headers.get("sec-websocket-key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
            sock.settimeout(None)
        except (OSError, ConnectionError, ValueError, IndexError):
            try:
                raw.close()
            except OSError:
                pass
            return
        with self.lock:
            conn = StreamConn(self, sock, len(self.conns) + 1, ticket)
            self.conns.append(conn)
            self.live.append(conn)
            backlog = list(self.pending.values())
        for text in backlog:                # not ACKed SUCCESS: pushed again
            try:
                conn.send_text(text)
            except OSError:
                break
        conn.serve()

    def forget(self, conn):
        with self.lock:
            if conn in self.live:
                self.live.remove(conn)

    def newest(self, conn_id=None):
        with self.lock:
            for c in reversed(self.live):
                if conn_id is None or c.no == conn_id:
                    return c
        return None

    def on_ack(self, conn, data):
        entry = {"t": time.time(), "conn": conn.no, "raw": data.decode("utf-8", "replace")}
        try:
            obj = json.loads(data)
            mid = obj["headers"]["messageId"]
            entry.update({"messageId": mid, "code": obj.get("code"), "message": obj.get("message"),
                          "data": obj.get("data")})
            status = json.loads(obj["data"]).get("status") if isinstance(obj.get("data"), str) else None
        except (ValueError, KeyError, TypeError, AttributeError):
            mid, status = None, None
        with self.lock:
            if mid in self.lose:
                self.lose.discard(mid)
                entry["lost"] = True
                self.acks.append(entry)
                return
            self.acks.append(entry)
            text = self.pending.get(mid)
            if text is None:
                return
            if status == "SUCCESS":
                del self.pending[mid]
                return
        if status == "LATER":
            def again():
                time.sleep(self.redeliver_ms / 1000.0)
                with self.lock:
                    still = self.pending.get(mid)
                c = self.newest()
                if still and c:
                    try:
                        c.send_text(still)
                    except OSError:
                        pass
            threading.Thread(target=again, daemon=True).start()

    def next_id(self):
        with self.lock:
            self.seq += 1
            return "fake_%d_%s" % (self.seq, random_alnum(8))

    def send(self, text, conn_id=None):
        c = self.newest(conn_id)
        if c is None:
            return None
        try:
            c.send_text(text)
        except OSError:
            return None
        return c.no

    # -- control ------------------------------------------------------------------
    def ctl_event(self, req, body):
        ev = body.get("event") or {}
        mid = body.get("messageId") or self.next_id()
        data = ev.get("data", {})
        headers = {"topic": "*", "messageId": mid, "contentType": "application/json",
                   "time": str(now_ms()), "eventType": ev.get("eventType", "user_add_org"),
                   "eventId": ev.get("eventId", uuid.uuid4().hex),
                   "eventCorpId": ev.get("eventCorpId", self.app.state.corp["corp_id"]),
                   "eventBornTime": str(ev.get("eventBornTime", now_ms())),
                   "eventUnifiedAppId": "fake-unified-app"}
        for k in [k for k, v in ev.items() if v is None]:
            headers.pop(k, None)    # {"eventId": None}: leave the header out
        text = dumps({"specVersion": "1.0", "type": "EVENT", "headers": headers,
                      "data": data if isinstance(data, str) else dumps(data)})
        with self.lock:
            self.pending[mid] = text
            if body.get("lose_ack"):
                self.lose.add(mid)
        return {"messageId": mid, "eventId": headers.get("eventId"), "sent_to": self.send(text)}

    def ctl_burst(self, req, body):
        """count events (eventType, eventId prefix + n, userId prefix + n) sent
        one after another from a thread of their own: for the benchmark."""
        count, prefix = int(body.get("count", 1000)), str(body.get("prefix", "burst"))
        etype = body.get("eventType", "user_leave_org")

        def run():
            for n in range(count):
                self.ctl_event(None, {"event": {
                    "eventType": etype, "eventId": "%s-%d" % (prefix, n),
                    "data": {"timeStamp": str(now_ms()), "userId": ["%s-u%d" % (prefix, n)]}}})
        threading.Thread(target=run, daemon=True).start()
        return {"count": count}

    def ctl_count(self, req, body):
        with self.lock:
            ok = sum(1 for a in self.acks if a.get("data") and '"SUCCESS"' in a["data"])
            return {"acks": len(self.acks), "success": ok, "pending": len(self.pending),
                    "live": [c.no for c in self.live], "conns": len(self.conns)}

    def ctl_raw(self, req, body):
        return {"sent_to": self.send(body["text"], body.get("conn"))}

    def ctl_system(self, req, body):
        topic = body.get("topic", "ping")
        mid = self.next_id()
        data = body.get("data")
        if data is None:
            data = {"opaque": uuid.uuid4().hex} if topic == "ping" else {"reason": "connection is expired"}
        text = dumps({"specVersion": "1.0", "type": "SYSTEM",
                      "headers": {"topic": topic, "messageId": mid, "contentType": "application/json",
                                  "time": str(now_ms())},
                      "data": data if isinstance(data, str) else dumps(data)})
        c = self.newest(body.get("conn"))
        sent = self.send(text, body.get("conn"))
        if topic == "disconnect" and c is not None:
            # The server cuts the link itself a while later.
            def cut():
                time.sleep(float(body.get("cut_after_ms", 10000)) / 1000.0)
                c.drop()
            threading.Thread(target=cut, daemon=True).start()
        return {"messageId": mid, "sent_to": sent, "data": text}

    def ctl_drop(self, req, body):
        c = self.newest(body.get("conn"))
        if c is None:
            return {"dropped": None}
        c.drop()
        return {"dropped": c.no}

    def ctl_silence(self, req, body):
        c = self.newest(body.get("conn"))
        if c is not None:
            c.silent = bool(body.get("on", True))
        return {"silenced": c.no if c else None}

    def ctl_refuse(self, req, body):
        with self.lock:
            self.refuse = int(body.get("count", 1))
            self.refuse_status = int(body.get("status", 503))
        return {"refuse": self.refuse}

    def ctl_state(self, req, body):
        with self.lock:
            return {"conns": [c.info() for c in self.conns], "live": [c.no for c in self.live],
                    "acks": list(self.acks), "opens": list(self.opens),
                    "pending": sorted(self.pending)}

    def ctl_clear(self, req, body):
        with self.lock:
            self.acks.clear()
            self.opens.clear()
            self.pending.clear()
        return {"ok": True}

    def control_routes(self):
        return {("POST", "/_fake/stream/event"): self.ctl_event,
                ("POST", "/_fake/stream/raw"): self.ctl_raw,
                ("POST", "/_fake/stream/burst"): self.ctl_burst,
                ("GET", "/_fake/stream/count"): self.ctl_count,
                ("POST", "/_fake/stream/system"): self.ctl_system,
                ("POST", "/_fake/stream/drop"): self.ctl_drop,
                ("POST", "/_fake/stream/silence"): self.ctl_silence,
                ("POST", "/_fake/stream/refuse"): self.ctl_refuse,
                ("POST", "/_fake/stream/clear"): self.ctl_clear,
                ("GET", "/_fake/stream"): self.ctl_state}


def stream_open_unavailable(req, token):
    raise ApiError(503, "the fake runs without --stream-ca: no Stream gateway", v1_status=503,
                   v1_code="ServiceUnavailable")


def enable_stream(app, ca_path):
    """Add the open endpoint and the gateway's control API to app."""
    gw = StreamGateway(app, ca_path)
    app.stream = gw
    app.routes["/v1.0/gateway/connections/open"] = Route("POST", V1, None, lambda req, tok: gw.open(req))
    app.control.update(gw.control_routes())
    return gw

# ---------------------------------------------------------------------------
# Browser-side code of the QR stand-in
# ---------------------------------------------------------------------------

DDLOGIN_JS = r"""/* Fake DingTalk login script: DDLogin (ddLogin.js 0.0.5) and DTFrameLogin (ddlogin.js 0.21). */
(function (window, document) {
  "use strict";
  var script = document.currentScript;
  var ORIGIN = (script && script.src) ? new URL(script.src, document.baseURI).origin : __FAKE_ORIGIN__;

  function size(v, dflt) {
    if (v === undefined || v === null || v === "") return dflt;
    return /^\d+$/.test(String(v)) ? v + "px" : String(v);
  }

  function frameInto(id, src, width, height) {
    var box = document.getElementById(id);
    if (!box) throw new Error("fake ddlogin: no element with id " + id);
    var frame = document.createElement("iframe");
    frame.src = src;
    frame.frameBorder = "0";
    frame.setAttribute("allowTransparency", "true");
    frame.scrolling = "no";
    frame.style.width = size(width, "365px");
    frame.style.height = size(height, "400px");
    box.innerHTML = "";
    box.appendChild(frame);
    return frame;
  }

  /* DDLogin({id, goto, style, width, height}); goto is already encodeURIComponent'ed by the caller. */
  window.DDLogin = function (opts) {
    var src = ORIGIN + "/login/qrcode.htm?goto=" + opts.goto;
    if (opts.style) src += "&style=" + encodeURIComponent(opts.style);
    if (opts.href) src += "&href=" + opts.href;
    frameInto(opts.id, src, opts.width, opts.height);
  };

  /* DTFrameLogin({id, width, height}, {redirect_uri, client_id, scope, response_type, state, prompt}, ok, fail) */
  window.DTFrameLogin = function (frameOpts, params, onOk, onFail) {
    var query = [];
    Object.keys(params || {}).forEach(function (key) {
      var value = params[key];
      if (value === undefined || value === null) return;
      value = String(value);
      if (key === "redirect_uri" && /^[a-z][a-z0-9+.\-]*%3A/i.test(value)) {
        query.push(key + "=" + value);          /* documented: callers pass it encoded already */
      } else {
        query.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
      }
    });
    query.push("embed=1");
    var frame = frameInto(frameOpts.id, ORIGIN + "/oauth2/auth?" + query.join("&"),
                          frameOpts.width, frameOpts.height);
    window.addEventListener("message", function (event) {
      if (event.origin !== ORIGIN || event.source !== frame.contentWindow) return;
      var data = event.data || {};
      if (data.authCode) {
        if (onOk) onOk({redirectUrl: data.redirectUrl, authCode: data.authCode, state: data.state});
      } else if (data.errorMsg !== undefined) {
        if (onFail) onFail(data.errorMsg);
      }
    });
  };
})(window, document);
"""

JSAPI_JS = r"""/* Fake DingTalk JSAPI (dingtalk.open.js) for the in-app login: dd.ready, dd.error, dd.env,
   dd.runtime.permission.requestAuthCode({corpId, onSuccess(info) info.code, onFail(err)}). */
(function (window, document) {
  "use strict";
  var CONFIG = __FAKE_CONFIG__;
  var ua = window.navigator.userAgent || "";
  var errorHandlers = [];

  function later(fn, arg) {
    window.setTimeout(function () { fn(arg); }, 10);
  }

  /* The simulated client's sheet: who is signed in to DingTalk. */
  function picker(onPick, onRefuse) {
    var sheet = document.createElement("div");
    sheet.id = "fake-dingtalk-client";
    sheet.setAttribute("role", "dialog");
    var s = sheet.style;
    s.position = "fixed"; s.left = "0"; s.right = "0"; s.bottom = "0"; s.zIndex = "1000";
    s.background = "#fff"; s.borderTop = "2px solid #1677ff"; s.padding = "10px";
    s.font = "14px sans-serif"; s.maxHeight = "60%"; s.overflowY = "auto";
    var title = document.createElement("p");
    title.textContent = "钉钉客户端（模拟）：当前登录的是谁？ Fake DingTalk client: who is signed in?";
    title.style.margin = "0 0 6px";
    sheet.appendChild(title);
    function button(text, data, fn) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.style.display = "block"; b.style.margin = "3px 0"; b.style.padding = "6px 10px";
      b.style.minWidth = "220px"; b.style.textAlign = "left";
      for (var k in data) b.setAttribute(k, data[k]);
      b.addEventListener("click", function () {
        sheet.parentNode.removeChild(sheet);
        fn();
      });
      sheet.appendChild(b);
    }
    CONFIG.people.forEach(function (p) {
      button(p.name + (p.userid ? " (" + p.userid + ")" : " (external)"),
             {"data-userid": p.userid, "data-code": p.code}, function () { onPick(p.code); });
    });
    button("拒绝 / refuse", {"data-refuse": "1"}, onRefuse);
    document.body.appendChild(sheet);
  }

  function requestAuthCode(opts) {
    opts = opts || {};
    var ok = typeof opts.onSuccess === "function" ? opts.onSuccess : function () {};
    var bad = typeof opts.onFail === "function" ? opts.onFail : function () {};
    return new Promise(function (resolve, reject) {
      function succeed(code) { var r = {code: code}; later(ok, r); resolve(r); }
      function failWith(err) { later(bad, err); reject(err); }
      if (!opts.corpId) return failWith({errorCode: "-1", errorMessage: "corpId is required"});
      if (opts.corpId !== CONFIG.corpId)
        return failWith({errorCode: "-1", errorMessage: "corpId无效或当前用户不属于该企业"});
      if (CONFIG.fail) return failWith(CONFIG.fail);
      if (CONFIG.fixed && CONFIG.people.length) return succeed(CONFIG.people[0].code);
      picker(succeed, function () {
        failWith({errorCode: "3", errorMessage: "用户取消授权"});
      });
    }).catch(function () { return undefined; });
  }

  window.dd = {
    version: "3.0.25-fake",
    env: {platform: CONFIG.platform ||
          (/iPhone|iPad|iPod/.test(ua) ? "ios" : /Android/.test(ua) ? "android" : "pc")},
    ready: function (fn) { later(fn); },
    error: function (fn) { errorHandlers.push(fn); },
    config: function () {},
    runtime: {permission: {requestAuthCode: requestAuthCode}}
  };
})(window, document);
"""

PICKER_JS = r"""
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("fake-config").textContent);
  var statusLine = document.getElementById("status");
  var framed = window.parent !== window;

  function withParam(url, key, value) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + key + "=" + encodeURIComponent(value);
  }
  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify(body)})
      .then(function (r) {
        return r.json().then(function (d) {
          if (!r.ok) throw new Error(d.error || ("HTTP " + r.status));
          return d;
        });
      });
  }
  function fail(message) {
    statusLine.textContent = message;
    if (cfg.mode === "oauth_embed" && framed) window.parent.postMessage({errorMsg: message}, "*");
  }
  function pick(unionid) {
    if (cfg.mode === "qrcode" || cfg.mode === "sns_page") {
      return post("/login/pick", {unionid: unionid}).then(function (d) {
        if (cfg.mode === "qrcode" && framed) {
          statusLine.textContent = "扫码成功";
          window.parent.postMessage(d.loginTmpCode, "*");
        } else if (cfg.next) {
          window.location.href = withParam(cfg.next, "loginTmpCode", d.loginTmpCode);
        } else {
          statusLine.textContent = "loginTmpCode=" + d.loginTmpCode;
        }
      });
    }
    if (cfg.mode === "oauth_embed") {
      return post("/oauth2/pick", {unionid: unionid, client_id: cfg.client_id,
                                   redirect_uri: cfg.redirect_uri, state: cfg.state})
        .then(function (d) {
          statusLine.textContent = "授权成功";
          if (framed) {
            window.parent.postMessage({redirectUrl: d.redirectUrl, authCode: d.authCode, state: d.state}, "*");
          } else {
            window.location.href = d.redirectUrl;
          }
        });
    }
    window.location.href = withParam(cfg.pick_url, "pick", unionid);
    return null;
  }
  Array.prototype.forEach.call(document.querySelectorAll("button[data-unionid]"), function (button) {
    button.addEventListener("click", function () {
      Promise.resolve().then(function () { return pick(button.getAttribute("data-unionid")); })
        .catch(function (e) { fail(String((e && e.message) || e)); });
    });
  });
})();
"""


# ---------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------

class BodyError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DingTalk/1.0.0"
    sys_version = ""
    timeout = 300

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without NODELAY,
        # Nagle plus the client's delayed ACK adds ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_no = self.server.app.recorder.new_connection()

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "bad chunk size")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BodyError(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            length = int(length)
        except ValueError:
            raise BodyError(400, "bad Content-Length")
        if length < 0 or length > MAX_BODY:
            raise BodyError(413, "body too large")
        return self.rfile.read(length)

    def serve(self):
        app = self.server.app
        try:
            body = self.read_body()
        except BodyError as e:
            self.close_connection = True
            self.send_reply(json_reply({"errcode": 40035, "errmsg": str(e)}, e.status))
            return
        req = Request(self.command, self.path, self.headers, body, self.conn_no)
        reply = app.handle(req)
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_reply(reply)

    def send_reply(self, reply):
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.ctype)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # many concurrent test clients, not 5

    def __init__(self, address, app):
        super().__init__(address, Handler)
        self.app = app

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Fake DingTalk servers for tests (see the module docstring).")
    ap.add_argument("--host", default="127.0.0.1", help="must be 127.0.0.1 (or localhost)")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--corp", metavar="FILE.json", help="corp model file (default: the built-in demo corp)")
    source.add_argument("--generate", metavar="depts=N,users=M,depth=D,seed=S",
                        help="build a deterministic corp instead")
    ap.add_argument("--qps", type=int, default=20, help="per token and API per second; 0 disables")
    ap.add_argument("--token-ttl", type=int, default=7200, help="seconds")
    ap.add_argument("--code-ttl", type=int, default=300, help="login code lifetime, seconds")
    ap.add_argument("--callback-timeout", type=float, default=5.0,
                    help="seconds to wait for a callback URL's answer (check_url and pushes)")
    ap.add_argument("--log", metavar="FILE", help="append one JSON line per request ('-' = stderr)")
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF (parent died)")
    ap.add_argument("--stream-ca", metavar="FILE",
                    help="serve Stream mode: a wss:// gateway whose throwaway CA is written to FILE")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        ap.error("refusing to bind %s: the fake binds 127.0.0.1 only" % args.host)
    if args.qps < 0 or args.token_ttl < 1 or args.code_ttl < 1:
        ap.error("--qps must be >= 0, --token-ttl and --code-ttl >= 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.corp:
            with open(args.corp, encoding="utf-8") as f:
                corp = json.load(f)
        elif args.generate:
            corp = generate_corp(args.generate)
        else:
            corp = default_corp()
        log_file = None
        if args.log == "-":
            log_file = sys.stderr
        elif args.log:
            log_file = open(args.log, "a", encoding="utf-8")
        app = FakeDingTalkApp(corp, qps=args.qps, token_ttl=args.token_ttl, code_ttl=args.code_ttl,
                           callback_timeout=args.callback_timeout, log_file=log_file)
    except (OSError, ValueError, KeyError, TypeError, CryptoError) as e:
        print("fake_dingtalk: %s" % e, file=sys.stderr)
        return 2
    if args.stream_ca:
        enable_stream(app, args.stream_ca)
    server = Server(("127.0.0.1", args.port), app)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    if args.watch_stdin:
        def watch():
            try:
                while os.read(0, 4096):     # raw reads: no buffered-reader lock at shutdown
                    pass
            except OSError:
                pass
            stop.set()
        threading.Thread(target=watch, daemon=True).start()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    sys.stdout.write("LISTENING http://127.0.0.1:%d\n" % server.server_address[1])
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
