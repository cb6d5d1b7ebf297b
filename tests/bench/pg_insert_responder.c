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
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "insert_ceiling.h"

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

static int
insert_row(void *arg, const char *key, const char *payload, long long now)
{
	PGconn		*c = arg;
	const char	*values[3];
	char		 at[24];

	snprintf(at, sizeof(at), "%lld", now);
	values[0] = key;
	values[1] = payload;
	values[2] = at;
	return command(c, PQexecPrepared(c, "ins", 3, values, NULL, NULL, 0),
	    "insert");
}

int
main(void)
{
	PGconn		*c;
	const char	*uri;
	int		 rc;

	ceiling_keep_heap();
	if ((uri = getenv("BENCH_INSERT_PG")) == NULL) {
		fprintf(stderr, "pg_insert_responder: BENCH_INSERT_PG not set\n");
		return 1;
	}
	if ((c = open_db(uri)) == NULL)
		return 1;
	rc = ceiling_serve(insert_row, c);
	PQfinish(c);
	return rc;
}
