/*
 * Review notifications by DingTalk work notification: see notify.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "notify.h"
#include "requests.h"

/* One request to tell about, copied out of the cursor. */
struct due {
	long long	 id;
	long long	 attempts;
	long long	 created_at;
	char		 userid[128];
	char		 name[256];
};

struct batch {
	struct due	 due[NOTIFY_BATCH];
	size_t		 n;
};

int
notify_enabled(void)
{
	return config_is_set(CFG_AGENT_ID) &&
	    config_is_set(CFG_NOTIFY_USERIDS);
}

static int
collect(const struct request_row *row, void *arg)
{
	struct batch	*b = arg;
	struct due	*d;

	if (b->n == NOTIFY_BATCH)
		return 1;
	d = &b->due[b->n++];
	d->id = row->id;
	d->attempts = row->attempts;
	d->created_at = row->created_at;
	snprintf(d->userid, sizeof(d->userid), "%s", row->userid);
	snprintf(d->name, sizeof(d->name), "%s", row->name);
	return 0;
}

/*
 * The message: who, where, since when, and the commands. The request id
 * and time make each text unique (DingTalk drops identical content to
 * the same person within a day, docs/dingtalk.md §i.2).
 */
static char *
message(const struct due *d)
{
	struct tm	 tm;
	time_t		 t = (time_t)d->created_at;
	char		 when[32] = "?";
	const char	*who = d->name[0] != '\0' ? d->name : d->userid;
	const char	*site = cfg()->str[CFG_PUBLIC_URL];

	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	return xasprintf("登录待审批 / Login awaiting review\n"
	    "%s (userid %s) asked to sign in to %s at %s and is not in the "
	    "directory (request %lld).\n"
	    "Approve: dingauth requests approve %lld\n"
	    "Reject: dingauth requests reject %lld",
	    who, d->userid, *site != '\0' ? site : "the site", when, d->id,
	    d->id, d->id);
}

/* The wait before attempt number attempts + 1; 0 after the last one. */
static long long
next_attempt(long long attempts, long long now)
{
	long long	 wait = NOTIFY_RETRY_FIRST;

	if (attempts + 1 >= NOTIFY_ATTEMPTS)
		return 0;
	while (attempts-- > 0 && wait < NOTIFY_RETRY_MAX)
		wait *= 2;
	return now + (wait < NOTIFY_RETRY_MAX ? wait : NOTIFY_RETRY_MAX);
}

/* Tell the operators about d; the outcome is kept on the request. */
static enum da_err
notify_one(struct db *db, const struct due *d, struct notify_run *run,
    struct da_error *err)
{
	struct da_error	 why;
	long long	 task = 0, next;
	char		*text = message(d);
	enum da_err	 rc;

	da_error_clear(&why);
	if (dt_work_notify(db, config_int(CFG_AGENT_ID),
	    config_str(CFG_NOTIFY_USERIDS), text, &task, &why) == DA_OK) {
		run->sent++;
		metrics_count(METRICS_NOTIFICATIONS, "result=\"sent\"");
		log_msg(LOG_INFO, "notify: told %s that %s waits for review "
		    "(request %lld, task %lld)", config_str(CFG_NOTIFY_USERIDS),
		    d->userid, d->id, task);
		rc = requests_notify_done(db, d->id, 1, NULL, 0, err);
		goto out;
	}
	metrics_count(METRICS_NOTIFICATIONS, "result=\"failed\"");
	if (run->failed++ == 0)
		run->first_error = why;
	next = next_attempt(d->attempts, db_now());
	log_msg(LOG_WARN, "notify: request %lld (%s): %s; %s", d->id,
	    d->userid, why.msg, next > 0 ? "will try again" :
	    "giving up after too many attempts");
	rc = requests_notify_done(db, d->id, 0, why.msg, next, err);
out:
	free(text);
	return rc;
}

enum da_err
notify_pending(struct db *db, struct notify_run *run, struct da_error *err)
{
	struct batch	 b;
	enum da_err	 rc;
	size_t		 i;

	memset(run, 0, sizeof(*run));
	memset(&b, 0, sizeof(b));
	if (!notify_enabled())
		return DA_OK;
	if ((rc = requests_each_to_notify(db, db_now(), NOTIFY_BATCH, collect,
	    &b, err)) != DA_OK)
		return rc;
	for (i = 0; i < b.n; i++)
		if ((rc = notify_one(db, &b.due[i], run, err)) != DA_OK)
			return rc;
	return DA_OK;
}
