/*
 * pg_insert_responder: the durable-write ceiling of `make bench DB=pg`.
 *
 * insert_responder on PostgreSQL: min_responder plus exactly one INSERT
 * per request, committed on its own (autocommit), through one libpq
 * connection per process and a statement prepared once, as src/db_pg.c
 * talks to the server. The server is the bench's own, durable (fsync
 * and synchronous_commit on), the same one dingauth's programs write
 * to, so its WAL flush is the floor under every stored row. The row is
 * insert_responder's: a UNIQUE text key, a few hundred bytes of payload
 * and a time.
 *
 * The database is BENCH_INSERT_PG (a libpq URI, bin-environment), its
 * table bench_rows made by tests/bench/bench.py before lighttpd starts
 * (two processes creating it at once could collide).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <libpq-fe.h>

#define PAYLOAD_LEN	320	/* about a decrypted user_leave_org push */

static const char *const sql_insert =
    "INSERT INTO bench_rows (dedupe_key, payload, received_at)"
    " VALUES ($1, $2, $3)";

/* One command whose result must be COMMAND_OK; 0 when it was. */
static int
command(PGconn *c, PGresult *res, const char *what)
{
	int	 rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "pg_insert_responder: %s: %s", what,
		    PQerrorMessage(c));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static PGconn *
open_db(const char *uri)
{
	PGconn	*c;

	c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_insert_responder: %s", PQerrorMessage(c));
		goto fail;
	}
	if (command(c, PQprepare(c, "ins", sql_insert, 3, NULL),
	    "prepare") != 0)
		goto fail;
	return c;
fail:
	PQfinish(c);
	return NULL;
}

int
main(void)
{
	FCGX_Request	 r;
	PGconn		*c;
	PGresult	*res;
	const char	*uri, *values[3];
	char		 key[64], now[24], payload[PAYLOAD_LEN + 1];
	unsigned long	 n = 0;
	int		 ok;

	/* As src/prog.c's keep_heap: freed heap stays (no brk per request). */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	if ((uri = getenv("BENCH_INSERT_PG")) == NULL) {
		fprintf(stderr, "pg_insert_responder: BENCH_INSERT_PG not set\n");
		return 1;
	}
	if ((c = open_db(uri)) == NULL)
		return 1;
	memset(payload, 'x', PAYLOAD_LEN);
	payload[PAYLOAD_LEN] = '\0';
	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) >= 0) {
		snprintf(key, sizeof(key), "bench:%ld:%lu", (long)getpid(),
		    ++n);
		snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
		values[0] = key;
		values[1] = payload;
		values[2] = now;
		res = PQexecPrepared(c, "ins", 3, values, NULL, NULL, 0);
		ok = command(c, res, "insert") == 0;
		FCGX_PutS(ok ? "Status: 200 OK\r\n"
		    "Content-Type: text/plain\r\n\r\nok\n" :
		    "Status: 500 Internal Server Error\r\n"
		    "Content-Type: text/plain\r\n\r\nfailed\n", r.out);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 1);
	PQfinish(c);
	return 0;
}
