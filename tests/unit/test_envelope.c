/*
 * The callback envelope against DingTalk's own vectors
 * (tests/data/crypto-vectors.json), round trips of random UTF-8, and one
 * negative test per class of malformed input (docs/dingtalk.md §a.9).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "crypto.h"
#include "envelope.h"
#include "unit.h"
#include "vectors.h"


/* A token and key used for crafted envelopes; never in error messages. */
#define T_TOKEN		"SecretTok3nValue"
#define T_KEY		"4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij"
#define T_RECEIVER	"suite4xxxxxxxxxxxxxxx"


/* The error message must not give away the token or the key. */
static int
clean_msg(const struct da_error *err, const char *token, const char *key)
{
	if (err->msg[0] == '\0')
		return 0;
	if (token != NULL && *token != '\0' && strstr(err->msg, token))
		return 0;
	if (key != NULL && *key != '\0' && strstr(err->msg, key))
		return 0;
	return 1;
}

static void
test_keys(const cJSON *vec)
{
	const cJSON		*v;
	struct envelope_key	 key;
	struct da_error		 err;
	char			 hex[65];
	int			 n = 0;

	cJSON_ArrayForEach(v, cJSON_GetObjectItem(vec, "aes_key_vectors")) {
		da_error_clear(&err);
		CHECK(envelope_key(str(v, "aes_key"), &key, &err) == DA_OK,
		    "key %s derives", label(v));
		crypto_hex(key.aes, sizeof(key.aes), hex);
		CHECK_STR(hex, str(v, "key_hex"), "key %s bytes",
		    label(v));
		crypto_hex(key.aes, 16, hex);
		CHECK_STR(hex, str(v, "iv_hex"), "key %s iv = key[0:16]",
		    label(v));
		n++;
	}
	CHECK(n >= 5, "aes key vectors found (%d)", n);

	da_error_clear(&err);
	CHECK(envelope_key("4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3i", &key,
	    &err) == DA_EKEY && clean_msg(&err, NULL,
	    "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3i"),
	    "key of 42 chars: DA_EKEY (%s)", err.msg);
	da_error_clear(&err);
	CHECK(envelope_key(T_KEY "a", &key, &err) == DA_EKEY &&
	    clean_msg(&err, NULL, T_KEY), "key of 44 chars: DA_EKEY (%s)",
	    err.msg);
	da_error_clear(&err);
	CHECK(envelope_key("4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3i=",
	    &key, &err) == DA_EKEY, "key of 42 chars and '=': DA_EKEY (%s)",
	    err.msg);
	da_error_clear(&err);
	CHECK(envelope_key("4g5j64qlyl3zvetqxz5jiocdr586fn2z+jpa8zls3ij",
	    &key, &err) == DA_EKEY && clean_msg(&err, NULL,
	    "4g5j64qlyl3zvetqxz5jiocdr586fn2z+jpa8zls3ij"),
	    "key with '+': DA_EKEY (%s)", err.msg);
	da_error_clear(&err);
	CHECK(envelope_key("4g5j64qlyl3zvetqxz5jiocdr586fn2z/jpa8zls3ij",
	    &key, &err) == DA_EKEY, "key with '/': DA_EKEY (%s)", err.msg);
	da_error_clear(&err);
	CHECK(envelope_key("", &key, &err) == DA_EKEY,
	    "empty key: DA_EKEY (%s)", err.msg);
	da_error_clear(&err);
	CHECK(envelope_key(NULL, &key, &err) == DA_EKEY,
	    "NULL key: DA_EKEY (%s)", err.msg);
}

