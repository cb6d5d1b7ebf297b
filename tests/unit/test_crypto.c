/*
 * The crypto facade: known answers for the digests, HMAC (the sns
 * signature of docs/dingtalk.md §c.4), base64 (RFC 4648 §10), AES-256-CBC
 * (NIST SP 800-38A F.2.5), and the behaviour of the helpers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "crypto.h"
#include "unit.h"
#include "vectors.h"



static int
unhex(const char *hex, unsigned char *out, size_t outsz)
{
	size_t		 i, n = strlen(hex);
	unsigned int	 b;

	if (n % 2 != 0 || n / 2 > outsz)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (unsigned char)b;
	}
	return (int)(n / 2);
}

static void
test_digests(void)
{
	const char	*parts[] = { "a", "", "bc" };
	const char	*none[] = { NULL };
	unsigned char	 md[CRYPTO_SHA256_LEN];
	char		 hex[65];

	crypto_sha1_hex("abc", 3, hex);
	CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d",
	    "sha1(abc)");
	crypto_sha1_hex("", 0, hex);
	CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709",
	    "sha1(empty)");
	crypto_sha1_hex_parts(parts, 3, hex);
	CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d",
	    "sha1 over parts a, \"\", bc");
	crypto_sha1_hex_parts(none, 0, hex);
	CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709",
	    "sha1 over no parts");
	crypto_sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad", "sha256_hex(abc)");
	crypto_sha256("", 0, md);
	crypto_hex(md, sizeof(md), hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855", "sha256(empty)");
	crypto_hex("\x00\xff\x10", 3, hex);
	CHECK_STR(hex, "00ff10", "crypto_hex");
}

static void
test_hmac(const cJSON *vec)
{
	const cJSON	*v;
	const char	*secret, *ts, *want;
	char		 out[45];
	int		 n = 0;

	/* RFC 4231 test case 2. */
	crypto_hmac_sha256_base64("Jefe", 4, "what do ya want for nothing?",
	    28, out);
	CHECK_STR(out, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=",
	    "hmac-sha256 RFC 4231 case 2");
	cJSON_ArrayForEach(v, cJSON_GetObjectItem(vec,
	    "sns_signature_vectors")) {
		secret = str(v, "app_secret");
		ts = str(v, "timestamp");
		want = str(v, "signature");
		if (secret == NULL || ts == NULL || want == NULL)
			continue;
		crypto_hmac_sha256_base64(secret, strlen(secret), ts,
		    strlen(ts), out);
		CHECK_STR(out, want, "sns signature %s", label(v));
		n++;
	}
	CHECK(n >= 1, "sns signature vectors found (%d)", n);
}

static void
test_signature_only(const cJSON *vec)
{
	const cJSON	*v, *s;
	const char	*p[8], *t;
	char		 out[41];
	size_t		 i, j, np;
	int		 n = 0;

	/* Sort then concatenate, as envelope_sign does, through the facade. */
	cJSON_ArrayForEach(v, cJSON_GetObjectItem(vec,
	    "signature_only_vectors")) {
		np = 0;
		cJSON_ArrayForEach(s, cJSON_GetObjectItem(v, "strings"))
			if (np < 8 && cJSON_IsString(s))
				p[np++] = s->valuestring;
		for (i = 1; i < np; i++) {
			t = p[i];
			for (j = i; j > 0 && strcmp(p[j - 1], t) > 0; j--)
				p[j] = p[j - 1];
			p[j] = t;
		}
		crypto_sha1_hex_parts(p, np, out);
		CHECK_STR(out, str(v, "sha1"), "signature-only %s",
		    label(v));
		n++;
	}
	CHECK(n >= 1, "signature-only vectors found (%d)", n);
}

