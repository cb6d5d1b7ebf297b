/*
 * dingauth crypto decrypt|encrypt|sign: the callback envelope from a
 * shell, for debugging a push or checking what a reply should be.
 * Token, EncodingAESKey and receiver default to the configuration, which
 * is only consulted (and its errors only reported) when one is needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "envelope.h"
#include "http.h"
#include "json.h"
#include "mem.h"

#define CRYPTO_STDIN_MAX	(1024u * 1024)	/* --body - and plaintext */
#define CRYPTO_RANDOM_LEN	16

enum sub {
	SUB_DECRYPT,
	SUB_ENCRYPT,
	SUB_SIGN,
	SUB__MAX
};

static int	crypto_decrypt(const struct cmd_sub *, const struct cmd_args *);
static int	crypto_encrypt(const struct cmd_sub *, const struct cmd_args *);
static int	crypto_sign(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_DECRYPT] = { "decrypt", crypto_decrypt,
	    CMD_OPT(OPT_TOKEN) | CMD_OPT(OPT_AES_KEY) | CMD_OPT(OPT_RECEIVER) |
	    CMD_OPT(OPT_SIGNATURE) | CMD_OPT(OPT_TIMESTAMP) |
	    CMD_OPT(OPT_NONCE) | CMD_OPT(OPT_ENCRYPT) | CMD_OPT(OPT_QUERY) |
	    CMD_OPT(OPT_BODY), 0, 0, 0,
	    "usage: dingauth crypto decrypt [--token T] [--aes-key K] "
	    "[--receiver R]\n"
	    "           (--signature S --timestamp TS --nonce N --encrypt E |\n"
	    "            --query QUERY_STRING --body JSON|-)\n\n"
	    "Checks the signature of a callback push, decrypts it, checks the\n"
	    "receiver id and prints the plaintext. No time window is applied.\n"
	    "--query takes the push's query string (signature or "
	    "msg_signature,\ntimestamp or timeStamp, nonce); --body takes its "
	    "JSON body, or reads\nit from standard input with '-'. Token, key "
	    "and receiver default to\nDINGTALK_TOKEN, DINGTALK_AES_TOKEN and "
	    "DINGAUTH_CALLBACK_RECEIVER.\nExit 0 ok, 1 a check failed, 2 "
	    "usage.\n" },
	[SUB_ENCRYPT] = { "encrypt", crypto_encrypt,
	    CMD_OPT(OPT_TOKEN) | CMD_OPT(OPT_AES_KEY) | CMD_OPT(OPT_RECEIVER) |
	    CMD_OPT(OPT_TIMESTAMP) | CMD_OPT(OPT_NONCE) | CMD_OPT(OPT_RANDOM),
	    CMD_OPERANDS_ANY, 0, 0,
	    "usage: dingauth crypto encrypt [--token T] [--aes-key K] "
	    "[--receiver R]\n"
	    "           [--timestamp TS] [--nonce N] [--random R16] "
	    "[PLAINTEXT]\n\n"
	    "Prints the reply JSON (msg_signature, timeStamp, nonce, "
	    "encrypt)\ncarrying PLAINTEXT, read from standard input when not "
	    "given\n(default \"success\"). --timestamp (default: now in ms), "
	    "--nonce\n(default: 16 random characters) and --random (the "
	    "16-byte prefix)\nmake the output reproducible.\n" },
	[SUB_SIGN] = { "sign", crypto_sign,
	    CMD_OPT(OPT_TOKEN) | CMD_OPT(OPT_TIMESTAMP) | CMD_OPT(OPT_NONCE) |
	    CMD_OPT(OPT_ENCRYPT), CMD_OPERANDS_ANY, 0, 0,
	    "usage: dingauth crypto sign [--token T] --timestamp TS "
	    "--nonce N --encrypt E\n"
	    "       dingauth crypto sign A B C D\n\n"
	    "Prints the callback signature: the SHA-1 hex of the four values\n"
	    "sorted and concatenated. The token defaults to DINGTALK_TOKEN.\n" },
};

static const struct cmd_group group = {
	.name = "crypto",
	.usage = "usage: dingauth crypto decrypt|encrypt|sign [options]\n\n"
	    "  decrypt  check and decrypt a callback push, print the "
	    "plaintext\n"
	    "  encrypt  print the encrypted reply JSON for a plaintext\n"
	    "  sign     print the signature of four values\n\n"
	    "'dingauth crypto SUBCOMMAND --help' describes each one.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
};