static void
test_vectors(const cJSON *vec)
{
	const cJSON		*v;
	struct envelope_key	 key;
	struct da_error		 err;
	const char		*token, *ts, *nonce, *enc, *sig, *recv, *plain;
	const char		*name, *rnd;
	char			*msg = NULL, *again = NULL, *json = NULL;
	char			 out[41];
	cJSON			*reply, *want;
	size_t			 msglen;
	int			 n = 0;

	cJSON_ArrayForEach(v, cJSON_GetObjectItem(vec, "vectors")) {
		name = label(v);
		token = str(v, "token");
		ts = str(v, "timestamp");
		nonce = str(v, "nonce");
		enc = str(v, "encrypt");
		sig = str(v, "msg_signature");
		recv = str(v, "receiver_id");
		plain = str(v, "plaintext");
		rnd = str(v, "random16");
		n++;
		da_error_clear(&err);
		if (envelope_key(str(v, "aes_key"), &key, &err) != DA_OK) {
			CHECK(0, "%s: key (%s)", name, err.msg);
			continue;
		}
		envelope_sign(token, ts, nonce, enc, out);
		CHECK_STR(out, sig, "%s: signature", name);
		CHECK(envelope_verify(token, ts, nonce, enc, sig, &err) ==
		    DA_OK, "%s: signature verifies", name);
		envelope_sign(enc, nonce, token, ts, out);
		CHECK_STR(out, sig, "%s: signature ignores argument order",
		    name);
		CHECK(envelope_decrypt(&key, recv, enc, &msg, &msglen, &err) ==
		    DA_OK, "%s: decrypts (%s)", name, err.msg);
		CHECK_STR(msg, plain, "%s: plaintext", name);
		CHECK(msg != NULL && msglen == strlen(plain) &&
		    (int)msglen == cJSON_GetObjectItem(v,
		    "plaintext_utf8_len")->valueint, "%s: length %zu", name,
		    msglen);
		free(msg);
		msg = NULL;
		CHECK(envelope_open(token, &key, recv, sig, ts, nonce, enc,
		    &msg, &msglen, &err) == DA_OK && msg != NULL &&
		    strcmp(msg, plain) == 0, "%s: envelope_open", name);
		free(msg);
		msg = NULL;
		CHECK(rnd != NULL && strlen(rnd) == 16 &&
		    envelope_encrypt(&key, recv, plain, strlen(plain), rnd,
		    &again, &err) == DA_OK, "%s: re-encrypts", name);
		CHECK_STR(again, enc, "%s: re-encryption is bit-exact", name);
		free(again);
		again = NULL;
		if (!cJSON_IsObject(want = cJSON_GetObjectItem(v,
		    "reply_json")))
			continue;
		CHECK(envelope_reply(token, &key, recv, plain, ts, nonce, rnd,
		    &json, &err) == DA_OK, "%s: reply", name);
		reply = json != NULL ? cJSON_Parse(json) : NULL;
		CHECK(reply != NULL && cJSON_Compare(reply, want, 1),
		    "%s: reply equals reply_json", name);
		cJSON_Delete(reply);
		free(json);
		json = NULL;
	}
	CHECK(n >= 5, "envelope vectors found (%d)", n);
}

/* One random UTF-8 character of at most room bytes into p; its size. */
static size_t
utf8_char(unsigned char *p, size_t room)
{
	unsigned char	 r[3];
	uint32_t	 cp;
	size_t		 want;

	crypto_random(r, sizeof(r));
	want = 1 + r[0] % 4;
	if (want > room)
		want = room;
	switch (want) {
	case 1:
		p[0] = 0x20 + r[1] % 0x5f;
		break;
	case 2:		/* Latin-1 supplement, Greek, Cyrillic */
		cp = 0xa0 + ((uint32_t)r[1] << 8 | r[2]) % (0x500 - 0xa0);
		p[0] = 0xc0 | cp >> 6;
		p[1] = 0x80 | (cp & 0x3f);
		break;
	case 3:		/* CJK unified ideographs: 钉钉 lives here */
		cp = 0x4e00 + ((uint32_t)r[1] << 8 | r[2]) % (0x9fff - 0x4e00);
		p[0] = 0xe0 | cp >> 12;
		p[1] = 0x80 | ((cp >> 6) & 0x3f);
		p[2] = 0x80 | (cp & 0x3f);
		break;
	default:	/* emoji */
		cp = 0x1f600 + r[1] % 0x50;
		p[0] = 0xf0 | cp >> 18;
		p[1] = 0x80 | ((cp >> 12) & 0x3f);
		p[2] = 0x80 | ((cp >> 6) & 0x3f);
		p[3] = 0x80 | (cp & 0x3f);
		break;
	}
	return want;
}

