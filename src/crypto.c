/*
 * The crypto facade: SHA-1, SHA-256, HMAC-SHA256, base64, random bytes,
 * constant-time comparison and AES-256-CBC without OpenSSL padding, all
 * through OpenSSL. No primitive is written by hand here.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "log.h"
#include "mem.h"

/* Largest input handed to RAND_bytes, which takes an int length. */
#define CRYPTO_CHUNK	(1u << 30)

static const char alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* OpenSSL failed where it cannot with valid arguments: stop. */
static void
crypto_fatal(const char *what)
{
	log_msg(LOG_ERR, "OpenSSL failure in %s", what);
	abort();
}

/*
 * The algorithms, fetched once per process. EVP_sha1() and friends are
 * looked up again in the provider on every Init (OpenSSL 3's implicit
 * fetch, a good part of a short digest's cost); fetched objects are
 * shared by all threads and kept until exit.
 */
static pthread_once_t	 algs_once = PTHREAD_ONCE_INIT;
static EVP_MD		*alg_sha1, *alg_sha256;
static EVP_CIPHER	*alg_aes256cbc;

static void
algs_fetch(void)
{
	if ((alg_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL ||
	    (alg_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (alg_aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC",
	    NULL)) == NULL)
		crypto_fatal("EVP_MD_fetch");
}

static const EVP_MD *
md_sha1(void)
{
	pthread_once(&algs_once, algs_fetch);
	return alg_sha1;
}

static const EVP_MD *
md_sha256(void)
{
	pthread_once(&algs_once, algs_fetch);
	return alg_sha256;
}

static const EVP_CIPHER *
cipher_aes256cbc(void)
{
	pthread_once(&algs_once, algs_fetch);
	return alg_aes256cbc;
}

static EVP_MD_CTX *
digest_begin(const EVP_MD *md)
{
	EVP_MD_CTX	*ctx;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		crypto_fatal("EVP_MD_CTX_new");
	if (!EVP_DigestInit_ex(ctx, md, NULL))
		crypto_fatal("EVP_DigestInit_ex");
	return ctx;
}

static void
digest_update(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	if (len > 0 && !EVP_DigestUpdate(ctx, data, len))
		crypto_fatal("EVP_DigestUpdate");
}

static void
digest_end(EVP_MD_CTX *ctx, unsigned char *out)
{
	if (!EVP_DigestFinal_ex(ctx, out, NULL))
		crypto_fatal("EVP_DigestFinal_ex");
	EVP_MD_CTX_free(ctx);
}

void
crypto_hex(const void *data, size_t len, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	const unsigned char	*p = data;
	size_t			 i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

void
crypto_sha1_hex(const void *data, size_t len, char out[41])
{
	unsigned char	 md[20];
	EVP_MD_CTX	*ctx;

	ctx = digest_begin(md_sha1());
	digest_update(ctx, data, len);
	digest_end(ctx, md);
	crypto_hex(md, sizeof(md), out);
}

void
crypto_sha1(const void *data, size_t len, unsigned char out[20])
{
	EVP_MD_CTX	*ctx;

	ctx = digest_begin(md_sha1());
	digest_update(ctx, data, len);
	digest_end(ctx, out);
}

void
crypto_sha1_hex_parts(const char *const *parts, size_t nparts, char out[41])
{
	unsigned char	 md[20];
	EVP_MD_CTX	*ctx;
	size_t		 i;

	ctx = digest_begin(md_sha1());
	for (i = 0; i < nparts; i++)
		digest_update(ctx, parts[i], strlen(parts[i]));
	digest_end(ctx, md);
	crypto_hex(md, sizeof(md), out);
}

void
crypto_sha256(const void *data, size_t len,
    unsigned char out[CRYPTO_SHA256_LEN])
{
	EVP_MD_CTX	*ctx;

	ctx = digest_begin(md_sha256());
	digest_update(ctx, data, len);
	digest_end(ctx, out);
}

void
crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char	 md[CRYPTO_SHA256_LEN];

	crypto_sha256(data, len, md);
	crypto_hex(md, sizeof(md), out);
}

void
crypto_hmac_sha256_base64(const void *key, size_t keylen, const void *msg,
    size_t msglen, char out[45])
{
	static const unsigned char	 empty[1];
	unsigned char			 md[EVP_MAX_MD_SIZE];
	unsigned int			 mdlen = 0;

	if (keylen > INT_MAX)
		crypto_fatal("HMAC key too long");
	if (HMAC(md_sha256(), keylen ? key : empty, (int)keylen,
	    msglen ? msg : empty, msglen, md, &mdlen) == NULL ||
	    mdlen != CRYPTO_SHA256_LEN)
		crypto_fatal("HMAC");
	if (EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen) != 44)
		crypto_fatal("EVP_EncodeBlock");
	crypto_cleanse(md, sizeof(md));
}

