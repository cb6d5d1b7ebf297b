/*
 * DingTalk's callback envelope (docs/dingtalk.md §a): key derivation,
 * signature, the AES-256-CBC layout with a 32-byte PKCS#7 pad, and the
 * encrypted "success" reply. Error messages describe what is wrong with
 * the input; they never carry the token, the key or the plaintext.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "crypto.h"
#include "envelope.h"
#include "mem.h"

#define ENVELOPE_KEY_LEN	43	/* EncodingAESKey characters */
#define ENVELOPE_RANDOM_LEN	16	/* random prefix */
#define ENVELOPE_HEAD_LEN	20	/* random prefix + be32 length */
#define ENVELOPE_BLOCK		32	/* DingTalk's PKCS#7 block */
#define ENVELOPE_NONCE_LEN	16	/* nonce of a fresh reply */
#define ENVELOPE_SHOW_MAX	64	/* longest receiver id quoted back */

static int
key_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

enum da_err
envelope_key(const char *encoding_aes_key, struct envelope_key *key,
    struct da_error *err)
{
	char		 text[ENVELOPE_KEY_LEN + 2];
	unsigned char	*raw = NULL;
	size_t		 i, len, rawlen = 0;
	enum da_err	 rc;

	memset(key, 0, sizeof(*key));
	if (encoding_aes_key == NULL || *encoding_aes_key == '\0') {
		rc = DA_ERROR(err, DA_EKEY, "no EncodingAESKey given");
		goto out;
	}
	len = strlen(encoding_aes_key);
	if (len != ENVELOPE_KEY_LEN) {
		rc = DA_ERROR(err, DA_EKEY, "EncodingAESKey has %zu "
		    "characters, it must have exactly %d of [A-Za-z0-9]",
		    len, ENVELOPE_KEY_LEN);
		goto out;
	}
	for (i = 0; i < len; i++)
		if (!key_char((unsigned char)encoding_aes_key[i]))
			break;
	if (i < len) {
		rc = DA_ERROR(err, DA_EKEY, "EncodingAESKey has a character "
		    "outside [A-Za-z0-9] at position %zu", i + 1);
		goto out;
	}
	/*
	 * 43 characters and "=" decode to 32 bytes; the two low bits of
	 * the last character are ignored (real keys have them set), which
	 * crypto_base64_decode allows.
	 */
	memcpy(text, encoding_aes_key, len);
	text[len] = '=';
	text[len + 1] = '\0';
	if (crypto_base64_decode(text, len + 1, &raw, &rawlen) != DA_OK ||
	    rawlen != sizeof(key->aes)) {
		rc = DA_ERROR(err, DA_EKEY, "EncodingAESKey does not decode "
		    "to a 32-byte AES key");
		goto out;
	}
	memcpy(key->aes, raw, sizeof(key->aes));
	rc = DA_OK;
out:
	crypto_cleanse(text, sizeof(text));
	if (raw != NULL) {
		crypto_cleanse(raw, rawlen);
		free(raw);
	}
	return rc;
}

void
envelope_sign(const char *token, const char *timestamp, const char *nonce,
    const char *encrypt, char out[41])
{
	const char	*s[4], *t;
	size_t		 i, j;

	s[0] = token != NULL ? token : "";
	s[1] = timestamp != NULL ? timestamp : "";
	s[2] = nonce != NULL ? nonce : "";
	s[3] = encrypt != NULL ? encrypt : "";
	/* Insertion sort by bytes (strcmp compares as unsigned char). */
	for (i = 1; i < 4; i++) {
		t = s[i];
		for (j = i; j > 0 && strcmp(s[j - 1], t) > 0; j--)
			s[j] = s[j - 1];
		s[j] = t;
	}
	crypto_sha1_hex_parts(s, 4, out);
}

enum da_err
envelope_verify(const char *token, const char *timestamp, const char *nonce,
    const char *encrypt, const char *sig, struct da_error *err)
{
	char	 want[CRYPTO_SHA1_HEX_LEN + 1];
	int	 ok;

	if (sig == NULL || *sig == '\0')
		return DA_ERROR(err, DA_ESIG, "no signature given");
	envelope_sign(token, timestamp, nonce, encrypt, want);
	ok = crypto_str_equal(sig, want);
	crypto_cleanse(want, sizeof(want));
	if (!ok)
		return DA_ERROR(err, DA_ESIG, "signature does not match "
		    "SHA-1 of the sorted token, timestamp, nonce and encrypt "
		    "(wrong token, or a value changed in transit)");
	return DA_OK;
}

/* Quote the receiver id found in a plaintext if it is short and printable. */
static void
describe_receiver(const unsigned char *p, size_t len, char *out, size_t outsz)
{
	size_t	 i;

	if (len == 0) {
		snprintf(out, outsz, "an empty receiver id");
		return;
	}
	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"' ||
		    p[i] == '\\')
			break;
	if (i < len || len > ENVELOPE_SHOW_MAX)
		snprintf(out, outsz, "a %zu-byte receiver id", len);
	else
		snprintf(out, outsz, "receiver id \"%.*s\"", (int)len,
		    (const char *)p);
}