/* Configuration read once, on the first value taken from it. */
struct defaults {
	int		 loaded;
	enum da_err	 rc;
	struct da_error	 err;
};

/*
 * The value of option a, or of key in the configuration when the
 * option was not given. EXIT_FAIL when the configuration cannot be
 * loaded, EXIT_USAGE when neither has a value.
 */
static int
setting(struct defaults *d, const struct cmd_args *args, enum cmd_opt a,
    enum cfg_key key, const char **out)
{
	const char	*given = args->opt[a];

	*out = given;
	if (given != NULL)
		return EXIT_OK;
	if (!d->loaded) {
		d->rc = config_load(0, &d->err);
		d->loaded = 1;
	}
	if (d->rc != DA_OK)
		return cmd_fail("configuration (needed for --%s): %s",
		    cmd_option_name(a), d->err.msg);
	if (*(*out = config_str(key)) == '\0') {
		if (key == CFG_CALLBACK_RECEIVER)
			return cmd_usage("no receiver id: give --%s or set "
			    "%s or %s", cmd_option_name(a), config_name(key),
			    config_name(CFG_CORP_ID));
		return cmd_usage("no value for --%s: give it or set %s",
		    cmd_option_name(a), config_name(key));
	}
	return EXIT_OK;
}

/* Token, EncodingAESKey and receiver id, as setting() finds them. */
static int
envelope_settings(struct defaults *d, const struct cmd_args *args,
    const char **token, const char **aeskey, const char **receiver)
{
	int	 rc;

	if ((rc = setting(d, args, OPT_TOKEN, CFG_TOKEN, token)) != EXIT_OK ||
	    (rc = setting(d, args, OPT_AES_KEY, CFG_AES_TOKEN, aeskey)) !=
	    EXIT_OK)
		return rc;
	return setting(d, args, OPT_RECEIVER, CFG_CALLBACK_RECEIVER, receiver);
}

