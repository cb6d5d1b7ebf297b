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
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <sqlite3.h>

#define BUSY_TIMEOUT_MS	30000	/* as DB_BUSY_TIMEOUT_MS in src/db.c */
#define BUSY_STEP_US	50	/* as src/db.c's busy_wait */
#define BUSY_STEP_MAX_US 2000
#define PAYLOAD_LEN	320	/* about a decrypted user_leave_org push */

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

int
main(void)
{
	FCGX_Request	 r;
	sqlite3		*h = NULL;
	sqlite3_stmt	*st = NULL;
	const char	*path;
	char		 key[64], payload[PAYLOAD_LEN + 1];
	unsigned long	 n = 0;
	int		 ok;

	/* As src/prog.c's keep_heap: freed heap stays (no brk per request). */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	if ((path = getenv("BENCH_INSERT_DB")) == NULL) {
		fprintf(stderr, "insert_responder: BENCH_INSERT_DB not set\n");
		return 1;
	}
	if ((h = open_db(path)) == NULL ||
	    sqlite3_prepare_v3(h, sql_insert, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK)
		return 1;
	memset(payload, 'x', PAYLOAD_LEN);
	payload[PAYLOAD_LEN] = '\0';
	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) >= 0) {
		snprintf(key, sizeof(key), "bench:%ld:%lu", (long)getpid(),
		    ++n);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, payload, PAYLOAD_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		ok = sqlite3_step(st) == SQLITE_DONE;
		if (!ok)
			fprintf(stderr, "insert_responder: %s\n",
			    sqlite3_errmsg(h));
		sqlite3_reset(st);
		FCGX_PutS(ok ? "Status: 200 OK\r\n"
		    "Content-Type: text/plain\r\n\r\nok\n" :
		    "Status: 500 Internal Server Error\r\n"
		    "Content-Type: text/plain\r\n\r\nfailed\n", r.out);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 1);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return 0;
}
