#include <sys/stat.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "prog.h"
#include "version.h"

/* One program per process: its start-up state. */
static struct {
	unsigned	 needs;
	int		 busy_ms;	/* the database's busy budget */
	int		 broken;	/* configuration or start-up failed */
	const char	*unguarded;	/* a route served even then */
	int		 threads;	/* prog_serve_threads is serving */
	int		 threads_no_db;	/* ... and its threads keep none */
	struct da_error	 err;
} prog;

/*
 * The database connection of the thread serving requests: the program's
 * one, or under prog_serve_threads each request thread's own.
 */
static _Thread_local struct db	*thread_db;

/*
 * Keep freed heap in the process. SQLite drops a connection's page cache
 * whenever another process has written (WAL), so every request of a busy
 * installation frees and allocates again a few hundred kB; by default
 * glibc hands the top of the heap back with brk each time, and the kernel
 * then flushes this process's TLB on every CPU (a quarter of the
 * callback's CPU time under concurrent pushes, measured with perf).
 * A long-running program keeps up to PROG_HEAP_KEEP of free heap instead,
 * and takes buffers up to PROG_HEAP_MMAP from the heap rather than from
 * a fresh mapping per request.
 */
#define PROG_HEAP_KEEP	(32 * 1024 * 1024)
#define PROG_HEAP_MMAP	(4 * 1024 * 1024)

/* malloc arenas and SQLite page cache of a program serving in threads. */
#define PROG_THREAD_ARENAS	2
#define PROG_THREAD_CACHE_KB	256

static void
keep_heap(void)
{
	mallopt(M_TRIM_THRESHOLD, PROG_HEAP_KEEP);
	mallopt(M_MMAP_THRESHOLD, PROG_HEAP_MMAP);
}

enum da_err
prog_start(const char *name, unsigned needs, int busy_ms, int argc,
    char *argv[])
{
	enum da_err	 rc;

	version_option(argc, argv, name);
	keep_heap();
	/* What we create (the WAL, the shared memory) is nobody else's. */
	umask(PROG_UMASK);
	log_init(name);
	memset(&prog, 0, sizeof(prog));
	prog.needs = needs;
	prog.busy_ms = busy_ms;
	if ((rc = config_start(needs, &prog.err)) != DA_OK) {
		prog.broken = 1;
		log_msg(LOG_ERR, "configuration: %s", prog.err.msg);
		return rc;
	}
	if ((needs & CFG_NEED_DB) && db_open_budget(cfg()->str[CFG_DB],
	    busy_ms, &thread_db, &prog.err) != DA_OK)
		log_msg(LOG_ERR, "database: %s", prog.err.msg);
	return DA_OK;
}

void
prog_fail(const struct da_error *err)
{
	prog.broken = 1;
	prog.err = *err;
	log_msg(LOG_ERR, "start-up: %s", err->msg);
}

void
prog_unguarded(const char *route)
{
	prog.unguarded = route;
}

int
prog_ready(void)
{
	return !prog.broken;
}

struct db *
prog_db(void)
{
	return prog.broken ? NULL : thread_db;
}

enum da_err
prog_db_fresh(struct db **db, int busy_ms, int *opened, struct da_error *err)
{
	struct da_error	 why;

	da_error_clear(&why);
	if (opened != NULL)
		*opened = 0;
	if (*db != NULL && db_check(*db, &why) != DA_OK) {
		log_msg(LOG_WARN, "database: %s: opening it again", why.msg);
		db_close(*db);
		*db = NULL;
	}
	if (*db != NULL)
		return DA_OK;
	if (db_open_budget(cfg()->str[CFG_DB], busy_ms, db, err) != DA_OK)
		return err != NULL ? err->code : DA_EDB;
	if (opened != NULL)
		*opened = 1;
	return DA_OK;
}

/*
 * Every request first: a program that cannot serve answers here. The
 * database path must still name the file we hold (one stat): a file
 * deleted or replaced since is closed and the path opened again, so
 * that no request is decided from, or written to, a file nobody else
 * sees; with no file there, every request fails closed until
 * "dingauth init" or a restore puts one back.
 */
static int
front(struct req *r, void *arg)
{
	struct da_error	 err;
	int		 unguarded, opened = 0;

	da_error_clear(&err);
	log_ref_begin();
	page_begin(r);
	unguarded = prog.unguarded != NULL && r->role == REQ_RESPONDER &&
	    r->route != NULL && strcmp(r->route, prog.unguarded) == 0;
	if (prog.broken) {
		if (unguarded)
			return 0;	/* it sees prog_db() NULL */
		page_config_error(r, &prog.err);
		return 1;
	}
	if (!(prog.needs & CFG_NEED_DB) || prog.threads_no_db)
		return 0;
	if (prog_db_fresh(&thread_db, prog.busy_ms, &opened, &err) != DA_OK) {
		if (unguarded) {
			log_msg(LOG_ERR, "database: %s", err.msg);
			return 0;
		}
		page_config_error(r, &err);
		return 1;
	}
	if (opened && prog.threads)
		db_cache_kb(thread_db, PROG_THREAD_CACHE_KB);
	return 0;
}

int
prog_serve(const struct req_route *routes, size_t nroutes, size_t body_max,
    void *arg)
{
	int	 rc;

	rc = req_serve(routes, nroutes, front, arg, body_max);
	db_close(thread_db);
	thread_db = NULL;
	return rc;
}

/* A request thread ends: its connection with it. */
static void
thread_end(void)
{
	db_close(thread_db);
	thread_db = NULL;
}

int
prog_serve_threads(const struct req_route *routes, size_t nroutes,
    size_t body_max, void *arg, int nthreads)
{
	if (prog.broken || nthreads < 2)
		return prog_serve(routes, nroutes, body_max, arg);
	/*
	 * What is made on first use is made now, before there are threads
	 * to race for it: the page catalogs and branding files, the
	 * metrics file's mapping, the test clock. Each thread opens its
	 * own connection at its first request (front), with a small page
	 * cache (the kernel's holds the file anyway). A database server's
	 * connections are counted, though (one per thread would be
	 * nthreads per process per program): on PostgreSQL the threads keep
	 * none, prog_db() is NULL in them, and the program hands its
	 * database work to a thread of its own that has one (group.h).
	 */
	prog.threads = 1;
	prog.threads_no_db = db_is_server(cfg()->str[CFG_DB]);
	page_preload();
	/* Threads share a few malloc arenas rather than one each. */
	mallopt(M_ARENA_MAX, PROG_THREAD_ARENAS);
	(void)metrics_ready();
	(void)db_now();
	db_close(thread_db);
	thread_db = NULL;
	return req_serve_threads(routes, nroutes, front, arg, body_max,
	    nthreads, thread_end);
}
