/*
 * dingauth events list|retry: the callback events stored by
 * callback.fcgi (and by 'dingauth callback failed').
 *
 * list shows them, oldest first (--pending: only those not yet applied,
 * with the error that kept them and their next attempt; --failed: those
 * that failed for good, with the reason); retry applies the pending ones
 * now, whatever their next attempt time, stopping at the first failure
 * that says DingTalk is unreachable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "json.h"
#include "mem.h"

#define LIST_DEFAULT	100	/* events shown without --limit */
#define IDS_SHOWN	5	/* ids listed per event in text output */

enum sub {
	SUB_LIST,
	SUB_RETRY,
	SUB__MAX
};

static int	events_list(const struct cmd_sub *, const struct cmd_args *);
static int	events_retry(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_LIST] = { "list", events_list,
	    CMD_OPT(OPT_PENDING) | CMD_OPT(OPT_FAILED) | CMD_OPT(OPT_JSON) |
	    CMD_OPT(OPT_LIMIT), 0, CFG_NEED_DB, 0,
	    "usage: dingauth events list [--pending | --failed] [--limit N] "
	    "[--json]\n\n"
	    "Lists stored callback events, oldest first: the newest N (default "
	    "100,\n0 for all). --pending shows only events not applied yet, "
	    "with the\nerror that kept each one and its next attempt; --failed "
	    "those that\nfailed for good (not visible to the app, not found, "
	    "too many attempts),\nwith the reason. --json prints an array of "
	    "objects (id, type, state,\nreceived_at, applied_at, attempts, "
	    "next_attempt_at, last_error,\ninvalid_ids, dedupe_key, "
	    "payload).\n" },
	[SUB_RETRY] = { "retry", events_retry,
	    CMD_OPT(OPT_JSON) | CMD_OPT(OPT_FAILED), 0,
	    CFG_NEED_DIRECTORY | CFG_NEED_DB, 0,
	    "usage: dingauth events retry [--failed] [--json]\n\n"
	    "Applies the pending events now, oldest first, whatever their next "
	    "attempt\ntime (an event another process is applying is left to "
	    "it). A failure\nthat says DingTalk is unreachable or refusing us "
	    "stops the run. Events\nthat failed for good stay failed, unless "
	    "--failed: then they are tried\nagain too (after the cause was "
	    "fixed, e.g. the app's visible range\nwidened). Exit 0 when every "
	    "event tried was applied.\n" },
};

static const struct cmd_group group = {
	.name = "events",
	.usage = "usage: dingauth events [list|retry] [options]\n\n"
	    "  list   show stored callback events (--pending, --json)\n"
	    "  retry  apply the pending events now\n\n"
	    "'dingauth events SUBCOMMAND --help' describes each one.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
	.bare = &subs[SUB_LIST],
};

/* "u001,u002" or "dept 2,3" from a payload, at most IDS_SHOWN ids. */
static void
payload_ids(const char *payload, char *out, size_t size)
{
	static const char *const users[] = { "UserId", "userId", NULL };
	static const char *const depts[] = { "DeptId", "deptId", NULL };
	json		*doc, *ids;
	char		 one[160];
	size_t		 i, n, len = 0;
	int		 is_users;

	out[0] = '\0';
	if ((doc = json_parse(payload, strlen(payload))) == NULL)
		return;
	if ((ids = json_get_any(doc, users)) != NULL)
		is_users = 1;
	else if ((ids = json_get_any(doc, depts)) != NULL)
		is_users = 0;
	else
		goto out;
	n = json_is_array(ids) ? json_array_size(ids) : 1;
	len = (size_t)snprintf(out, size, "%s", is_users ? "users " :
	    "depts ");
	for (i = 0; i < n && i < IDS_SHOWN && len < size; i++) {
		if (json_as_text(json_is_array(ids) ? json_array_item(ids, i) :
		    ids, one, sizeof(one)) != JSON_OK)
			snprintf(one, sizeof(one), "?");
		len += (size_t)snprintf(out + len, size - len, "%s%s",
		    i ? "," : "", one);
	}
	if (n > IDS_SHOWN && len < size)
		snprintf(out + len, size - len, " (+%zu)", n - IDS_SHOWN);
out:
	json_free(doc);
}

static int
print_text(const struct event_row *row, void *arg)
{
	struct cmd_table	*t = arg;
	struct buf		 note;
	char			 id[24], tries[24], received[32], next[32],
				 ids[400];

	payload_ids(row->payload, ids, sizeof(ids));
	buf_init(&note, 4096);
	if (row->last_error[0] != '\0')
		buf_printf(&note, "error: %s", row->last_error);
	if (strcmp(row->state, "pending") == 0 && row->attempts > 0)
		buf_printf(&note, "%snext attempt: %s", note.len ? "; " : "",
		    cmd_time(row->next_attempt_at, next, sizeof(next)));
	if (row->invalid_ids[0] != '\0')
		buf_printf(&note, "%sleft out: %s", note.len ? "; " : "",
		    row->invalid_ids);
	snprintf(id, sizeof(id), "%lld", row->id);
	snprintf(tries, sizeof(tries), "%d", row->attempts);
	cmd_table_row(t, id, row->state, row->type,
	    cmd_time(row->received_at, received, sizeof(received)), tries,
	    ids[0] ? ids : "-", note.len ? note.data : "");
	buf_free(&note);
	return 0;
}