/* Round trip of a random UTF-8 message of exactly len bytes; 1 if good. */
static int
round_trip(const struct envelope_key *key, size_t len, char *why,
    size_t whysz)
{
	struct da_error	 err;
	unsigned char	 msg[4001], *cipher = NULL, *plain = NULL;
	char		*enc = NULL, *out = NULL;
	size_t		 i, outlen, clen = 0, field;
	int		 ok = 0;

	for (i = 0; i < len; )
		i += utf8_char(msg + i, len - i);
	msg[len] = '\0';
	da_error_clear(&err);
	if (envelope_encrypt(key, T_RECEIVER, (char *)msg, len, NULL, &enc,
	    &err) != DA_OK) {
		snprintf(why, whysz, "encrypt %zu: %s", len, err.msg);
		goto out;
	}
	/* Look inside: the length field counts bytes, the pad fills 32. */
	if (crypto_base64_decode(enc, strlen(enc), &cipher, &clen) != DA_OK ||
	    clen % 32 != 0 || clen != 20 + len + strlen(T_RECEIVER) +
	    (32 - (20 + len + strlen(T_RECEIVER)) % 32)) {
		snprintf(why, whysz, "ciphertext length %zu for %zu", clen,
		    len);
		goto out;
	}
	plain = malloc(clen);
	if (plain == NULL || crypto_aes256cbc_decrypt(key->aes, key->aes,
	    cipher, clen, plain) != DA_OK)
		goto out;
	field = (size_t)plain[16] << 24 | (size_t)plain[17] << 16 |
	    (size_t)plain[18] << 8 | plain[19];
	if (field != len) {
		snprintf(why, whysz, "length field %zu for %zu bytes", field,
		    len);
		goto out;
	}
	if (envelope_decrypt(key, T_RECEIVER, enc, &out, &outlen, &err) !=
	    DA_OK || outlen != len || memcmp(out, msg, len) != 0 ||
	    out[len] != '\0') {
		snprintf(why, whysz, "decrypt %zu: %s", len, err.msg);
		goto out;
	}
	ok = 1;
out:
	free(out);
	free(plain);
	free(cipher);
	free(enc);
	return ok;
}

static void
test_round_trips(void)
{
	struct envelope_key	 key;
	char			 why[400] = "";
	const char		*zh = "钉钉回调：通讯录变更";
	char			*enc = NULL, *out = NULL;
	unsigned char		 r[2];
	size_t			 len, outlen;
	int			 i, good = 0, total = 0;

	envelope_key(T_KEY, &key, NULL);
	for (len = 0; len <= 100; len++, total++)
		good += round_trip(&key, len, why, sizeof(why));
	for (i = 0; i < 300; i++, total++) {
		crypto_random(r, sizeof(r));
		len = ((size_t)r[0] << 8 | r[1]) % 4001;
		good += round_trip(&key, len, why, sizeof(why));
	}
	for (len = 3990; len <= 4000; len++, total++)
		good += round_trip(&key, len, why, sizeof(why));
	CHECK(good == total, "%d/%d random UTF-8 round trips, 0..4000 bytes%s%s",
	    good, total, why[0] ? ": " : "", why);

	CHECK(envelope_encrypt(&key, T_RECEIVER, zh, strlen(zh), NULL, &enc,
	    NULL) == DA_OK && envelope_decrypt(&key, T_RECEIVER, enc, &out,
	    &outlen, NULL) == DA_OK && outlen == 30 && strcmp(out, zh) == 0,
	    "Chinese text: 10 characters, 30 bytes");
	free(enc);
	free(out);
	enc = out = NULL;
	CHECK(envelope_encrypt(&key, T_RECEIVER, "a\0b", 3, NULL, &enc,
	    NULL) == DA_OK && envelope_decrypt(&key, T_RECEIVER, enc, &out,
	    &outlen, NULL) == DA_OK && outlen == 3 &&
	    memcmp(out, "a\0b", 4) == 0, "message with a NUL byte");
	free(enc);
	free(out);
}

/*
 * Encrypt raw plaintext blocks directly (no envelope rules), to craft
 * malformed envelopes: random16 || be32(msg_len) || body || padbytes.
 */
static char *
craft(const struct envelope_key *key, uint32_t msg_len, const char *body,
    size_t padn, unsigned char padbyte)
{
	unsigned char	 plain[256], cipher[256];
	size_t		 len, blen = strlen(body);

	memcpy(plain, "0123456789abcdef", 16);
	plain[16] = msg_len >> 24;
	plain[17] = msg_len >> 16;
	plain[18] = msg_len >> 8;
	plain[19] = msg_len;
	memcpy(plain + 20, body, blen);
	len = 20 + blen;
	memset(plain + len, padbyte, padn);
	len += padn;
	if (len % 16 != 0 || len > sizeof(plain))
		return NULL;
	if (crypto_aes256cbc_encrypt(key->aes, key->aes, plain, len,
	    cipher) != DA_OK)
		return NULL;
	return crypto_base64_encode(cipher, len);
}

static enum da_err
try(const struct envelope_key *key, const char *receiver, const char *enc,
    struct da_error *err)
{
	char		*msg = NULL;
	size_t		 len;
	enum da_err	 rc;

