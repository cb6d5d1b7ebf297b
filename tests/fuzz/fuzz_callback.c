/*
 * libFuzzer target: what a stranger controls in a callback push once
 * past the signature (or holding the token): the encrypt string (base64,
 * AES blocks, DingTalk's 32-byte pad, the length field, the receiver id)
 * and the decrypted event JSON.
 *
 * The first byte of an input picks the path, so a corpus file says what
 * it exercises:
 *   'J'  the rest is an event plaintext: events_parse
 *   'E'  the rest is an encrypt string: envelope_decrypt, then events_parse
 *        of whatever it yields
 *   'R'  the rest is a plaintext: envelope_encrypt, envelope_decrypt must
 *        give back exactly it, then events_parse
 *   else all three on the whole input.
 *
 * Built with clang -fsanitize=fuzzer,address by tests/fuzz/run (make
 * fuzz). With -DFUZZ_REPLAY it gets a main() that feeds each file named
 * on the command line once and prints "ok - replay FILE" (tests/fuzz/
 * replay, run by make test with the normal compiler).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "err.h"
#include "events.h"
#include "mem.h"

#define FUZZ_AES_KEY	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define FUZZ_RECEIVER	"dingcorp0001"
#define FUZZ_RANDOM	"0123456789abcdef"
#define FUZZ_INPUT_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct envelope_key	 key;
static int			 key_ready;

static void
parse_event(const char *text, size_t len)
{
	struct event	 ev;
	struct da_error	 err;
	size_t		 i;

	if (events_parse(text, len, &ev, &err) != DA_OK) {
		/* A refusal always says why. */
		if (err.msg[0] == '\0')
			abort();
		return;
	}
	/* What a parsed event promises its users. */
	if (ev.type[0] == '\0' || strlen(ev.type) >= sizeof(ev.type))
		abort();
	for (i = 0; i < ev.nuser; i++)
		if (ev.userids[i] == NULL || *ev.userids[i] == '\0')
			abort();
	for (i = 0; i < ev.ndept; i++)
		if (ev.dept_ids[i] < 1)
			abort();
	if ((ev.kind == EVENT_USER_ADD || ev.kind == EVENT_USER_LEAVE) &&
	    ev.nuser == 0)
		abort();
	if (ev.kind == EVENT_DEPT_REMOVE && ev.ndept == 0)
		abort();
	event_clear(&ev);
}

static void
decrypt(const uint8_t *data, size_t size)
{
	struct da_error	 err;
	char		*encrypt, *msg = NULL;
	size_t		 msglen = 0;

	encrypt = xstrndup((const char *)data, size);
	if (envelope_decrypt(&key, FUZZ_RECEIVER, encrypt, &msg, &msglen,
	    &err) == DA_OK)
		parse_event(msg, msglen);
	else if (msg != NULL)
		abort();	/* no message without success */
	free(msg);
	free(encrypt);
}

static void
round_trip(const uint8_t *data, size_t size)
{
	struct da_error	 err;
	char		*encrypt = NULL, *msg = NULL;
	size_t		 msglen = 0;

	if (envelope_encrypt(&key, FUZZ_RECEIVER, (const char *)data, size,
	    FUZZ_RANDOM, &encrypt, &err) != DA_OK)
		abort();
	if (envelope_decrypt(&key, FUZZ_RECEIVER, encrypt, &msg, &msglen,
	    &err) != DA_OK || msglen != size ||
	    (size > 0 && memcmp(msg, data, size) != 0))
		abort();
	parse_event(msg, msglen);
	free(msg);
	free(encrypt);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct da_error	 err;

	if (!key_ready) {
		if (envelope_key(FUZZ_AES_KEY, &key, &err) != DA_OK)
			abort();
		key_ready = 1;
	}
	if (size > 0 && data[0] == 'J')
		parse_event((const char *)data + 1, size - 1);
	else if (size > 0 && data[0] == 'E')
		decrypt(data + 1, size - 1);
	else if (size > 0 && data[0] == 'R')
		round_trip(data + 1, size - 1);
	else {
		parse_event((const char *)data, size);
		decrypt(data, size);
		round_trip(data, size);
	}
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
