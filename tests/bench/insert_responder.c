/*
 * insert_responder: the durable-write ceiling for `make bench`.
 *
 * min_responder plus exactly one SQLite INSERT per request, committed
 * on its own, into a WAL database opened the way src/db.c opens ours
 * (journal_mode=WAL, synchronous=FULL, foreign_keys=ON, a 30 s busy
 * budget waited out with db.c's short retries: busy_wait below). The
 * row is shaped like a stored callback event: a UNIQUE text key, a few
 * hundred bytes of payload and a time. The statement
 * is prepared once per process. Any endpoint that must store one thing
 * per request cannot beat this; the gap to it is the endpoint's own
 * work.
 *
 * The database is BENCH_INSERT_DB (bin-environment).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <sqlite3.h>

#include "insert_ceiling.h"

#define BUSY_TIMEOUT_MS	30000	/* as DB_BUSY_TIMEOUT_MS in src/db.c */
#define BUSY_STEP_US	50	/* as src/db.c's busy_wait */
#define BUSY_STEP_MAX_US 2000

static const char *const sql_setup =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE IF NOT EXISTS bench_rows ("
    " id INTEGER PRIMARY KEY,"
    " dedupe_key TEXT NOT NULL UNIQUE,"
    " payload TEXT NOT NULL,"
    " received_at INTEGER NOT NULL)";
static const char *const sql_insert =
    "INSERT INTO bench_rows (dedupe_key, payload, received_at)"
    " VALUES (?1, ?2, ?3)";

static long long
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* src/db.c's wait for a held lock: 50 µs doubling to 2 ms, within the budget. */
static int
busy_wait(void *arg, int count)
{
	static long long	 since;
	long long		 now = mono_us(), left, step;
	struct timespec		 ts;

	(void)arg;
	if (count == 0)
		since = now;
	left = (long long)BUSY_TIMEOUT_MS * 1000 - (now - since);
	if (left <= 0)
		return 0;
	step = count < 6 ? (long long)BUSY_STEP_US << count : BUSY_STEP_MAX_US;
	if (step > BUSY_STEP_MAX_US)
		step = BUSY_STEP_MAX_US;
	if (step > left)
		step = left;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(step * 1000);
	nanosleep(&ts, NULL);
	return 1;
}

static sqlite3 *
open_db(const char *path)
{
	sqlite3	*h = NULL;

	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_handler(h, busy_wait, NULL);
	if (sqlite3_exec(h, sql_setup, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return h;
fail:
	fprintf(stderr, "insert_responder: %s: %s\n", path,
	    h != NULL ? sqlite3_errmsg(h) : "out of memory");
	sqlite3_close(h);
	return NULL;
}

struct sqlite_ceiling {
	sqlite3		*h;
	sqlite3_stmt	*st;
};

static int
insert_row(void *arg, const char *key, const char *payload, long long now)
{
	struct sqlite_ceiling	*c = arg;
	int			 ok;

	sqlite3_bind_text(c->st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(c->st, 2, payload, PAYLOAD_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(c->st, 3, (sqlite3_int64)now);
	ok = sqlite3_step(c->st) == SQLITE_DONE;
	if (!ok)
		fprintf(stderr, "insert_responder: %s\n", sqlite3_errmsg(c->h));
	sqlite3_reset(c->st);
	return ok ? 0 : -1;
}

int
main(void)
{
	struct sqlite_ceiling	 c = { NULL, NULL };
	const char		*path;
	int			 rc;

	ceiling_keep_heap();
	if ((path = getenv("BENCH_INSERT_DB")) == NULL) {
		fprintf(stderr, "insert_responder: BENCH_INSERT_DB not set\n");
		return 1;
	}
	if ((c.h = open_db(path)) == NULL ||
	    sqlite3_prepare_v3(c.h, sql_insert, -1, SQLITE_PREPARE_PERSISTENT,
	    &c.st, NULL) != SQLITE_OK)
		return 1;
	rc = ceiling_serve(insert_row, &c);
	sqlite3_finalize(c.st);
	sqlite3_close(c.h);
	return rc;
}