	da_error_clear(err);
	if (enc == NULL)
		return DA_ERR__MAX;
	rc = envelope_decrypt(key, receiver, enc, &msg, &len, err);
	if (rc != DA_OK && msg != NULL)
		rc = DA_ERR__MAX;	/* no output on failure */
	free(msg);
	return rc;
}

static void
test_malformed(void)
{
	struct envelope_key	 key;
	struct da_error		 err;
	char			*e, *good = NULL, *mut = NULL, *msg = NULL;
	unsigned char		 raw[24];
	char			 sig[41];
	size_t			 len;

	envelope_key(T_KEY, &key, NULL);
	envelope_encrypt(&key, T_RECEIVER, "{\"EventType\":\"check_url\"}", 25,
	    "RANDOMrandom1234", &good, NULL);

	/*
	 * "hello" || receiver is 26 bytes after the 20-byte header: a pad
	 * of 2 makes 48 bytes (a 16-byte PKCS#7, as the Go and Rust helpers
	 * do), a pad of 18 makes 64.
	 */
	e = craft(&key, 5, "hello" T_RECEIVER, 2, 2);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_OK,
	    "48 bytes (a multiple of 16, not 32) accepted (%s)", err.msg);
	free(e);
	e = craft(&key, 5, "hello" T_RECEIVER, 18, 18);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_OK,
	    "pad 18 in 64 bytes accepted (%s)", err.msg);
	free(e);

	/* Base64. */
	CHECK(try(&key, T_RECEIVER, "", &err) == DA_EB64 &&
	    clean_msg(&err, T_TOKEN, T_KEY), "empty encrypt: DA_EB64 (%s)",
	    err.msg);
	mut = strdup(good);
	mut[5] = '*';
	CHECK(try(&key, T_RECEIVER, mut, &err) == DA_EB64,
	    "illegal base64 character: DA_EB64 (%s)", err.msg);
	mut[5] = good[5];
	mut[strlen(mut) - 1] = '\0';
	CHECK(try(&key, T_RECEIVER, mut, &err) == DA_EB64,
	    "base64 length not a multiple of 4: DA_EB64 (%s)", err.msg);
	free(mut);
	mut = strdup(good);
	mut[8] = '=';
	CHECK(try(&key, T_RECEIVER, mut, &err) == DA_EB64,
	    "'=' inside the base64: DA_EB64 (%s)", err.msg);
	free(mut);
	mut = NULL;
	crypto_random(raw, sizeof(raw));
	e = crypto_base64_encode(raw, 24);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_EB64,
	    "24 bytes (not a multiple of 16): DA_EB64 (%s)", err.msg);
	free(e);
	e = crypto_base64_encode(raw, 15);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_EB64,
	    "15 bytes: DA_EB64 (%s)", err.msg);
	free(e);
	CHECK(try(&key, T_RECEIVER, "Zm9v", &err) == DA_EB64,
	    "3 bytes: DA_EB64 (%s)", err.msg);
	CHECK(envelope_decrypt(&key, T_RECEIVER, NULL, &msg, &len, &err) ==
	    DA_EB64 && msg == NULL, "NULL encrypt: DA_EB64");

	/* Padding. */
	e = craft(&key, 5, "hello" T_RECEIVER, 2, 0);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_EPAD &&
	    clean_msg(&err, T_TOKEN, T_KEY), "pad 0: DA_EPAD (%s)", err.msg);
	free(e);
	e = craft(&key, 5, "hello" T_RECEIVER, 18, 33);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_EPAD,
	    "pad 33: DA_EPAD (%s)", err.msg);
	free(e);
	e = craft(&key, 0, "", 12, 32);
	CHECK(try(&key, "", e, &err) == DA_EPAD,
	    "pad 32 in a 32-byte plaintext (more than the data): DA_EPAD (%s)",
	    err.msg);
	free(e);
	e = craft(&key, 0, "abcd", 8, 13);
	CHECK(try(&key, "", e, &err) == DA_EPAD,
	    "pad 13 eats into the 20-byte header: DA_EPAD (%s)", err.msg);
	free(e);
	e = craft(&key, 0, "", 12, 12);
	CHECK(try(&key, "", e, &err) == DA_OK,
	    "pad exactly len - 20, empty message and receiver: ok (%s)",
	    err.msg);
	free(e);

	/* Length field. */
	e = craft(&key, 6, "hello" T_RECEIVER, 2, 2);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_ERECEIVER,
	    "msg_len one too many shifts the receiver (%s)", err.msg);
	free(e);
	e = craft(&key, 27, "hello" T_RECEIVER, 2, 2);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_ELEN &&
	    clean_msg(&err, T_TOKEN, T_KEY),
	    "msg_len larger than the data: DA_ELEN (%s)", err.msg);
	free(e);
	e = craft(&key, 1000, "hello" T_RECEIVER, 2, 2);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_ELEN,
	    "msg_len 1000: DA_ELEN (%s)", err.msg);
	free(e);
	e = craft(&key, UINT32_MAX, "hello" T_RECEIVER, 2, 2);
	CHECK(try(&key, T_RECEIVER, e, &err) == DA_ELEN,
	    "msg_len 0xffffffff: DA_ELEN (%s)", err.msg);
	free(e);

	/* Receiver. */
	CHECK(try(&key, "suite4xxxxxxxxxxxxxx", good, &err) == DA_ERECEIVER &&
	    clean_msg(&err, T_TOKEN, T_KEY),
	    "receiver is a prefix of the real one: DA_ERECEIVER (%s)",
	    err.msg);
	CHECK(try(&key, T_RECEIVER "x", good, &err) == DA_ERECEIVER,
	    "receiver longer than the real one: DA_ERECEIVER (%s)", err.msg);
	CHECK(try(&key, "suite4xxxxxxxxxxxxxxX", good, &err) == DA_ERECEIVER,
	    "receiver differs in its last byte: DA_ERECEIVER (%s)", err.msg);
	CHECK(try(&key, "", good, &err) == DA_ERECEIVER,
	    "empty receiver: DA_ERECEIVER (%s)", err.msg);
	CHECK(try(&key, "SUITE4XXXXXXXXXXXXXXX", good, &err) == DA_ERECEIVER,
	    "receiver compared byte-exact: DA_ERECEIVER (%s)", err.msg);
	CHECK(try(&key, T_RECEIVER, good, &err) == DA_OK,
	    "the real receiver: ok");

	/* Wrong key: garbage plaintext fails somewhere, never crashes. */
	{
		struct envelope_key	 other;
		enum da_err		 rc;

		envelope_key("1234567890123456789012345678901234567890123",
		    &other, NULL);
		rc = try(&other, T_RECEIVER, good, &err);
		CHECK(rc == DA_EPAD || rc == DA_ELEN || rc == DA_ERECEIVER,
		    "wrong key is rejected (%s)", err.msg);
	}

	/* Signatures. */
	envelope_sign(T_TOKEN, "1700000000000", "nonce001", good, sig);
	da_error_clear(&err);
	CHECK(envelope_verify(T_TOKEN, "1700000000000", "nonce001", good, sig,
	    &err) == DA_OK, "crafted signature verifies");
	sig[7] = sig[7] == '0' ? '1' : '0';
	CHECK(envelope_verify(T_TOKEN, "1700000000000", "nonce001", good, sig,
	    &err) == DA_ESIG && clean_msg(&err, T_TOKEN, T_KEY),
	    "one hex digit changed: DA_ESIG (%s)", err.msg);
	sig[7] = sig[7] == '0' ? '1' : '0';
	{
		char	 up[41];
		size_t	 i;

		for (i = 0; i < 41; i++)
			up[i] = (sig[i] >= 'a' && sig[i] <= 'f') ?
			    sig[i] - 'a' + 'A' : sig[i];
		CHECK(strcmp(up, sig) != 0 && envelope_verify(T_TOKEN,
		    "1700000000000", "nonce001", good, up, &err) == DA_ESIG,
		    "uppercase signature: DA_ESIG");
	}
	CHECK(envelope_verify(T_TOKEN, "1700000000000", "nonce001", good, "",
	    &err) == DA_ESIG, "empty signature: DA_ESIG (%s)", err.msg);
	CHECK(envelope_verify(T_TOKEN, "1700000000000", "nonce001", good, NULL,
	    &err) == DA_ESIG, "NULL signature: DA_ESIG");
	sig[39] = '\0';
	CHECK(envelope_verify(T_TOKEN, "1700000000000", "nonce001", good, sig,
	    &err) == DA_ESIG, "truncated signature: DA_ESIG");
	envelope_sign(T_TOKEN, "1700000000000", "nonce001", good, sig);
	CHECK(envelope_verify("wrongtoken", "1700000000000", "nonce001", good,
	    sig, &err) == DA_ESIG, "wrong token: DA_ESIG");
	CHECK(envelope_verify(T_TOKEN, "1700000000001", "nonce001", good,
	    sig, &err) == DA_ESIG, "changed timestamp: DA_ESIG");

	/* envelope_open checks the signature before anything else. */
	da_error_clear(&err);
	CHECK(envelope_open(T_TOKEN, &key, T_RECEIVER, sig, "1700000000000",
	    "nonce001", good, &msg, &len, &err) == DA_OK && msg != NULL &&
	    strcmp(msg, "{\"EventType\":\"check_url\"}") == 0,
	    "envelope_open of a good push");
	free(msg);
	msg = NULL;
	CHECK(envelope_open(T_TOKEN, &key, T_RECEIVER, sig, "1700000000000",
	    "nonce001", "not*base64", &msg, &len, &err) == DA_ESIG &&
	    msg == NULL, "bad signature wins over bad base64 (%s)", err.msg);
	envelope_sign(T_TOKEN, "1", "n", "not*base64", sig);
	CHECK(envelope_open(T_TOKEN, &key, T_RECEIVER, sig, "1", "n",
	    "not*base64", &msg, &len, &err) == DA_EB64 && msg == NULL,
	    "signed garbage reaches the base64 check (%s)", err.msg);
	envelope_sign(T_TOKEN, "1", "n", good, sig);
	CHECK(envelope_open(T_TOKEN, &key, "dingother", sig, "1", "n", good,
	    &msg, &len, &err) == DA_ERECEIVER && msg == NULL,
	    "envelope_open wrong receiver: DA_ERECEIVER (%s)", err.msg);
	free(good);
}