static int
add_json(const struct event_row *row, void *arg)
{
	json	*list = arg, *o, *payload;

	o = json_new_object();
	json_add_int(o, "id", row->id);
	json_add_str(o, "type", row->type);
	json_add_str(o, "state", row->state);
	cmd_json_time(o, "received_at", row->received_at);
	cmd_json_time(o, "applied_at", row->applied_at);
	json_add_int(o, "attempts", row->attempts);
	if (strcmp(row->state, "pending") == 0)
		cmd_json_time(o, "next_attempt_at", row->next_attempt_at);
	else
		json_add_null(o, "next_attempt_at");
	if (row->invalid_ids[0] != '\0')
		json_add_str(o, "invalid_ids", row->invalid_ids);
	else
		json_add_null(o, "invalid_ids");
	if (row->last_error[0] != '\0')
		json_add_str(o, "last_error", row->last_error);
	else
		json_add_null(o, "last_error");
	json_add_str(o, "dedupe_key", row->dedupe_key);
	if ((payload = json_parse(row->payload, strlen(row->payload))) != NULL)
		json_add(o, "payload", payload);
	else
		json_add_str(o, "payload", row->payload);
	json_append(list, o);
	return 0;
}

static int
events_list(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err;
	struct cmd_table table;
	struct db	*db = NULL;
	json		*list = NULL;
	long long	 limit = LIST_DEFAULT;
	enum da_err	 e;
	char		*end;
	enum events_filter filter = EVENTS_ALL;
	int		 rc;

	da_error_clear(&err);
	if (a->opt[OPT_LIMIT] != NULL) {
		limit = strtoll(a->opt[OPT_LIMIT], &end, 10);
		if (*a->opt[OPT_LIMIT] == '\0' || *end != '\0' || limit < 0)
			return cmd_usage("events list: --limit takes a number "
			    ">= 0");
	}
	if (a->opt[OPT_PENDING] != NULL && a->opt[OPT_FAILED] != NULL)
		return cmd_usage("events list: --pending or --failed, not both");
	if (a->opt[OPT_PENDING] != NULL)
		filter = EVENTS_PENDING;
	else if (a->opt[OPT_FAILED] != NULL)
		filter = EVENTS_FAILED;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	if (a->opt[OPT_JSON] != NULL) {
		list = json_new_array();
		if (events_each(db, filter, limit, add_json, list, &err) !=
		    DA_OK) {
			rc = cmd_fail("listing events: %s", err.msg);
			goto out;
		}
		cmd_print_json(list);
	} else {
		cmd_table_begin(&table, 7, "ID", "STATE", "TYPE", "RECEIVED",
		    "TRY", "IDS", "NOTE");
		e = events_each(db, filter, limit, print_text, &table, &err);
		if (e == DA_OK && table.nrows == 1)
			printf("no %sevents\n", filter == EVENTS_PENDING ?
			    "pending " : filter == EVENTS_FAILED ? "failed " :
			    "");
		cmd_table_end(&table);
		if (e != DA_OK) {
			rc = cmd_fail("listing events: %s", err.msg);
			goto out;
		}
	}
	rc = EXIT_OK;
out:
	json_free(list);
	db_close(db);
	return rc;
}

static int
events_retry(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct events_run	 run;
	struct da_error		 err;
	struct db		*db = NULL;
	json			*out = NULL;
	long long		 requeued = 0;
	int			 rc;

	da_error_clear(&err);
	memset(&run, 0, sizeof(run));
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	if (a->opt[OPT_FAILED] != NULL &&
	    events_requeue_failed(db, &requeued, &err) != DA_OK) {
		rc = cmd_fail("requeueing failed events: %s", err.msg);
		goto out;
	}
	if (events_apply_pending(db, 0, 0, 1, &run, &err) != DA_OK) {
		rc = cmd_fail("applying events: %s", err.msg);
		goto out;
	}
	if (a->opt[OPT_JSON] != NULL) {
		out = json_new_object();
		json_add_int(out, "applied", run.applied);
		json_add_int(out, "failed", run.failed);
		json_add_int(out, "failed_for_good", run.gave_up);
		json_add_int(out, "pending", run.pending);
		if (run.failed > 0)
			json_add_str(out, "error", run.first_error.msg);
		cmd_print_json(out);
	} else {
		printf("applied %d event(s), %d failed (%d for good), %lld "
		    "still pending\n", run.applied, run.failed, run.gave_up,
		    run.pending);
		if (run.failed > 0)
			printf("first error: %s: %s\n",
			    da_errname(run.first_error.code),
			    run.first_error.msg);
	}
	rc = run.failed > 0 ? EXIT_FAIL : EXIT_OK;
out:
	json_free(out);
	db_close(db);
	return rc;
}

int
cmd_events(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
