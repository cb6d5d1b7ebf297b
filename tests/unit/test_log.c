/*
 * Log lines (log.c): one message is one line, and no control character a
 * terminal tailing the log would obey reaches it, whatever the message
 * carries (names come from DingTalk and from people's own nicknames).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "unit.h"

/* What log_msg / log_fields wrote to stderr, as one string. */
static char *
captured(void (*fn)(const char *), const char *arg)
{
	static char	 text[4096];
	FILE		*f = tmpfile();
	int		 saved = dup(STDERR_FILENO);
	size_t		 n;

	if (f == NULL || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
emit_msg(const char *s)
{
	log_msg(LOG_WARN, "user %s refused", s);
}

static void
emit_fields(const char *s)
{
	struct log_field	 f[] = { { "name", s } };

	log_fields(LOG_WARN, "login", f, 1);
}

/* 1 if s has a control (C0, DEL, C1) other than its final newline. */
static int
has_control(const char *s)
{
	size_t	 i, n = strlen(s);

	for (i = 0; i < n; i++) {
		if (((unsigned char)s[i] < 0x20 || s[i] == 0x7f) &&
		    !(s[i] == '\n' && i == n - 1))
			return 1;
		if ((unsigned char)s[i] == 0xc2 && i + 1 < n &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return 1;
	}
	return 0;
}

int
main(void)
{
	static const char	 evil[] =
	    "\x1b]0;owned\x07" "Eve\x1b[2J\x7f\xc2\x9b" "31m\r\nforged line\tx";
	enum log_format		 fmt[] = { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
	const char		*name[] = { "text", "json" };
	char			*s;
	size_t			 i;

	log_init("test_log");
	for (i = 0; i < 2; i++) {
		log_set_format(fmt[i]);
		s = captured(emit_msg, evil);
		CHECK(s != NULL && strstr(s, "Eve") != NULL &&
		    !has_control(s), "%s log_msg: one line, no control "
		    "character", name[i]);
		s = captured(emit_fields, evil);
		CHECK(s != NULL && strstr(s, "Eve") != NULL &&
		    !has_control(s), "%s log_fields: one line, no control "
		    "character", name[i]);
	}
	s = captured(emit_msg, "plain name");
	CHECK(s != NULL && strstr(s, "user plain name refused") != NULL,
	    "json: an ordinary message is kept as written");
	{
		/* An error wrapped in its own words (err.c formats via a copy). */
		struct da_error	 err;

		DA_ERROR(&err, DA_ENOTFOUND, "errcode %d: %s", 60121,
		    "找不到该用户");
		DA_ERROR(&err, DA_ENOTMEMBER, "not a member (DingTalk: %s)",
		    err.msg);
		CHECK_STR(err.msg, "not a member (DingTalk: errcode 60121: "
		    "找不到该用户)", "an error message can wrap itself");
	}
	return unit_failed ? 1 : 0;
}
