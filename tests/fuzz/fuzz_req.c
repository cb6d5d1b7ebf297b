/*
 * libFuzzer target: what every request brings before any handler runs,
 * all of it a stranger's: the query string, the Cookie header and a
 * form body (src/req.c's parsers, included here to reach its static
 * functions, as lighttpd's tests do), then the lookups handlers make
 * (req_query, req_form, req_cookie with its duplicate rule) and the
 * validation of rd (login_rd).
 *
 * The first byte of an input picks the path, so a corpus file says what
 * it exercises:
 *   'Q'  the rest is a query string
 *   'C'  the rest is a Cookie header
 *   'F'  the rest is a form body (application/x-www-form-urlencoded)
 *   'R'  the rest is an rd value
 *   else all four on the whole input.
 *
 * Built with clang -fsanitize=fuzzer,address by tests/fuzz/run (make
 * fuzz); with -DFUZZ_REPLAY, a main() replays the files named on the
 * command line (tests/fuzz/replay, run by make test).
 */
#include "../../src/req.c"

#include <stdint.h>

#include "login.h"

#define FUZZ_INPUT_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* What a parsed list promises the handlers. */
static void
check_list(const struct kvlist *l)
{
	size_t	 i;

	if (l->n > REQ_PARAMS_MAX)
		abort();
	for (i = 0; i < l->n; i++)
		if (l->v[i].name == NULL || l->v[i].value == NULL ||
		    strlen(l->v[i].value) > REQ_VALUE_MAX)
			abort();
}

static void
lookups(struct req *r)
{
	static const char *const names[] = {
		"rd", "code", "authCode", "state", "dingauth_session",
		"dingauth_state", "", "a",
	};
	const char	*v;
	size_t		 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((v = req_query(r, names[i])) != NULL && strlen(v) >
		    REQ_VALUE_MAX)
			abort();
		(void)req_form(r, names[i]);
		(void)req_cookie(r, names[i]);
		(void)req_input(r, names[i]);
	}
}

static void
rd(const char *s)
{
	char	 out[LOGIN_RD_MAX];

	/* Kept: one leading slash, no control character, no backslash. */
	if (login_rd(s, out) && (out[0] != '/' || out[1] == '/' ||
	    out[1] == '\\' || strpbrk(out, "\r\n\t\\") != NULL))
		abort();
	if (strlen(out) >= LOGIN_RD_MAX)
		abort();
}

static void
one(int what, const char *text, size_t len)
{
	struct req	 r;

	req_init(&r, 64 * 1024);
	switch (what) {
	case 'Q':
		if (len <= REQ_QUERY_MAX)
			parse_urlencoded(&r, &r.query, text, len);
		break;
	case 'C':
		parse_cookies(&r, text);
		break;
	case 'F':
		parse_urlencoded(&r, &r.form, text, len);
		break;
	default:
		rd(text);
		break;
	}
	check_list(&r.query);
	check_list(&r.cookies);
	check_list(&r.form);
	lookups(&r);
	req_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*text;

	if (size > 0 && strchr("QCFR", data[0]) != NULL) {
		text = xstrndup((const char *)data + 1, size - 1);
		one(data[0], text, strlen(text));
	} else {
		text = xstrndup((const char *)data, size);
		one('Q', text, strlen(text));
		one('C', text, strlen(text));
		one('F', text, strlen(text));
		one('R', text, strlen(text));
	}
	free(text);
	return 0;
}

#ifdef FUZZ_REPLAY
static int
replay(const char *path)
{
	FILE	*f;
	uint8_t	*data;
	size_t	 n;

	if ((f = fopen(path, "rb")) == NULL) {
		printf("not ok - replay %s (cannot open)\n", path);
		return 1;
	}
	data = xmalloc(FUZZ_INPUT_MAX);
	n = fread(data, 1, FUZZ_INPUT_MAX, f);
	fclose(f);
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	printf("ok - replay %s\n", path);
	fflush(stdout);
	return 0;
}

int
main(int argc, char *argv[])
{
	int	 i, failed = 0;

	for (i = 1; i < argc; i++)
		failed |= replay(argv[i]);
	return failed;
}
#endif