static void
test_base64(void)
{
	static const struct {
		const char	*plain, *b64;
	} kat[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const struct {
		const char	*in, *why;
	} bad[] = {
		{ "Zg=", "length 3" },
		{ "Zm9", "length 3, no padding" },
		{ "Z", "length 1" },
		{ "Zm9vY", "length 5" },
		{ "Zm9v\n", "trailing newline" },
		{ "Zm9v ", "trailing blank" },
		{ " Zm9v", "leading blank" },
		{ "Zm!v", "'!'" },
		{ "Zm9v*A==", "'*'" },
		{ "Zm-_", "URL-safe alphabet" },
		{ "Zg=a", "'=' before the last character" },
		{ "Z=g=", "'=' in the middle" },
		{ "Zm=v", "'=' in the middle, no padding" },
		{ "Zm9=Zm9v", "'=' ending an inner quantum" },
		{ "====", "only padding" },
		{ "A===", "three '='" },
		{ "Zm9vYg==Zm9v", "padding then more data" },
		{ "=Zm9", "leading '='" },
	};
	unsigned char	 data[300], *out = NULL;
	size_t		 i, outlen, n;
	char		*enc;
	int		 ok;

	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		enc = crypto_base64_encode(kat[i].plain, strlen(kat[i].plain));
		CHECK_STR(enc, kat[i].b64, "base64 encode \"%s\"",
		    kat[i].plain);
		free(enc);
		ok = crypto_base64_decode(kat[i].b64, strlen(kat[i].b64),
		    &out, &outlen) == DA_OK;
		CHECK(ok && outlen == strlen(kat[i].plain) &&
		    memcmp(out, kat[i].plain, outlen) == 0 &&
		    out[outlen] == '\0', "base64 decode \"%s\"", kat[i].b64);
		free(out);
	}
	enc = crypto_base64_encode("\xfb\xff\xbf", 3);
	CHECK_STR(enc, "+/+/", "base64 uses + and /");
	free(enc);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (unsigned char *)"x";
		CHECK(crypto_base64_decode(bad[i].in, strlen(bad[i].in), &out,
		    &outlen) == DA_EB64 && out == NULL,
		    "base64 rejects %s", bad[i].why);
	}
	CHECK(crypto_base64_decode(NULL, 4, &out, &outlen) == DA_EB64,
	    "base64 rejects NULL");
	/* A NUL inside the given length is not in the alphabet. */
	CHECK(crypto_base64_decode("Zm\0v", 4, &out, &outlen) == DA_EB64,
	    "base64 rejects NUL");
	/* Non-zero trailing bits are tolerated (EncodingAESKey needs it). */
	ok = crypto_base64_decode("Zh==", 4, &out, &outlen) == DA_OK;
	CHECK(ok && outlen == 1 && out[0] == 'f',
	    "base64 tolerates non-zero trailing bits");
	free(out);
	/* Round trips of random binary data of every length to 300. */
	ok = 1;
	for (n = 0; n <= sizeof(data); n++) {
		crypto_random(data, sizeof(data));
		enc = crypto_base64_encode(data, n);
		if (strlen(enc) != 4 * ((n + 2) / 3) ||
		    crypto_base64_decode(enc, strlen(enc), &out, &outlen) !=
		    DA_OK || outlen != n || memcmp(out, data, n) != 0)
			ok = 0;
		else
			free(out);
		free(enc);
	}
	CHECK(ok, "base64 round trips of 0..300 random bytes");
}

static void
test_equal(void)
{
	CHECK(crypto_str_equal("abc", "abc") == 1, "str_equal equal");
	CHECK(crypto_str_equal("", "") == 1, "str_equal both empty");
	CHECK(crypto_str_equal("abc", "abd") == 0, "str_equal last differs");
	CHECK(crypto_str_equal("xbc", "abc") == 0, "str_equal first differs");
	CHECK(crypto_str_equal("ab", "abc") == 0, "str_equal a is prefix");
	CHECK(crypto_str_equal("abcd", "abc") == 0, "str_equal b is prefix");
	CHECK(crypto_str_equal("", "abc") == 0, "str_equal a empty");
	CHECK(crypto_str_equal("abc", "") == 0, "str_equal b empty");
	CHECK(crypto_str_equal("ABC", "abc") == 0, "str_equal case matters");
	CHECK(crypto_str_equal(NULL, "abc") == 0, "str_equal NULL");
	CHECK(crypto_equal("abc", "abc", 3) == 1, "equal equal");
	CHECK(crypto_equal("abc", "abd", 3) == 0, "equal differs");
	CHECK(crypto_equal("abc", "abd", 2) == 1, "equal prefix only");
	CHECK(crypto_equal("a", "b", 0) == 1, "equal zero length");
}