/*
 * Each step of the format (docs/dingtalk.md §a) in order, each with the
 * error that names what is wrong: longer than most, but split it would
 * scatter the one layout it checks.
 */
enum da_err
envelope_decrypt(const struct envelope_key *key, const char *receiver,
    const char *encrypt, char **msg, size_t *msglen, struct da_error *err)
{
	unsigned char	*cipher = NULL, *plain = NULL;
	const unsigned char *tail;
	size_t		 len = 0, pad, mlen, rlen, want;
	char		 seen[ENVELOPE_SHOW_MAX + 32];
	enum da_err	 rc;

	*msg = NULL;
	*msglen = 0;
	if (receiver == NULL) {
		rc = DA_ERROR(err, DA_EINPUT, "no receiver id to check "
		    "the envelope against");
		goto out;
	}
	if (encrypt == NULL || *encrypt == '\0') {
		rc = DA_ERROR(err, DA_EB64, "encrypt is empty");
		goto out;
	}
	if (crypto_base64_decode(encrypt, strlen(encrypt), &cipher,
	    &len) != DA_OK) {
		rc = DA_ERROR(err, DA_EB64, "encrypt (%zu characters) is not "
		    "standard base64 (A-Z a-z 0-9 + / with = padding, length "
		    "a multiple of 4)", strlen(encrypt));
		goto out;
	}
	if (len == 0 || len % 16 != 0) {
		rc = DA_ERROR(err, DA_EB64, "ciphertext is %zu bytes, not a "
		    "positive multiple of the 16-byte AES block", len);
		goto out;
	}
	plain = xmalloc(len);
	if (crypto_aes256cbc_decrypt(key->aes, key->aes, cipher, len,
	    plain) != DA_OK) {
		rc = DA_ERROR(err, DA_ECRYPTO, "AES-256-CBC decryption "
		    "failed");
		goto out;
	}
	pad = plain[len - 1];
	if (pad < 1 || pad > ENVELOPE_BLOCK) {
		rc = DA_ERROR(err, DA_EPAD, "pad byte %zu is outside 1..%d "
		    "(wrong EncodingAESKey?)", pad, ENVELOPE_BLOCK);
		goto out;
	}
	if (len < ENVELOPE_HEAD_LEN || pad > len - ENVELOPE_HEAD_LEN) {
		rc = DA_ERROR(err, DA_EPAD, "pad of %zu bytes leaves less "
		    "than the %d-byte header in a %zu-byte plaintext", pad,
		    ENVELOPE_HEAD_LEN, len);
		goto out;
	}
	mlen = (size_t)plain[16] << 24 | (size_t)plain[17] << 16 |
	    (size_t)plain[18] << 8 | (size_t)plain[19];
	if (mlen > len - pad - ENVELOPE_HEAD_LEN) {
		rc = DA_ERROR(err, DA_ELEN, "message length field says %zu "
		    "bytes but only %zu follow the header", mlen,
		    len - pad - ENVELOPE_HEAD_LEN);
		goto out;
	}
	tail = plain + ENVELOPE_HEAD_LEN + mlen;
	rlen = len - pad - ENVELOPE_HEAD_LEN - mlen;
	want = strlen(receiver);
	if (rlen != want || memcmp(tail, receiver, want) != 0) {
		describe_receiver(tail, rlen, seen, sizeof(seen));
		rc = DA_ERROR(err, DA_ERECEIVER, "envelope carries %s, "
		    "expected \"%.*s\" (CorpId for register_call_back, "
		    "AppKey for console push)", seen, ENVELOPE_SHOW_MAX,
		    receiver);
		goto out;
	}
	*msg = xstrndup((const char *)plain + ENVELOPE_HEAD_LEN, mlen);
	*msglen = mlen;
	rc = DA_OK;
out:
	if (plain != NULL) {
		crypto_cleanse(plain, len);
		free(plain);
	}
	free(cipher);
	return rc;
}

enum da_err
envelope_encrypt(const struct envelope_key *key, const char *receiver,
    const char *msg, size_t msglen, const char *random16, char **encrypt,
    struct da_error *err)
{
	unsigned char	*plain = NULL, *cipher = NULL;
	char		 rnd[ENVELOPE_RANDOM_LEN + 1];
	size_t		 rlen, len = 0, pad;
	enum da_err	 rc;

