#ifndef DINGAUTH_PROG_H
#define DINGAUTH_PROG_H

#include <stddef.h>

#include "err.h"
#include "req.h"

/*
 * The front line every program in cgi-bin/ shares: start-up, then
 * req_serve with one behaviour for a program that cannot serve. A
 * program's main() is its route table, one prog_start and one prog_serve.
 *
 * A program whose configuration did not load keeps running and answers
 * every request 500 with page_config_error (a page naming the key, JSON
 * for script and for JSON routes, the ASCII deny page in the FastCGI
 * Authorizer role, which never grants): a browser sees what is wrong,
 * DingTalk retries its pushes, nothing is written. A database that could
 * not be opened (missing: programs never create it) is tried again at
 * the next request.
 */
struct db;

/* Files the programs create have no "other" bits (the WAL, the SHM). */
#define PROG_UMASK	027

/*
 * Busy budgets of the programs (db.h), in milliseconds: how long a
 * request waits for a write lock another process holds before it
 * answers 503 (the login pages, with Retry-After) or skips a write it
 * can do without (the authorizer's idle-time touch, which never waits).
 * The callback must answer DingTalk within 1500 ms (docs/dingtalk.md
 * §a.8), so its budget leaves room for the rest of the push.
 */
#define PROG_BUSY_AUTHORIZE	250	/* reads only: WAL readers never wait */
#define PROG_BUSY_CALLBACK	800
#define PROG_BUSY_LOGIN		2500

/*
 * Start the program called name ("login.fcgi"): "--version" as the first
 * argument prints the version and exits 0 (version.h); the umask
 * PROG_UMASK; log_init; the configuration (config_start(needs)); and,
 * when needs has CFG_NEED_DB, the database with busy_ms as its busy
 * budget. Every request then checks that the database path still names
 * the file opened (db_check), and opens it again if not.
 * Returns DA_OK, or the failure (remembered: prog_serve answers every
 * request with it; the program skips its own start-up steps).
 */
enum da_err	 prog_start(const char *name, unsigned needs, int busy_ms,
		    int argc, char *argv[]);
/* The program's own start-up step failed after prog_start: serve broken. */
void		 prog_fail(const struct da_error *err);
/*
 * The responder route named route ("healthz") is served even when the
 * program cannot serve (configuration, start-up or database failed):
 * its handler then sees prog_db() NULL and reports that, rather than
 * the broken program's 500 page answering for it.
 */
void		 prog_unguarded(const char *route);
/*
 * A connection of the program's database that is fresh: *db checked
 * (db_check) and, when the path names another file now or *db is NULL,
 * opened (again) with busy_ms as its budget (*opened, if not NULL, set
 * then). For threads that keep a connection of their own (group.h);
 * requests get theirs from prog_db().
 */
enum da_err	 prog_db_fresh(struct db **db, int busy_ms, int *opened,
		    struct da_error *err);
/* 0 when the configuration or the program's start-up failed. */
int		 prog_ready(void);
/*
 * The database (CFG_NEED_DB), open whenever a handler runs; else NULL
 * (and always NULL for an unguarded route of a program that cannot serve).
 */
struct db	*prog_db(void);
/*
 * req_serve(routes, nroutes, the front line above, arg, body_max), then
 * the database closed. Returns the process exit status.
 */
int		 prog_serve(const struct req_route *routes, size_t nroutes,
		    size_t body_max, void *arg);
/*
 * prog_serve with nthreads requests served at once under FastCGI
 * (req_serve_threads), each thread with its own SQLite connection
 * (prog_db() is the calling thread's); on PostgreSQL the threads keep
 * none (prog_db() NULL: a server counts its connections), and the
 * program does its database work in a thread of its own. Plain CGI, a
 * broken program or nthreads < 2: prog_serve. The handlers must be safe to run in
 * threads: what they share is the read-only configuration, the log, the
 * metrics file and what they guard themselves (group.h).
 */
int		 prog_serve_threads(const struct req_route *routes,
		    size_t nroutes, size_t body_max, void *arg, int nthreads);

#endif