char *
crypto_base64_encode(const void *data, size_t len)
{
	unsigned char	*out;

	/* 4 * ceil(len / 3) + NUL must fit EVP_EncodeBlock's int. */
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		crypto_fatal("base64 input too long");
	out = xmalloc(4 * ((len + 2) / 3) + 1);
	if (len == 0)
		out[0] = '\0';
	else if (EVP_EncodeBlock(out, data, (int)len) < 0)
		crypto_fatal("EVP_EncodeBlock");
	return (char *)out;
}

static int
base64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

enum da_err
crypto_base64_decode(const char *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char	*buf = NULL;
	size_t		 i, pad = 0;
	int		 n;
	enum da_err	 rc = DA_EB64;

	*out = NULL;
	*outlen = 0;
	if (in == NULL || len % 4 != 0 || len > (size_t)INT_MAX)
		goto out;
	/*
	 * EVP_DecodeBlock skips blanks and does not strip padding, so
	 * every character is checked here first: the alphabet only, '='
	 * only as the last one or two characters.
	 */
	if (len > 0 && in[len - 1] == '=')
		pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!base64_char((unsigned char)in[i]))
			goto out;
	buf = xmalloc(len / 4 * 3 + 1);
	if (len > 0) {
		if ((n = EVP_DecodeBlock(buf, (const unsigned char *)in,
		    (int)len)) < 0 || (size_t)n != len / 4 * 3)
			goto out;
		*outlen = (size_t)n - pad;
	}
	buf[*outlen] = '\0';
	*out = buf;
	buf = NULL;
	rc = DA_OK;
out:
	free(buf);
	return rc;
}

void
crypto_random(void *buf, size_t len)
{
	unsigned char	*p = buf;
	size_t		 n;

	while (len > 0) {
		n = len > CRYPTO_CHUNK ? CRYPTO_CHUNK : len;
		if (RAND_bytes(p, (int)n) != 1)
			crypto_fatal("RAND_bytes");
		p += n;
		len -= n;
	}
}

void
crypto_random_alnum(char *out, size_t n)
{
	unsigned char	 pool[64];
	size_t		 i = 0, j = sizeof(pool);

	/* Rejection sampling: 248 = 4 * 62, so no character is favoured. */
	while (i < n) {
		if (j == sizeof(pool)) {
			crypto_random(pool, sizeof(pool));
			j = 0;
		}
		if (pool[j] < 248)
			out[i++] = alnum[pool[j] % 62];
		j++;
	}
	out[n] = '\0';
	crypto_cleanse(pool, sizeof(pool));
}

int
crypto_equal(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 1;
	return CRYPTO_memcmp(a, b, len) == 0;
}

int
crypto_str_equal(const char *a, const char *b)
{
	size_t	 alen, blen;
	int	 same, diff;

	if (a == NULL || b == NULL)
		return 0;
	alen = strlen(a);
	blen = strlen(b);
	same = alen == blen;
	/*
	 * Always walk all of b: against a when the lengths agree, against
	 * itself otherwise, so the time depends on b's length only.
	 */
	diff = blen == 0 ? 0 : CRYPTO_memcmp(same ? a : b, b, blen);
	return same & (diff == 0);
}

void
crypto_cleanse(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

static enum da_err
aes256cbc(int enc, const unsigned char key[32], const unsigned char iv[16],
    const unsigned char *in, size_t len, unsigned char *out)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	int		 n1 = 0, n2 = 0;
	enum da_err	 rc = DA_ECRYPTO;

	if (len % 16 != 0 || len > (size_t)INT_MAX - 16)
		return DA_EINPUT;
	if (len == 0)
		return DA_OK;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (!EVP_CipherInit_ex(ctx, cipher_aes256cbc(), NULL, key, iv, enc))
		goto out;
	/* DingTalk pads to 32 bytes itself; OpenSSL must not touch it. */
	if (!EVP_CIPHER_CTX_set_padding(ctx, 0))
		goto out;
	if (!EVP_CipherUpdate(ctx, out, &n1, in, (int)len))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, out + n1, &n2))
		goto out;
	if ((size_t)n1 + (size_t)n2 != len)
		goto out;
	rc = DA_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

enum da_err
crypto_aes256cbc_encrypt(const unsigned char key[32],
    const unsigned char iv[16], const unsigned char *in, size_t len,
    unsigned char *out)
{
	return aes256cbc(1, key, iv, in, len, out);
}

enum da_err
crypto_aes256cbc_decrypt(const unsigned char key[32],
    const unsigned char iv[16], const unsigned char *in, size_t len,
    unsigned char *out)
{
	return aes256cbc(0, key, iv, in, len, out);
}
