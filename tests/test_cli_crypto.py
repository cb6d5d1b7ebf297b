"""bin/dingauth crypto decrypt|encrypt|sign against tests/data/crypto-vectors.json.

Prints "ok - ..." / "not ok - ..." per check and exits 1 if any failed.
The binary is $DINGAUTH_BIN_DIR/dingauth (default bin/dingauth). Every run
gets a scrubbed environment with DINGAUTH_CONFIG pointing at a temporary
file, empty unless a check writes settings into it.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

ROOT = os.environ.get("DINGAUTH_ROOT") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("DINGAUTH_BIN_DIR", "bin"), "dingauth")
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)

with open(os.path.join(ROOT, "tests", "data", "crypto-vectors.json"),
          encoding="utf-8") as f:
    DATA = json.load(f)
VECTORS = DATA["vectors"]

failed = 0
passed = 0


def check(cond, name, detail=""):
    global failed, passed
    if cond:
        passed += 1
        print("ok - " + name)
    else:
        failed += 1
        print("not ok - " + name)
        for line in str(detail).splitlines():
            print("#   " + line)
    sys.stdout.flush()


TMP = tempfile.TemporaryDirectory(prefix="dingauth-crypto-")
CONF = os.path.join(TMP.name, "dingauth.conf")


def write_conf(text=""):
    with open(CONF, "w", encoding="utf-8") as f:
        f.write(text)


def run(args, stdin=None, conf=None, env_extra=None):
    """Run dingauth with args; returns (rc, stdout, stderr) as text."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DINGTALK_", "DINGAUTH_"))}
    env["DINGAUTH_CONFIG"] = conf if conf is not None else CONF
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([BIN] + args, input=(stdin or "").encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def desc(r):
    return "rc=%d\nstdout=%r\nstderr=%r" % r


def keyopts(v, receiver=None):
    return ["--token", v["token"], "--aes-key", v["aes_key"],
            "--receiver", receiver if receiver is not None
            else v["receiver_id"]]


def decrypt_opts(v, sig=None, receiver=None, encrypt=None):
    return (["crypto", "decrypt"] + keyopts(v, receiver) +
            ["--signature", sig or v["msg_signature"],
             "--timestamp", v["timestamp"], "--nonce", v["nonce"],
             "--encrypt", encrypt if encrypt is not None else v["encrypt"]])


def body(v):
    return json.dumps({"encrypt": v["encrypt"]})


def query(v, sig_name="signature", ts_name="timestamp"):
    return urllib.parse.urlencode([(sig_name, v["msg_signature"]),
                                   (ts_name, v["timestamp"]),
                                   ("nonce", v["nonce"])])


write_conf()

# --- decrypt: every vector, every form --------------------------------------
for v in VECTORS:
    name = v["name"]
    want = v["plaintext"] + "\n"
    r = run(decrypt_opts(v))
    check(r == (0, want, ""), "decrypt %s with options" % name, desc(r))

    q = v.get("query_string") or query(v)
    r = run(["crypto", "decrypt"] + keyopts(v) +
            ["--query", q, "--body", body(v)])
    check(r == (0, want, ""), "decrypt %s with --query/--body JSON" % name,
          desc(r))

    r = run(["crypto", "decrypt"] + keyopts(v) +
            ["--query", query(v, "msg_signature", "timeStamp"),
             "--body", "-"], stdin=body(v) + "\n")
    check(r == (0, want, ""),
          "decrypt %s with msg_signature/timeStamp and --body -" % name,
          desc(r))

# Query values are form-decoded; a leading '?' and extra fields are fine;
# the body is not form-decoded (the first vector's encrypt has '+').
v = VECTORS[0]
check("+" in v["encrypt"], "first vector's encrypt contains '+'")
q = "?foo=a+b&nonce=%s&timestamp=%s&signature=%s" % (
    "".join("%%%02X" % ord(c) for c in v["nonce"]), v["timestamp"],
    v["msg_signature"])
r = run(["crypto", "decrypt"] + keyopts(v) + ["--query", q, "--body", "-"],
        stdin=json.dumps({"encrypt": v["encrypt"], "EventType": "x"}))
check(r == (0, v["plaintext"] + "\n", ""),
      "decrypt with percent-encoded query, '?' and extra fields", desc(r))

# Defaults from the configuration file.
v = VECTORS[2]
write_conf("DINGTALK_TOKEN = %s\nDINGTALK_AES_TOKEN = %s\n"
           "DINGAUTH_CALLBACK_RECEIVER = %s\n"
           % (v["token"], v["aes_key"], v["receiver_id"]))
r = run(["crypto", "decrypt", "--signature", v["msg_signature"],
         "--timestamp", v["timestamp"], "--nonce", v["nonce"],
         "--encrypt", v["encrypt"]])
check(r == (0, v["plaintext"] + "\n", ""),
      "decrypt takes token, key and receiver from the configuration",
      desc(r))
write_conf("DINGTALK_TOKEN = %s\nDINGTALK_AES_TOKEN = %s\n"
           "DINGTALK_CORP_ID = %s\n"
           % (v["token"], v["aes_key"], v["receiver_id"]))
r = run(["crypto", "decrypt", "--query", query(v), "--body", body(v)])
check(r == (0, v["plaintext"] + "\n", ""),
      "receiver defaults to DINGTALK_CORP_ID", desc(r))
r = run(["crypto", "decrypt", "--receiver", "dingother", "--query",
         query(v), "--body", body(v)])
check(r[0] == 1 and r[1] == "", "--receiver overrides the configuration",
      desc(r))
write_conf()

# A configuration that cannot be read matters only when a value is needed.
missing = os.path.join(TMP.name, "no-such.conf")
v = VECTORS[1]
r = run(decrypt_opts(v), conf=missing)
check(r == (0, v["plaintext"] + "\n", ""),
      "unreadable configuration ignored when every option is given", desc(r))
r = run(decrypt_opts(v)[:2] + decrypt_opts(v)[4:], conf=missing)
check(r[0] == 1 and r[1] == "" and "configuration" in r[2],
      "unreadable configuration reported when the token is needed", desc(r))

# --- decrypt failures: exit 1, nothing on stdout ----------------------------
v = VECTORS[0]
secrets = (v["token"], v["aes_key"])


def fails(args, name, stdin=None, word=None):
    r = run(args, stdin=stdin)
    ok = (r[0] == 1 and r[1] == "" and r[2].startswith("dingauth: ") and
          not any(s in r[2] for s in secrets))
    if word is not None:
        ok = ok and word in r[2]
    check(ok, name, desc(r))


sig = v["msg_signature"]
tampered = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
fails(decrypt_opts(v, sig=tampered),
      "tampered signature: exit 1, no stdout", word="signature")
fails(["crypto", "decrypt"] + keyopts(v) +
      ["--query", query(v).replace(sig, tampered), "--body", body(v)],
      "tampered signature via --query: exit 1, no stdout")
fails(decrypt_opts(v, sig=sig.upper()), "uppercase signature: exit 1")
fails(decrypt_opts(v, receiver="suite4xxxxxxxxxxxxxx"),
      "receiver prefix: exit 1", word="receiver")
fails(decrypt_opts(v, receiver="dingother"), "wrong receiver: exit 1")
fails(["crypto", "decrypt", "--token", v["token"], "--aes-key",
       v["aes_key"][:-1], "--receiver", v["receiver_id"],
       "--signature", sig, "--timestamp", v["timestamp"],
       "--nonce", v["nonce"], "--encrypt", v["encrypt"]],
      "42-character key: exit 1", word="EncodingAESKey")
fails(["crypto", "decrypt", "--token", "wrongtoken", "--aes-key",
       v["aes_key"], "--receiver", v["receiver_id"], "--signature", sig,
       "--timestamp", v["timestamp"], "--nonce", v["nonce"],
       "--encrypt", v["encrypt"]], "wrong token: exit 1")
# A correctly signed but malformed ciphertext: the base64 check fires.
bad = v["encrypt"][:-4]
r = run(["crypto", "sign", v["token"], v["timestamp"], v["nonce"], bad])
fails(decrypt_opts(v, sig=r[1].strip(), encrypt=bad),
      "signed ciphertext not a multiple of 16 bytes: exit 1", word="16")
bad = v["encrypt"].replace("+", " ")
r = run(["crypto", "sign", v["token"], v["timestamp"], v["nonce"], bad])
fails(decrypt_opts(v, sig=r[1].strip(), encrypt=bad),
      "signed non-base64 ('+' form-decoded to space): exit 1",
      word="base64")
fails(["crypto", "decrypt"] + keyopts(v) +
      ["--query", "signature=%s&timestamp=%s" % (sig, v["timestamp"]),
       "--body", body(v)], "query without nonce: exit 1", word="nonce")
fails(["crypto", "decrypt"] + keyopts(v) +
      ["--query", query(v), "--body", "[1,2]"], "body not an object: exit 1")
fails(["crypto", "decrypt"] + keyopts(v) +
      ["--query", query(v), "--body", "-"], "body without encrypt: exit 1",
      stdin='{"Encrypt":"x"}')
fails(["crypto", "decrypt"] + keyopts(v) +
      ["--query", query(v), "--body", "-"], "body over 1 MiB: exit 1",
      stdin='{"encrypt":"' + "A" * (1024 * 1024 + 10) + '"}')

# --- encrypt ----------------------------------------------------------------
for v in VECTORS:
    name = v["name"]
    args = (["crypto", "encrypt"] + keyopts(v) +
            ["--timestamp", v["timestamp"], "--nonce", v["nonce"],
             "--random", v["random16"]])
    r = run(args + [v["plaintext"]])
    if v.get("reply_json"):
        want = json.dumps(v["reply_json"], separators=(",", ":"),
                          ensure_ascii=False) + "\n"
        check(r == (0, want, ""), "encrypt %s reproduces reply_json" % name,
              desc(r))
        r2 = run(args)
        check(r2 == r, "encrypt %s: plaintext defaults to success" % name,
              desc(r2))
    try:
        got = json.loads(r[1])
    except ValueError:
        got = {}
    check(r[0] == 0 and got.get("encrypt") == v["encrypt"] and
          got.get("msg_signature") == v["msg_signature"] and
          got.get("timeStamp") == v["timestamp"] and
          got.get("nonce") == v["nonce"],
          "encrypt %s is bit-exact from random16" % name, desc(r))
    r = run(args, stdin=v["plaintext"])
    check(r[0] == 0 and json.loads(r[1]).get("encrypt") == v["encrypt"],
          "encrypt %s with the plaintext on stdin" % name, desc(r))

# Round trip through the command, Chinese text counted in bytes.
v = VECTORS[3]
text = '{"EventType":"user_add_org","Name":"钉钉 测试 ✓"}'
r = run(["crypto", "encrypt"] + keyopts(v) + [text])
try:
    rep = json.loads(r[1])
    ok = set(rep) == {"msg_signature", "timeStamp", "nonce", "encrypt"} and \
        all(isinstance(x, str) for x in rep.values())
except ValueError:
    rep, ok = {}, False
check(r[0] == 0 and ok and len(rep["timeStamp"]) == 13 and
      len(rep["nonce"]) == 16, "fresh reply: four strings, ms, 16-char nonce",
      desc(r))
if ok:
    r = run(["crypto", "decrypt"] + keyopts(v) +
            ["--query", urllib.parse.urlencode(
                {"msg_signature": rep["msg_signature"],
                 "timeStamp": rep["timeStamp"], "nonce": rep["nonce"]}),
             "--body", json.dumps({"encrypt": rep["encrypt"]})])
    check(r == (0, text + "\n", ""), "encrypt then decrypt Chinese text",
          desc(r))
r1 = run(["crypto", "encrypt"] + keyopts(v))
r2 = run(["crypto", "encrypt"] + keyopts(v))
check(r1[0] == 0 and r2[0] == 0 and r1[1] != r2[1],
      "two fresh replies differ")

# --- sign -------------------------------------------------------------------
for v in VECTORS:
    r = run(["crypto", "sign", "--token", v["token"], "--timestamp",
             v["timestamp"], "--nonce", v["nonce"], "--encrypt",
             v["encrypt"]])
    check(r == (0, v["msg_signature"] + "\n", ""),
          "sign %s with options" % v["name"], desc(r))
    r = run(["crypto", "sign", v["encrypt"], v["nonce"], v["token"],
             v["timestamp"]])
    check(r == (0, v["msg_signature"] + "\n", ""),
          "sign %s with four values in any order" % v["name"], desc(r))
for s in DATA["signature_only_vectors"]:
    r = run(["crypto", "sign", ""] + s["strings"])
    check(r == (0, s["sha1"] + "\n", ""), "sign %s" % s["name"], desc(r))
v = VECTORS[0]
write_conf("DINGTALK_TOKEN = %s\n" % v["token"])
r = run(["crypto", "sign", "--timestamp", v["timestamp"], "--nonce",
         v["nonce"], "--encrypt", v["encrypt"]])
check(r == (0, v["msg_signature"] + "\n", ""),
      "sign takes the token from the configuration", desc(r))
write_conf()

# --- usage errors: exit 2 ---------------------------------------------------
v = VECTORS[0]


def usage(args, name, stdin=None):
    r = run(args, stdin=stdin)
    check(r[0] == 2 and r[1] == "" and r[2] != "", name, desc(r))


usage(["crypto"], "crypto without subcommand: exit 2")
usage(["crypto", "frobnicate"], "unknown subcommand: exit 2")
usage(["crypto", "decrypt"], "decrypt without options: exit 2")
usage(decrypt_opts(v)[:-2], "decrypt without --encrypt: exit 2")
usage(decrypt_opts(v) + ["--bogus"], "unknown option: exit 2")
usage(decrypt_opts(v) + ["extra"], "unexpected argument: exit 2")
usage(["crypto", "decrypt"] + keyopts(v) + ["--query", query(v)],
      "--query without --body: exit 2")
usage(["crypto", "decrypt"] + keyopts(v) +
      ["--query", query(v), "--body", body(v), "--nonce", "x"],
      "--query mixed with --nonce: exit 2")
usage(["crypto", "decrypt", "--signature", "a", "--timestamp", "b",
       "--nonce", "c", "--encrypt", "d"],
      "no token anywhere (empty configuration): exit 2")
usage(["crypto", "decrypt", "--token"], "option without value: exit 2")
usage(["crypto", "decrypt", "--token", "a", "--token", "b"],
      "option given twice: exit 2")
usage(["crypto", "encrypt"] + keyopts(v) + ["--random", "short"],
      "--random not 16 bytes: exit 2")
usage(["crypto", "encrypt"] + keyopts(v) + ["a", "b"],
      "encrypt with two plaintexts: exit 2")
usage(["crypto", "sign", "a", "b", "c"], "sign with three values: exit 2")
usage(["crypto", "sign", "--token", "t", "a", "b", "c", "d"],
      "sign mixing values and options: exit 2")
usage(["crypto", "sign", "--token", "t", "--timestamp", "1", "--nonce", "n"],
      "sign without --encrypt: exit 2")

# --- help -------------------------------------------------------------------
for args in (["crypto", "--help"], ["crypto", "-h"],
             ["crypto", "decrypt", "--help"], ["crypto", "encrypt", "--help"],
             ["crypto", "sign", "--help"],
             ["crypto", "decrypt", "--token", "x", "-h"]):
    r = run(args)
    check(r[0] == 0 and r[1].startswith("usage: dingauth crypto") and
          r[2] == "", " ".join(args) + ": usage on stdout, exit 0", desc(r))

TMP.cleanup()
print("# %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
