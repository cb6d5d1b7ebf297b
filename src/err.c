#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static const struct {
	const char	*name;
	const char	*text;
} errors[DA_ERR__MAX] = {
	[DA_OK] = { "OK", "no error" },
	[DA_EINPUT] = { "EINPUT", "invalid input" },
	[DA_ECONFIG] = { "ECONFIG", "configuration error" },
	[DA_EDB] = { "EDB", "database error" },
	[DA_EHTTP] = { "EHTTP", "could not reach DingTalk" },
	[DA_ETIMEOUT] = { "ETIMEOUT", "DingTalk did not answer in time" },
	[DA_ETOOBIG] = { "ETOOBIG", "body too large" },
	[DA_EJSON] = { "EJSON", "unexpected answer from DingTalk" },
	[DA_EAPI] = { "EAPI", "DingTalk returned an error" },
	[DA_ETOKEN] = { "ETOKEN", "access token rejected" },
	[DA_ECREDENTIALS] = { "ECREDENTIALS", "app key or secret rejected" },
	[DA_ERATE] = { "ERATE", "DingTalk is rate limiting or busy" },
	[DA_ECODE] = { "ECODE", "login code invalid, expired or already used" },
	[DA_ENOTFOUND] = { "ENOTFOUND", "no such user or department" },
	[DA_ENOTMEMBER] = { "ENOTMEMBER", "not a member of the company" },
	[DA_EPERM] = { "EPERM", "permission denied by DingTalk" },
	[DA_EKEY] = { "EKEY", "bad EncodingAESKey" },
	[DA_ESIG] = { "ESIG", "signature mismatch" },
	[DA_EB64] = { "EB64", "ciphertext is not valid base64 blocks" },
	[DA_EPAD] = { "EPAD", "bad padding" },
	[DA_ELEN] = { "ELEN", "bad message length field" },
	[DA_ERECEIVER] = { "ERECEIVER", "receiver id mismatch" },
	[DA_ECRYPTO] = { "ECRYPTO", "cryptography failure" },
	[DA_ESTATE] = { "ESTATE", "login state invalid" },
	[DA_EBUSY] = { "EBUSY", "resource busy" },
	[DA_ETOOLONG] = { "ETOOLONG", "a value longer than dingauth stores" },
};

const char *
da_strerror(enum da_err code)
{
	if ((unsigned)code >= DA_ERR__MAX)
		return "unknown error";
	return errors[code].text;
}

const char *
da_errname(enum da_err code)
{
	if ((unsigned)code >= DA_ERR__MAX)
		return "EUNKNOWN";
	return errors[code].name;
}

enum da_err
da_error_set(struct da_error *err, enum da_err code, const char *file,
    int line, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[sizeof(err->msg)];

	if (err == NULL)
		return code;
	/*
	 * Through a copy: a caller may wrap the error it was given
	 * ("migration %s: %s", err->msg), and vsnprintf's source and
	 * target must not overlap.
	 */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err->code = code;
	err->file = file;
	err->line = line;
	memcpy(err->msg, msg, sizeof(err->msg));
	return code;
}

void
da_error_clear(struct da_error *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}
