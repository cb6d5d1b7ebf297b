#ifndef DINGAUTH_CRYPTO_H
#define DINGAUTH_CRYPTO_H

#include <stddef.h>

#include "err.h"

/*
 * A small facade over OpenSSL EVP. No OpenSSL type appears here.
 * Failures of OpenSSL itself (which do not happen with valid arguments)
 * abort the process; functions that judge input return enum da_err.
 */

#define CRYPTO_SHA1_HEX_LEN	40
#define CRYPTO_SHA256_LEN	32

/* Lowercase hex SHA-1 of data into out (41 bytes with NUL). */
void	 crypto_sha1_hex(const void *data, size_t len, char out[41]);
/* SHA-1 of data, the 20 bytes (the WebSocket handshake's accept key). */
void	 crypto_sha1(const void *data, size_t len, unsigned char out[20]);
/* SHA-1 over several pieces concatenated, hex. */
void	 crypto_sha1_hex_parts(const char *const *parts, size_t nparts,
	    char out[41]);
void	 crypto_sha256(const void *data, size_t len,
	    unsigned char out[CRYPTO_SHA256_LEN]);
/* Lowercase hex SHA-256 (65 bytes with NUL). */
void	 crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 of msg under key, base64-encoded into out (45 bytes). */
void	 crypto_hmac_sha256_base64(const void *key, size_t keylen,
	    const void *msg, size_t msglen, char out[45]);

/* Standard base64 (RFC 4648 §4, with padding, no newlines); caller frees. */
char	*crypto_base64_encode(const void *data, size_t len);
/*
 * Strict standard base64 decode of in[0..len): length a multiple of 4,
 * only the alphabet, '=' only as final padding. *out is allocated
 * (caller frees) and NUL-terminated. DA_EB64 on bad input.
 */
enum da_err crypto_base64_decode(const char *in, size_t len,
	    unsigned char **out, size_t *outlen);

/* Cryptographically secure random bytes (RAND_bytes); aborts on failure. */
void	 crypto_random(void *buf, size_t len);
/* n random characters of [A-Za-z0-9] followed by a NUL (out has n+1). */
void	 crypto_random_alnum(char *out, size_t n);
/* 2*len lowercase hex digits of data, NUL-terminated. */
void	 crypto_hex(const void *data, size_t len, char *out);

/* Constant-time comparison (CRYPTO_memcmp): 1 if equal. */
int	 crypto_equal(const void *a, const void *b, size_t len);
/*
 * Constant-time string equality: time depends only on the length of b
 * (the secret/expected value), 1 if equal.
 */
int	 crypto_str_equal(const char *a, const char *b);
/* Wipes memory the compiler may not optimise away (OPENSSL_cleanse). */
void	 crypto_cleanse(void *p, size_t len);

/*
 * AES-256-CBC with OpenSSL padding OFF: len must be a multiple of 16.
 * out receives len bytes. DA_EINPUT on a bad length, DA_ECRYPTO if
 * OpenSSL fails.
 */
enum da_err crypto_aes256cbc_encrypt(const unsigned char key[32],
	    const unsigned char iv[16], const unsigned char *in, size_t len,
	    unsigned char *out);
enum da_err crypto_aes256cbc_decrypt(const unsigned char key[32],
	    const unsigned char iv[16], const unsigned char *in, size_t len,
	    unsigned char *out);

#endif
