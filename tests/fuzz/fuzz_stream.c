/*
 * libFuzzer target: what the Stream server (or whoever holds its link)
 * controls in one text message: the frame's JSON (type, headers, data as
 * a string) and the event inside data (docs/dingtalk.md, Stream mode).
 * stream_frame_parse, then for an EVENT stream_event_payload and
 * events_parse of what it builds: the path every frame takes before
 * anything is stored.
 *
 * Built with clang -fsanitize=fuzzer,address by tests/fuzz/run (make
 * fuzz). With -DFUZZ_REPLAY it gets a main() that feeds each file named
 * on the command line once and prints "ok - replay FILE" (tests/fuzz/
 * replay, run by make test with the normal compiler); its corpus is
 * tests/fuzz/corpus-stream/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "events.h"
#include "mem.h"
#include "stream.h"

#define FUZZ_INPUT_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A string field must end within its buffer. */
static void
bounded(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_frame	 f;
	struct event		 ev;
	struct da_error		 err;
	char			*payload = NULL;

	da_error_clear(&err);
	if (stream_frame_parse((const char *)data, size, &f, &err) != DA_OK) {
		if (err.msg[0] == '\0' || f.data != NULL)
			abort();	/* a refusal says why, owns nothing */
		bounded(f.message_id, sizeof(f.message_id));
		stream_frame_clear(&f);
		return 0;
	}
	bounded(f.message_id, sizeof(f.message_id));
	bounded(f.topic, sizeof(f.topic));
	bounded(f.event_type, sizeof(f.event_type));
	bounded(f.event_id, sizeof(f.event_id));
	bounded(f.event_corp_id, sizeof(f.event_corp_id));
	if (f.data == NULL || strlen(f.data) != f.data_len)
		abort();
	if (f.type == STREAM_EVENT &&
	    stream_event_payload(&f, &payload, &err) == DA_OK) {
		if (payload == NULL)
			abort();
		if (events_parse(payload, strlen(payload), &ev, &err) == DA_OK)
			event_clear(&ev);
		else if (err.msg[0] == '\0')
			abort();
	}
	free(payload);
	stream_frame_clear(&f);
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