/* Standard input up to CRYPTO_STDIN_MAX bytes into b. */
static int
read_stdin(struct buf *b, const char *what)
{
	char	 chunk[8192];
	size_t	 n;

	buf_init(b, CRYPTO_STDIN_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if (buf_append(b, chunk, n) == -1)
			return cmd_fail("%s on standard input is over %u bytes",
			    what, CRYPTO_STDIN_MAX);
	if (ferror(stdin))
		return cmd_fail("reading %s from standard input failed", what);
	if (b->data == NULL)
		buf_append(b, "", 0);
	return EXIT_OK;
}

/*
 * The form-decoded value of the first parameter called name in a query
 * string, or NULL (caller frees).
 */
static char *
query_param(const char *query, const char *name)
{
	const char	*p, *end, *eq;
	char		*k, *v = NULL;
	int		 match;

	for (p = query; v == NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		eq = memchr(p, '=', (size_t)(end - p));
		k = http_unescape_form(p, (size_t)((eq ? eq : end) - p));
		match = strcmp(k, name) == 0;
		free(k);
		if (match)
			v = eq != NULL ?
			    http_unescape_form(eq + 1, (size_t)(end - eq - 1)) :
			    xstrdup("");
	}
	return v;
}

/* The "encrypt" string of a push body (never form-decoded). */
static int
body_encrypt(const char *body, size_t len, char **encrypt)
{
	json		*root;
	const char	*e;
	int		 rc;

	*encrypt = NULL;
	if ((root = json_parse(body, len)) == NULL || !json_is_object(root))
		rc = cmd_fail("%s: --body is not a JSON object",
		    da_strerror(DA_EINPUT));
	else if ((e = json_as_str(json_get(root, "encrypt"))) == NULL)
		rc = cmd_fail("%s: --body has no \"encrypt\" string",
		    da_strerror(DA_EINPUT));
	else {
		*encrypt = xstrdup(e);
		rc = EXIT_OK;
	}
	json_free(root);
	return rc;
}

/* The push to open: its four fields, given or read from a request. */
struct push {
	const char	*sig, *ts, *nonce, *enc;
	char		*qsig, *qts, *qnonce, *benc;	/* owned */
	struct buf	 in;				/* --body - */
};

static void
push_free(struct push *p)
{
	free(p->benc);
	free(p->qnonce);
	free(p->qts);
	free(p->qsig);
	buf_free(&p->in);
}

/* Either the four fields or --query with --body, never a mix. */
static int
decrypt_usage(const char *const *vals)
{
	int	 a, request = vals[OPT_QUERY] != NULL || vals[OPT_BODY] != NULL;

	for (a = OPT_SIGNATURE; a <= OPT_ENCRYPT; a++) {
		if (request && vals[a] != NULL)
			return cmd_usage("crypto decrypt: --%s does not go "
			    "with --query/--body", cmd_option_name(a));
		if (!request && vals[a] == NULL)
			return cmd_usage("crypto decrypt: --%s is required "
			    "(or --query and --body)", cmd_option_name(a));
	}
	if (request && (vals[OPT_QUERY] == NULL || vals[OPT_BODY] == NULL))
		return cmd_usage("crypto decrypt: --query and --body go "
		    "together");
	return EXIT_OK;
}

/* The push's fields from --query (its URL query) and --body (or stdin). */
static int
push_from_request(const char *const *vals, struct push *p)
{
	const char	*q = vals[OPT_QUERY];
	int		 rc;

	if (*q == '?')
		q++;
	if ((p->qsig = query_param(q, "msg_signature")) == NULL)
		p->qsig = query_param(q, "signature");
	if ((p->qts = query_param(q, "timeStamp")) == NULL)
		p->qts = query_param(q, "timestamp");
	p->qnonce = query_param(q, "nonce");
	if (p->qsig == NULL || p->qts == NULL || p->qnonce == NULL)
		return cmd_fail("%s: --query has no %s",
		    da_strerror(DA_EINPUT), p->qsig == NULL ?
		    "signature or msg_signature" : p->qts == NULL ?
		    "timestamp or timeStamp" : "nonce");
	p->sig = p->qsig;
	p->ts = p->qts;
	p->nonce = p->qnonce;
	if (strcmp(vals[OPT_BODY], "-") == 0) {
		if ((rc = read_stdin(&p->in, "--body")) != EXIT_OK)
			return rc;
		rc = body_encrypt(p->in.data, p->in.len, &p->benc);
	} else
		rc = body_encrypt(vals[OPT_BODY], strlen(vals[OPT_BODY]),
		    &p->benc);
	p->enc = p->benc;
	return rc;
}

static int
crypto_decrypt(const struct cmd_sub *sub, const struct cmd_args *args)
{
	const char *const	*vals = args->opt;
	const char		*token, *aeskey, *receiver;
	struct defaults		 d = { 0 };
	struct envelope_key	 key;
	struct da_error		 err = { 0 };
	struct push		 p;
	char			*msg = NULL;
	size_t			 msglen = 0;
	enum da_err		 e;
	int			 rc;

	memset(&key, 0, sizeof(key));
	memset(&p, 0, sizeof(p));
	if ((rc = decrypt_usage(vals)) != EXIT_OK ||
	    (rc = envelope_settings(&d, args, &token, &aeskey, &receiver)) !=
	    EXIT_OK)
		goto out;
	p.sig = vals[OPT_SIGNATURE];
	p.ts = vals[OPT_TIMESTAMP];
	p.nonce = vals[OPT_NONCE];
	p.enc = vals[OPT_ENCRYPT];
	if (vals[OPT_QUERY] != NULL &&
	    (rc = push_from_request(vals, &p)) != EXIT_OK)
		goto out;
	if ((e = envelope_key(aeskey, &key, &err)) != DA_OK ||
	    (e = envelope_open(token, &key, receiver, p.sig, p.ts, p.nonce,
	    p.enc, &msg, &msglen, &err)) != DA_OK) {
		rc = cmd_fail("%s: %s", da_strerror(e), err.msg);
		goto out;
	}
	if (fwrite(msg, 1, msglen, stdout) != msglen ||
	    fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
		rc = cmd_fail("writing the plaintext failed");
		goto out;
	}
	rc = EXIT_OK;
out:
	crypto_cleanse(&key, sizeof(key));
	if (msg != NULL) {
		crypto_cleanse(msg, msglen);
		free(msg);
	}
	push_free(&p);
	return rc;
}

static int
crypto_encrypt(const struct cmd_sub *sub, const struct cmd_args *args)
{
	const char *const	*vals = args->opt;
	const char		*token, *aeskey, *receiver, *plain;
	struct defaults		 d = { 0 };
	struct envelope_key	 key;
	struct da_error		 err = { 0 };
	struct buf		 in = { 0 };
	char			*reply = NULL;
	enum da_err		 e;
	int			 rc;

	memset(&key, 0, sizeof(key));
	if (args->argc > 1) {
		rc = cmd_usage("crypto encrypt: one PLAINTEXT at most "
		    "(quote it)");
		goto out;
	}
	if (vals[OPT_RANDOM] != NULL &&
	    strlen(vals[OPT_RANDOM]) != CRYPTO_RANDOM_LEN) {
		rc = cmd_usage("crypto encrypt: --random must be exactly %d "
		    "bytes", CRYPTO_RANDOM_LEN);
		goto out;
	}
	if ((vals[OPT_TIMESTAMP] != NULL && *vals[OPT_TIMESTAMP] == '\0') ||
	    (vals[OPT_NONCE] != NULL && *vals[OPT_NONCE] == '\0')) {
		rc = cmd_usage("crypto encrypt: --timestamp and --nonce must "
		    "not be empty");
		goto out;
	}
	if ((rc = envelope_settings(&d, args, &token, &aeskey, &receiver)) !=
	    EXIT_OK)
		goto out;
	if (args->argc == 1)
		plain = args->argv[0];
	else if (isatty(STDIN_FILENO))
		plain = "success";
	else {
		if ((rc = read_stdin(&in, "PLAINTEXT")) != EXIT_OK)
			goto out;
		if (memchr(in.data, '\0', in.len) != NULL) {
			rc = cmd_fail("%s: PLAINTEXT has a NUL byte",
			    da_strerror(DA_EINPUT));
			goto out;
		}
		plain = in.len > 0 ? in.data : "success";
	}
	if ((e = envelope_key(aeskey, &key, &err)) != DA_OK ||
	    (e = envelope_reply(token, &key, receiver, plain,
	    vals[OPT_TIMESTAMP], vals[OPT_NONCE], vals[OPT_RANDOM], &reply,
	    &err)) != DA_OK) {
		rc = cmd_fail("%s: %s", da_strerror(e), err.msg);
		goto out;
	}
	if (printf("%s\n", reply) < 0 || fflush(stdout) == EOF) {
		rc = cmd_fail("writing the reply failed");
		goto out;
	}
	rc = EXIT_OK;
out:
	crypto_cleanse(&key, sizeof(key));
	free(reply);
	buf_free(&in);
	return rc;
}

static int
crypto_sign(const struct cmd_sub *sub, const struct cmd_args *args)
{
	const char *const	*vals = args->opt;
	char *const		*argv = args->argv;
	const char		*token;
	struct defaults		 d = { 0 };
	char			 sig[CRYPTO_SHA1_HEX_LEN + 1];
	int			 rc, a;

	if (args->argc == 4) {
		for (a = 0; a < OPT__MAX; a++)
			if (vals[a] != NULL)
				return cmd_usage("crypto sign: give four "
				    "values or options, not both");
		envelope_sign(argv[0], argv[1], argv[2], argv[3], sig);
	} else if (args->argc == 0) {
		for (a = OPT_TIMESTAMP; a <= OPT_ENCRYPT; a++)
			if (vals[a] == NULL)
				return cmd_usage("crypto sign: --%s is "
				    "required (or give four values)",
				    cmd_option_name(a));
		if ((rc = setting(&d, args, OPT_TOKEN, CFG_TOKEN, &token)) !=
		    EXIT_OK)
			return rc;
		envelope_sign(token, vals[OPT_TIMESTAMP], vals[OPT_NONCE],
		    vals[OPT_ENCRYPT], sig);
	} else
		return cmd_usage("crypto sign: takes four values, not %d "
		    "(see --help)", args->argc);
	if (printf("%s\n", sig) < 0 || fflush(stdout) == EOF)
		return cmd_fail("writing the signature failed");
	return EXIT_OK;
}

int
cmd_crypto(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
