#ifndef DINGAUTH_ENVELOPE_H
#define DINGAUTH_ENVELOPE_H

#include <stddef.h>

#include "err.h"

/*
 * DingTalk's callback envelope, exactly as docs/dingtalk.md §a:
 * AESKey = base64(EncodingAESKey + "="), 32 bytes, leniently decoded;
 * AES-256-CBC, IV = key[0:16], no OpenSSL padding; DingTalk's own PKCS#7
 * with a 32-byte block; plaintext = random(16) || be32(len) || msg ||
 * receiver_id || pad; signature = sha1_hex(concat(sort(token, timestamp,
 * nonce, encrypt))).
 */

struct envelope_key {
	unsigned char	aes[32];
};

/* Derive the AES key from the 43-character EncodingAESKey. DA_EKEY. */
enum da_err envelope_key(const char *encoding_aes_key,
	    struct envelope_key *key, struct da_error *err);

/* Signature of the four strings (any order: they are sorted). */
void	 envelope_sign(const char *token, const char *timestamp,
	    const char *nonce, const char *encrypt, char out[41]);

/* Constant-time check of sig against the four strings: DA_OK or DA_ESIG. */
enum da_err envelope_verify(const char *token, const char *timestamp,
	    const char *nonce, const char *encrypt, const char *sig,
	    struct da_error *err);

/*
 * Decrypt encrypt (base64 text as received) and check every field:
 * DA_EB64 (not base64, empty, not a multiple of 16), DA_EPAD (pad byte
 * outside 1..32 or more than the data), DA_ELEN (msg_len overflows),
 * DA_ERECEIVER (suffix differs from receiver). On success *msg is the
 * message (allocated, NUL-terminated, caller frees) and *msglen its byte
 * length. The message is not checked for UTF-8 or JSON here.
 */
enum da_err envelope_decrypt(const struct envelope_key *key,
	    const char *receiver, const char *encrypt, char **msg,
	    size_t *msglen, struct da_error *err);

/*
 * Encrypt msg for receiver. random16 is 16 bytes of random prefix, or
 * NULL to draw 16 random [A-Za-z0-9] characters. *encrypt is the base64
 * text (allocated, caller frees).
 */
enum da_err envelope_encrypt(const struct envelope_key *key,
	    const char *receiver, const char *msg, size_t msglen,
	    const char *random16, char **encrypt, struct da_error *err);

/*
 * Verify then decrypt: the whole check of an incoming push.
 */
enum da_err envelope_open(const char *token, const struct envelope_key *key,
	    const char *receiver, const char *signature, const char *timestamp,
	    const char *nonce, const char *encrypt, char **msg, size_t *msglen,
	    struct da_error *err);

/*
 * The reply DingTalk expects: a JSON object with msg_signature,
 * timeStamp, nonce and encrypt (all strings) carrying msg (normally
 * "success") encrypted for receiver. timestamp (ms), nonce and random16
 * may be NULL for fresh values. *json is allocated, caller frees.
 */
enum da_err envelope_reply(const char *token, const struct envelope_key *key,
	    const char *receiver, const char *msg, const char *timestamp,
	    const char *nonce, const char *random16, char **json,
	    struct da_error *err);

#endif
