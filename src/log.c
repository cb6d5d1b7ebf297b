#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "crypto.h"
#include "log.h"
#include "mem.h"

static const char	*log_prog = "dingauth";
static enum log_level	 log_level = LOG_INFO;
static enum log_format	 log_format = LOG_FORMAT_TEXT;

const char *const log_format_names[LOG_FORMAT__MAX] = {
	[LOG_FORMAT_TEXT] = "text", [LOG_FORMAT_JSON] = "json",
};
const char *const log_level_names[LOG__MAX] = {
	[LOG_ERR] = "error", [LOG_WARN] = "warn",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* The request's error reference (log.h): one per thread serving requests. */
static _Thread_local struct {
	int	 active;		/* a request is being served */
	char	 ref[LOG_REF_LEN + 1];	/* "" until made */
} request;

void
log_ref_begin(void)
{
	request.active = 1;
	request.ref[0] = '\0';
}

const char *
log_ref(void)
{
	unsigned char	 rnd[3];
	struct tm	 tm;
	time_t		 now;

	if (request.ref[0] != '\0')
		return request.ref;
	now = time(NULL);
	crypto_random(rnd, sizeof(rnd));
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(request.ref, sizeof(request.ref), "%Y%m%d-%H%M%S",
	    &tm) != 15)
		snprintf(request.ref, sizeof(request.ref), "00000000-000000");
	snprintf(request.ref + 15, sizeof(request.ref) - 15, "-%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2]);
	return request.ref;
}

void
log_init(const char *progname)
{
	const char	*slash;

	if (progname == NULL)
		return;
	slash = strrchr(progname, '/');
	log_prog = slash != NULL ? slash + 1 : progname;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_level_parse(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++)
		if (strcmp(name, log_level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

/* A JSON line: the common members, then the caller's. */
static json *
json_line(enum log_level level)
{
	json		*o = json_new_object();
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 when[32] = "";

	if (gmtime_r(&now, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_add_str(o, "time", when);
	json_add_str(o, "prog", log_prog);
	json_add_int(o, "pid", (long long)getpid());
	json_add_str(o, "level", log_level_names[level]);
	if (request.active)
		json_add_str(o, "ref", log_ref());
	return o;
}

/*
 * Write one log line and its newline to stderr. No control character a
 * terminal tailing the log would obey gets through, whatever the line
 * carries (names come from DingTalk and from people's own nicknames):
 * in text, C0 controls, DEL and the C1 controls (UTF-8 C2 80..9F) become
 * '?', newline, CR and tab a space; in JSON, where cJSON has escaped the
 * C0 controls already, DEL and C1 become the "\u00XX" that reads back as
 * the same character.
 */
static void
put_line(const char *s, size_t n, int as_json)
{
	struct buf	 b;
	size_t		 i;
	unsigned char	 c;

	buf_init(&b, 0);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			i++;
			if (as_json)
				buf_printf(&b, "\\u%04x", (unsigned char)s[i]);
			else
				buf_puts(&b, "?");
		} else if (c == 0x7f && as_json)
			buf_puts(&b, "\\u007f");
		else if (c == '\n' || c == '\r' || c == '\t')
			buf_puts(&b, " ");
		else if (c < 0x20 || c == 0x7f)
			buf_puts(&b, "?");
		else
			buf_append(&b, s + i, 1);
	}
	buf_puts(&b, "\n");
	fwrite(b.data, 1, b.len, stderr);
	buf_free(&b);
}

static void
put_json(json *o)
{
	char	*text = json_print(o);

	put_line(text, strlen(text), 1);
	free(text);
	json_free(o);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char		 line[2048];
	va_list		 ap;
	json		*o;
	struct buf	 b;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_format == LOG_FORMAT_JSON) {
		o = json_line(level);
		json_add_str(o, "msg", line);
		put_json(o);
		return;
	}
	/* One message, one line: put_line keeps input from splitting it. */
	buf_init(&b, 0);
	buf_printf(&b, "dingauth[%s %ld]: %s: %s%s%s%s", log_prog,
	    (long)getpid(), log_level_names[level], line,
	    request.active ? " [ref " : "", request.active ? log_ref() : "",
	    request.active ? "]" : "");
	put_line(b.data, b.len, 0);
	buf_free(&b);
}

/* " name=value", quoted when it must be; controls become '?'. */
static void
put_field(struct buf *b, const char *name, const char *v)
{
	const char	*p;
	int		 quote = *v == '\0' || strpbrk(v, " \"=\\") != NULL;

	buf_printf(b, " %s=%s", name, quote ? "\"" : "");
	for (p = v; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			buf_puts(b, "?");
		else if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else
			buf_append(b, p, 1);
	}
	if (quote)
		buf_puts(b, "\"");
}

void
log_fields(enum log_level level, const char *event,
    const struct log_field *f, size_t n)
{
	struct buf	 b, out;
	json		*o;
	size_t		 i;
	const char	*line;

	if (level > log_level)
		return;
	if (log_format == LOG_FORMAT_JSON) {
		o = json_line(level);
		json_add_str(o, "event", event);
		for (i = 0; i < n; i++)
			if (f[i].value != NULL)
				json_add_str(o, f[i].name, f[i].value);
		put_json(o);
		return;
	}
	buf_init(&b, 4096);
	buf_puts(&b, event);
	for (i = 0; i < n; i++)
		if (f[i].value != NULL && f[i].value[0] != '\0')
			put_field(&b, f[i].name, f[i].value);
	line = b.len ? b.data : "";
	buf_init(&out, 0);
	buf_printf(&out, "dingauth[%s %ld]: %s: %s", log_prog,
	    (long)getpid(), log_level_names[level], line);
	put_line(out.data, out.len, 0);
	buf_free(&out);
	buf_free(&b);
}
