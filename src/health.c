/*
 * The health checks: see health.h.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "directory.h"
#include "events.h"
#include "health.h"
#include "json.h"
#include "mem.h"
#include "requests.h"
#include "session.h"
#include "sync.h"
#include "worker.h"

enum stmt {
	STMT_PROBE,
	STMT__MAX
};

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_PROBE] = { "health probe",
	    "INSERT INTO health_probe (id, at) VALUES (1, ?1)"
	    " ON CONFLICT (id) DO UPDATE SET at = excluded.at" },
};

static const char *const names[HEALTH__MAX] = {
	[HEALTH_DATABASE] = "database",
	[HEALTH_DIRECTORY] = "directory",
	[HEALTH_EVENTS] = "events",
	[HEALTH_WORKER] = "worker",
};

const char *
health_check_name(enum health_check c)
{
	return (unsigned)c < HEALTH__MAX ? names[c] : "?";
}

/* A real write, committed: the file, its directory and the lock work. */
static void
check_database(struct db *db, struct health_result *r)
{
	struct da_error	 err;

	if (db == NULL) {
		snprintf(r->text, sizeof(r->text), "cannot be opened");
		return;
	}
	if (db_run(db, &stmts[STMT_PROBE], DB_ARGS(DB_INT(db_now())),
	    &err) != DA_OK) {
		/* SQLite's message names no path ("database is locked"). */
		snprintf(r->text, sizeof(r->text), "not writable: %.120s",
		    err.msg);
		return;
	}
	r->ok = 1;
	snprintf(r->text, sizeof(r->text), "writable, schema version %d",
	    db_schema_version(db));
}

static void
check_directory(struct db *db, struct health_result *r)
{
	struct sync_history	 h;
	struct da_error		 err;
	long long		 users = 0, active = 0, depts = 0;

	r->limit = config_int(CFG_HEALTH_SYNC_AGE);
	if (db == NULL || sync_history(db, &h, &err) != DA_OK ||
	    directory_counts(db, &users, &active, &depts, &err) != DA_OK) {
		snprintf(r->text, sizeof(r->text), "cannot be read");
		return;
	}
	r->count = active;
	if (h.last_ok == 0) {
		snprintf(r->text, sizeof(r->text), "never synced completely: "
		    "run dingauth sync");
		return;
	}
	r->age = db_now() - h.last_ok;
	r->ok = r->age <= r->limit;
	snprintf(r->text, sizeof(r->text), "last complete sync %lld s ago "
	    "(limit %lld s), %lld active users", r->age, r->limit, active);
}

static void
check_events(struct db *db, struct health_result *r)
{
	struct events_health	 h;
	struct da_error		 err;

	r->limit = config_int(CFG_HEALTH_EVENT_AGE);
	if (db == NULL || events_health(db, &h, &err) != DA_OK) {
		snprintf(r->text, sizeof(r->text), "cannot be read");
		return;
	}
	r->count = h.pending;
	r->age = h.pending > 0 ? db_now() - h.oldest_pending : -1;
	r->ok = r->age <= r->limit;
	if (h.pending == 0)
		snprintf(r->text, sizeof(r->text), "none pending");
	else
		snprintf(r->text, sizeof(r->text), "%lld pending, the oldest "
		    "for %lld s (limit %lld s)", h.pending, r->age, r->limit);
}

static void
check_worker(struct db *db, struct health_result *r)
{
	struct worker_beat	 b;
	struct da_error		 err;

	r->limit = WORKER_STALE_SECONDS;
	if (db == NULL || worker_heartbeat(db, &b, &err) != DA_OK) {
		snprintf(r->text, sizeof(r->text), "cannot be read");
		return;
	}
	if (!b.present) {
		snprintf(r->text, sizeof(r->text), "no worker has run: start "
		    "dingauth worker");
		return;
	}
	r->age = db_now() - b.beat_at;
	r->ok = r->age <= r->limit;
	snprintf(r->text, sizeof(r->text), "heartbeat %lld s ago (limit "
	    "%lld s)", r->age, r->limit);
}

void
health_run(struct db *db, struct health *h)
{
	int	 i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < HEALTH__MAX; i++)
		h->check[i].age = -1;
	check_database(db, &h->check[HEALTH_DATABASE]);
	check_directory(db, &h->check[HEALTH_DIRECTORY]);
	check_events(db, &h->check[HEALTH_EVENTS]);
	check_worker(db, &h->check[HEALTH_WORKER]);
	h->ok = 1;
	for (i = 0; i < HEALTH__MAX; i++)
		if (!h->check[i].ok)
			h->ok = 0;
}

/* One gauge: HELP, TYPE and its value. */
static void
gauge(struct buf *out, const char *name, const char *help, long long v)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name,
	    help, name, name, v);
}

void
health_metrics(struct db *db, struct buf *out)
{
	struct sync_history	 s;
	struct events_health	 e;
	struct worker_beat	 b;
	struct da_error		 err;
	long long		 users = 0, active = 0, depts = 0, n = 0;
	long long		 now = db_now();

	if (db == NULL)
		return;
	if (sync_history(db, &s, &err) == DA_OK && s.last_ok > 0)
		gauge(out, "dingauth_directory_age_seconds", "Seconds since "
		    "the last complete directory sync.", now - s.last_ok);
	if (directory_counts(db, &users, &active, &depts, &err) == DA_OK) {
		gauge(out, "dingauth_directory_users", "Users in the "
		    "directory, leavers included.", users);
		gauge(out, "dingauth_directory_active_users", "Active users "
		    "in the directory.", active);
	}
	if (events_health(db, &e, &err) == DA_OK) {
		gauge(out, "dingauth_events_pending", "Address-book events "
		    "waiting to be applied.", e.pending);
		gauge(out, "dingauth_events_failed", "Address-book events "
		    "that failed for good.", e.failed);
		gauge(out, "dingauth_events_oldest_pending_age_seconds",
		    "Age of the oldest pending event (0: none).",
		    e.pending > 0 ? now - e.oldest_pending : 0);
	}
	if (session_count(db, &n, &err) == DA_OK)
		gauge(out, "dingauth_sessions_live", "Live sessions.", n);
	if (requests_count_pending(db, &n, &err) == DA_OK)
		gauge(out, "dingauth_login_requests_pending", "Logins waiting "
		    "for review.", n);
	if (worker_heartbeat(db, &b, &err) == DA_OK && b.present)
		gauge(out, "dingauth_worker_heartbeat_age_seconds", "Seconds "
		    "since the worker's last heartbeat.", now - b.beat_at);
}

json *
health_json(const struct health *h)
{
	const struct health_result	*r;
	json				*doc, *checks, *c;
	int				 i;

	doc = json_new_object();
	json_add_str(doc, "status", h->ok ? "ok" : "fail");
	checks = json_new_object();
	for (i = 0; i < HEALTH__MAX; i++) {
		r = &h->check[i];
		c = json_new_object();
		json_add_str(c, "status", r->ok ? "ok" : "fail");
		json_add_str(c, "message", r->text);
		if (i != HEALTH_DATABASE) {
			if (r->age >= 0)
				json_add_int(c, "age_seconds", r->age);
			else
				json_add_null(c, "age_seconds");
			json_add_int(c, "limit_seconds", r->limit);
		}
		if (i == HEALTH_EVENTS)
			json_add_int(c, "pending", r->count);
		if (i == HEALTH_DIRECTORY)
			json_add_int(c, "active_users", r->count);
		json_add(checks, names[i], c);
	}
	json_add(doc, "checks", checks);
	return doc;
}
