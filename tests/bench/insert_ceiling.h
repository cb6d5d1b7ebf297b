/*
 * What the two durable-write ceilings share (insert_responder on SQLite,
 * pg_insert_responder on PostgreSQL): the heap kept as src/prog.c keeps
 * it, the row every request stores (a unique key, PAYLOAD_LEN bytes of
 * payload, a time), the FastCGI loop and its answers. Each ceiling gives
 * only its engine's one insert. A header of static functions, so that
 * each ceiling stays one file compiled on its own (tests/bench/run) and
 * links nothing of the product.
 */
#ifndef BENCH_INSERT_CEILING_H
#define BENCH_INSERT_CEILING_H

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#define PAYLOAD_LEN	320	/* about a decrypted user_leave_org push */

/* Store one row; 0 when it is committed. */
typedef int	(*ceiling_insert)(void *arg, const char *key,
		    const char *payload, long long now);

static int
ceiling_serve(ceiling_insert insert, void *arg)
{
	FCGX_Request	 r;
	char		 key[64], payload[PAYLOAD_LEN + 1];
	unsigned long	 n = 0;
	int		 ok;

	memset(payload, 'x', PAYLOAD_LEN);
	payload[PAYLOAD_LEN] = '\0';
	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) >= 0) {
		snprintf(key, sizeof(key), "bench:%ld:%lu", (long)getpid(),
		    ++n);
		ok = insert(arg, key, payload, (long long)time(NULL)) == 0;
		FCGX_PutS(ok ? "Status: 200 OK\r\n"
		    "Content-Type: text/plain\r\n\r\nok\n" :
		    "Status: 500 Internal Server Error\r\n"
		    "Content-Type: text/plain\r\n\r\nfailed\n", r.out);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 1);
	return 0;
}

/* As src/prog.c's keep_heap: freed heap stays (no brk per request). */
static void
ceiling_keep_heap(void)
{
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
}

#endif