static void
test_random(void)
{
	unsigned char	 a[32], b[32], zero[32] = { 0 };
	char		 s1[65], s2[65];
	size_t		 i;
	int		 ok = 1;

	crypto_random(a, sizeof(a));
	crypto_random(b, sizeof(b));
	CHECK(memcmp(a, zero, sizeof(a)) != 0, "random not all zero");
	CHECK(memcmp(a, b, sizeof(a)) != 0, "two random draws differ");
	crypto_random_alnum(s1, 64);
	crypto_random_alnum(s2, 64);
	for (i = 0; i < 64; i++)
		if (!((s1[i] >= 'A' && s1[i] <= 'Z') ||
		    (s1[i] >= 'a' && s1[i] <= 'z') ||
		    (s1[i] >= '0' && s1[i] <= '9')))
			ok = 0;
	CHECK(ok && strlen(s1) == 64, "random_alnum gives [A-Za-z0-9]");
	CHECK(strcmp(s1, s2) != 0, "two random_alnum draws differ");
	crypto_random_alnum(s1, 0);
	CHECK(s1[0] == '\0', "random_alnum of 0 is empty");
	memset(a, 0xaa, sizeof(a));
	crypto_cleanse(a, sizeof(a));
	CHECK(memcmp(a, zero, sizeof(a)) == 0, "cleanse zeroes");
}

static void
test_aes(void)
{
	unsigned char	 key[32], iv[16], plain[64], cipher[64], out[64];
	char		 hex[129];

	unhex("603deb1015ca71be2b73aef0857d7781"
	    "1f352c073b6108d72d9810a30914dff4", key, sizeof(key));
	unhex("000102030405060708090a0b0c0d0e0f", iv, sizeof(iv));
	unhex("6bc1bee22e409f96e93d7e117393172a"
	    "ae2d8a571e03ac9c9eb76fac45af8e51"
	    "30c81c46a35ce411e5fbc1191a0a52ef"
	    "f69f2445df4f9b17ad2b417be66c3710", plain, sizeof(plain));
	CHECK(crypto_aes256cbc_encrypt(key, iv, plain, 64, cipher) == DA_OK,
	    "aes encrypt ok");
	crypto_hex(cipher, 64, hex);
	CHECK_STR(hex, "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
	    "9cfc4e967edb808d679f777bc6702c7d"
	    "39f23369a9d9bacfa530e26304231461"
	    "b2eb05e2c39be9fcda6c19078c6a9d1b",
	    "aes-256-cbc NIST SP 800-38A F.2.5, no padding added");
	CHECK(crypto_aes256cbc_decrypt(key, iv, cipher, 64, out) == DA_OK &&
	    memcmp(out, plain, 64) == 0, "aes-256-cbc F.2.6 decrypt");
	CHECK(crypto_aes256cbc_decrypt(key, iv, cipher, 16, out) == DA_OK &&
	    memcmp(out, plain, 16) == 0, "aes decrypt of one block");
	CHECK(crypto_aes256cbc_encrypt(key, iv, plain, 15, out) == DA_EINPUT,
	    "aes encrypt rejects 15 bytes");
	CHECK(crypto_aes256cbc_decrypt(key, iv, cipher, 33, out) == DA_EINPUT,
	    "aes decrypt rejects 33 bytes");
	/* Decrypting garbage is not an error: no OpenSSL padding check. */
	memset(cipher, 0x5a, sizeof(cipher));
	CHECK(crypto_aes256cbc_decrypt(key, iv, cipher, 64, out) == DA_OK,
	    "aes decrypt does not check padding");
}

int
main(void)
{
	cJSON	*vec;

	vec = load_vectors();
	CHECK(vec != NULL, "load %s", VECTORS);
	test_digests();
	test_hmac(vec);
	test_signature_only(vec);
	test_base64();
	test_equal();
	test_random();
	test_aes();
	cJSON_Delete(vec);
	return unit_done();
}