	*encrypt = NULL;
	if (receiver == NULL || (msg == NULL && msglen > 0)) {
		rc = DA_ERROR(err, DA_EINPUT, "no receiver id or message to "
		    "encrypt");
		goto out;
	}
	rlen = strlen(receiver);
	if (msglen > UINT32_MAX || rlen > SIZE_MAX / 2 - msglen) {
		rc = DA_ERROR(err, DA_EINPUT, "message of %zu bytes is too "
		    "long for the 32-bit length field", msglen);
		goto out;
	}
	len = ENVELOPE_HEAD_LEN + msglen + rlen;
	pad = ENVELOPE_BLOCK - len % ENVELOPE_BLOCK;
	len += pad;
	plain = xmalloc(len);
	cipher = xmalloc(len);
	if (random16 != NULL)
		memcpy(plain, random16, ENVELOPE_RANDOM_LEN);
	else {
		crypto_random_alnum(rnd, ENVELOPE_RANDOM_LEN);
		memcpy(plain, rnd, ENVELOPE_RANDOM_LEN);
	}
	plain[16] = (unsigned char)(msglen >> 24);
	plain[17] = (unsigned char)(msglen >> 16);
	plain[18] = (unsigned char)(msglen >> 8);
	plain[19] = (unsigned char)msglen;
	if (msglen > 0)
		memcpy(plain + ENVELOPE_HEAD_LEN, msg, msglen);
	memcpy(plain + ENVELOPE_HEAD_LEN + msglen, receiver, rlen);
	memset(plain + len - pad, (int)pad, pad);
	if (crypto_aes256cbc_encrypt(key->aes, key->aes, plain, len,
	    cipher) != DA_OK) {
		rc = DA_ERROR(err, DA_ECRYPTO, "AES-256-CBC encryption "
		    "failed");
		goto out;
	}
	*encrypt = crypto_base64_encode(cipher, len);
	rc = DA_OK;
out:
	if (plain != NULL) {
		crypto_cleanse(plain, len);
		free(plain);
	}
	free(cipher);
	return rc;
}

enum da_err
envelope_open(const char *token, const struct envelope_key *key,
    const char *receiver, const char *signature, const char *timestamp,
    const char *nonce, const char *encrypt, char **msg, size_t *msglen,
    struct da_error *err)
{
	enum da_err	 rc;

	*msg = NULL;
	*msglen = 0;
	/* The signature authenticates the ciphertext: check it first. */
	if ((rc = envelope_verify(token, timestamp, nonce, encrypt,
	    signature, err)) != DA_OK)
		return rc;
	return envelope_decrypt(key, receiver, encrypt, msg, msglen, err);
}

static void
add_string(cJSON *obj, const char *name, const char *value)
{
	if (cJSON_AddStringToObject(obj, name, value) == NULL)
		abort();
}

enum da_err
envelope_reply(const char *token, const struct envelope_key *key,
    const char *receiver, const char *msg, const char *timestamp,
    const char *nonce, const char *random16, char **json,
    struct da_error *err)
{
	struct timespec	 ts;
	cJSON		*obj = NULL;
	char		*encrypt = NULL, *text = NULL;
	char		 now[32];
	char		 fresh[ENVELOPE_RANDOM_LEN + ENVELOPE_NONCE_LEN + 1];
	char		 sig[CRYPTO_SHA1_HEX_LEN + 1];
	enum da_err	 rc;

	*json = NULL;
	if (msg == NULL)
		msg = "success";
	if (timestamp == NULL) {
		if (clock_gettime(CLOCK_REALTIME, &ts) == -1) {
			rc = DA_ERROR(err, DA_EINPUT, "clock_gettime failed");
			goto out;
		}
		snprintf(now, sizeof(now), "%lld",
		    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		timestamp = now;
	}
	/*
	 * The random prefix and the nonce from one draw (the RNG is a good
	 * part of a replay's cost): the prefix first, then the nonce,
	 * NUL-terminated by crypto_random_alnum.
	 */
	if (random16 == NULL || nonce == NULL) {
		crypto_random_alnum(fresh, ENVELOPE_RANDOM_LEN +
		    ENVELOPE_NONCE_LEN);
		if (random16 == NULL)
			random16 = fresh;
		if (nonce == NULL)
			nonce = fresh + ENVELOPE_RANDOM_LEN;
	}
	if ((rc = envelope_encrypt(key, receiver, msg, strlen(msg), random16,
	    &encrypt, err)) != DA_OK)
		goto out;
	envelope_sign(token, timestamp, nonce, encrypt, sig);
	if ((obj = cJSON_CreateObject()) == NULL)
		abort();
	add_string(obj, "msg_signature", sig);
	add_string(obj, "timeStamp", timestamp);
	add_string(obj, "nonce", nonce);
	add_string(obj, "encrypt", encrypt);
	if ((text = cJSON_PrintUnformatted(obj)) == NULL)
		abort();
	*json = xstrdup(text);
	rc = DA_OK;
out:
	if (text != NULL)
		cJSON_free(text);
	cJSON_Delete(obj);
	free(encrypt);
	return rc;
}