static void
test_reply(void)
{
	struct envelope_key	 key;
	struct da_error		 err;
	cJSON			*j = NULL, *it;
	const char		*names[] = { "msg_signature", "timeStamp",
				    "nonce", "encrypt" };
	const char		*v[4] = { NULL, NULL, NULL, NULL };
	char			*json = NULL, *msg = NULL, *json2 = NULL;
	size_t			 i, len;
	int			 strings = 1;

	envelope_key(T_KEY, &key, NULL);
	da_error_clear(&err);
	CHECK(envelope_reply(T_TOKEN, &key, T_RECEIVER, NULL, NULL, NULL,
	    NULL, &json, &err) == DA_OK && json != NULL, "fresh reply");
	j = json != NULL ? cJSON_Parse(json) : NULL;
	CHECK(cJSON_IsObject(j) && cJSON_GetArraySize(j) == 4,
	    "reply is a JSON object with 4 members");
	for (i = 0; i < 4; i++) {
		it = cJSON_GetObjectItemCaseSensitive(j, names[i]);
		if (!cJSON_IsString(it))
			strings = 0;
		else
			v[i] = it->valuestring;
	}
	CHECK(strings, "msg_signature, timeStamp, nonce, encrypt are strings");
	if (strings) {
		CHECK(strlen(v[1]) == 13 && strspn(v[1], "0123456789") == 13,
		    "timeStamp is milliseconds (%s)", v[1]);
		CHECK(strlen(v[2]) == 16 && strspn(v[2], "ABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 16,
		    "nonce is 16 alphanumerics");
		CHECK(envelope_open(T_TOKEN, &key, T_RECEIVER, v[0], v[1],
		    v[2], v[3], &msg, &len, &err) == DA_OK && msg != NULL &&
		    strcmp(msg, "success") == 0,
		    "reply verifies and decrypts to success");
		free(msg);
		msg = NULL;
	}
	CHECK(envelope_reply(T_TOKEN, &key, T_RECEIVER, NULL, NULL, NULL,
	    NULL, &json2, &err) == DA_OK && strcmp(json, json2) != 0,
	    "two fresh replies differ");
	cJSON_Delete(j);
	free(json);
	free(json2);
	json = NULL;
	CHECK(envelope_reply(T_TOKEN, &key, T_RECEIVER, "ok\"\\\n", "1",
	    "n\"", "RANDOMrandom1234", &json, &err) == DA_OK &&
	    (j = cJSON_Parse(json)) != NULL && strcmp(cJSON_GetObjectItem(j,
	    "nonce")->valuestring, "n\"") == 0, "reply escapes JSON");
	cJSON_Delete(j);
	free(json);
}

int
main(void)
{
	cJSON	*vec;

	vec = load_vectors();
	CHECK(vec != NULL, "load %s", VECTORS);
	test_keys(vec);
	test_vectors(vec);
	test_round_trips();
	test_malformed();
	test_reply();
	cJSON_Delete(vec);
	return unit_done();
}
