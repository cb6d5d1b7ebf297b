#ifndef DINGAUTH_METRICS_H
#define DINGAUTH_METRICS_H

#include <stddef.h>

#include "err.h"

/*
 * Counters and histograms shared by every process of an installation
 * (docs/contract.md: GET /dingauth/metrics). The FastCGI programs are
 * separate processes, so the numbers live in a small file mapped into
 * each of them (DINGAUTH_METRICS_FILE; unset, DINGAUTH_DB + ".metrics",
 * or with PostgreSQL METRICS_SERVER_FILE: each web node counts its own;
 * mode 0640, created by the first process that counts): a fixed table
 * of series, each found by hashing its family and labels and claimed
 * with one compare-and-swap;
 * counting is one atomic add, no lock, no system call, no database
 * write, so the authorizer's request stays as cheap as it was. A
 * process that cannot map the file counts nothing (it says so once).
 * The numbers start at zero when the file is new (Prometheus takes it
 * as a counter reset). Gauges (sessions, pending events, the
 * directory's age) are read from the database when scraped.
 */
struct buf;

enum metrics_family {
	METRICS_LOGINS,		/* {flow, outcome} */
	METRICS_AUTHORIZER,	/* {decision} */
	METRICS_EVENTS,		/* {type, outcome} */
	METRICS_DT_CALLS,	/* {api, result}, with a latency histogram */
	METRICS_TOKENS,		/* {kind, result}: token fetches */
	METRICS_SYNCS,		/* {outcome} */
	METRICS_NOTIFICATIONS,	/* {result} */
	METRICS__MAX
};

#define METRICS_LABELS_MAX	120	/* 'name="value",...' */
#define METRICS_SUFFIX		".metrics"	/* DINGAUTH_DB + this */
#define METRICS_SERVER_FILE	"/var/lib/dingauth/dingauth.metrics"

/* The counters' file ("" when there is none to use), into buf. */
const char	*metrics_path(char *buf, size_t size);

/*
 * Create (if need be) and map the file now: 0, or -1 when this process
 * cannot count. dingauth init calls it so that the file exists with the
 * database's owner before anyone counts.
 */
int	metrics_ready(void);

/*
 * Count one in the series of family with labels ('a="x",b="y"', the
 * values already safe: names of our own). Labels too long for the table
 * are cut.
 */
void	metrics_count(enum metrics_family family, const char *labels);

/* Count one and observe seconds in the series' histogram. */
void	metrics_observe(enum metrics_family family, const char *labels,
	    double seconds);

/*
 * Append the shared counters in Prometheus' text exposition format
 * (version 0.0.4) to out: HELP and TYPE for every family, the series
 * sorted.
 */
void	metrics_write(struct buf *out);

/* Unmap (tests; a process's end does it too). */
void	metrics_close(void);

#endif
