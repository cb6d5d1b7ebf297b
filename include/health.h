#ifndef DINGAUTH_HEALTH_H
#define DINGAUTH_HEALTH_H

#include "err.h"
#include "json.h"

/*
 * The health checks (docs/contract.md: GET /dingauth/healthz, dingauth
 * doctor --json): the database writable, the directory synced within
 * DINGAUTH_HEALTH_SYNC_AGE, no event pending longer than
 * DINGAUTH_HEALTH_EVENT_AGE, the worker's heartbeat younger than
 * WORKER_STALE_SECONDS. A check's text names no path and no secret: the
 * endpoint answers anyone.
 */
struct db;

enum health_check {
	HEALTH_DATABASE,
	HEALTH_DIRECTORY,
	HEALTH_EVENTS,
	HEALTH_WORKER,
	HEALTH__MAX
};

struct health_result {
	int		 ok;		/* 1 passed, 0 failed */
	long long	 age;		/* seconds: of the directory, the
					   oldest pending event, the
					   heartbeat; -1 when there is none */
	long long	 limit;		/* the age allowed, seconds */
	long long	 count;		/* pending events; users in the
					   directory */
	char		 text[160];	/* what was found, for people */
};

struct health {
	int			 ok;	/* every check passed */
	struct health_result	 check[HEALTH__MAX];
};

/* "database", "directory", "events", "worker": the JSON names. */
const char	*health_check_name(enum health_check c);

/* Run every check on db (NULL: the database could not be opened). */
void		 health_run(struct db *db, struct health *h);

/*
 * h as the endpoint answers it: {"status":"ok"|"fail","checks":{name:
 * {"status", "message", and the numbers that apply}}}. The caller
 * frees it with json_free.
 */
json		*health_json(const struct health *h);

/*
 * The gauges of GET /dingauth/metrics, read now (no write): the
 * directory's age and active users, pending and failed events and the
 * oldest pending one's age, live sessions, pending login requests, the
 * worker's heartbeat age. Appended to out in Prometheus' text format;
 * what cannot be read is left out.
 */
struct buf;
void		 health_metrics(struct db *db, struct buf *out);

#endif
