/*
 * libFuzzer target: DingTalk's answers as the client reads them
 * (docs/dingtalk.md §h): dt_classify judges one finished request of each
 * API family (HTTP status, errcode, sub_code, the v1.0 error shape, the
 * throttling page), and an answer it accepts goes through the person
 * parser dt_user_from_json (the answer itself, its "result", its
 * "user_info"), as the login flows and the sync use them. DingTalk is
 * trusted over TLS, but a proxy, an outage page or a changed API must
 * never crash a program or fill a struct past its fields.
 *
 * The first byte of an input picks the family ('O' oapi, 'T' topapi,
 * 'N' the v1.0 API, else all three) and the second the HTTP status
 * ('2' 200, '4' 400, '1' 401, '3' 403, '9' 429, '5' 500, '6' 503, else
 * 200); the rest is the body.
 *
 * Built with clang -fsanitize=fuzzer,address by tests/fuzz/run (make
 * fuzz); with -DFUZZ_REPLAY, a main() replays the files named on the
 * command line (tests/fuzz/replay, run by make test).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dingtalk.h"
#include "directory.h"
#include "err.h"
#include "http.h"
#include "json.h"
#include "mem.h"

#define FUZZ_INPUT_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static long
status_of(uint8_t c)
{
	switch (c) {
	case '4':
		return 400;
	case '1':
		return 401;
	case '3':
		return 403;
	case '9':
		return 429;
	case '5':
		return 500;
	case '6':
		return 503;
	default:
		return 200;
	}
}

static void
person(const json *obj)
{
	struct dir_user	 u;
	struct da_error	 err;

	if (obj == NULL)
		return;
	memset(&err, 0, sizeof(err));
	if (dt_user_from_json(obj, &u, &err) == DA_OK) {
		/* A person has a userid, and every text fits its field. */
		if (u.userid[0] == '\0' || strlen(u.userid) >= sizeof(u.userid) ||
		    strlen(u.name) >= sizeof(u.name))
			abort();
	} else if (err.msg[0] == '\0')
		abort();	/* a refusal says why */
	dir_user_clear(&u);
}

static void
judge(enum dt_family family, long status, const char *body, size_t len)
{
	struct dt_policy	 policy = { 3, 1, 5000 };
	struct dt_tries		 tries;
	struct dt_verdict	 v;
	struct http_response	 resp;
	json			*doc = NULL;

	memset(&tries, 0, sizeof(tries));
	memset(&v, 0, sizeof(v));
	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.body = xstrndup(body, len);
	resp.len = strlen(resp.body);
	dt_classify(family, DA_OK, NULL, &resp, &policy, &tries, &doc, &v);
	if (v.action == DT_ACT_OK) {
		if (doc == NULL)
			abort();
		person(doc);
		person(json_get(doc, "result"));
		person(json_get(doc, "user_info"));
	} else {
		if (doc != NULL)
			abort();	/* an answer only with ok */
		if (v.action == DT_ACT_FAIL && v.why.code == DA_OK)
			abort();	/* a failure has a reason */
		if (v.action == DT_ACT_RETRY && v.delay_ms < 0)
			abort();
	}
	json_free(doc);
	free(resp.body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dt_family	 all[] = { DT_OAPI, DT_TOPAPI,
					    DT_NEWAPI };
	long				 status = 200;
	size_t				 i, skip = 0;
	int				 family = -1;

	if (size > 0 && (data[0] == 'O' || data[0] == 'T' || data[0] == 'N')) {
		family = data[0] == 'O' ? DT_OAPI : data[0] == 'T' ?
		    DT_TOPAPI : DT_NEWAPI;
		skip = 1;
		if (size > 1) {
			status = status_of(data[1]);
			skip = 2;
		}
	}
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (family == -1 || (int)all[i] == family)
			judge(all[i], status, (const char *)data + skip,
			    size - skip);
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
