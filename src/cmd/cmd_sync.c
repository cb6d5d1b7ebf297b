/*
 * dingauth sync [--dry-run] [--force] [--json]: copy the company directory
 * from DingTalk (sync.h does the work; this file parses and reports).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "sync.h"

static int	sync_command(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub sync_sub = {
	.run = sync_command,
	.opts = CMD_OPT(OPT_DRY_RUN) | CMD_OPT(OPT_FORCE) | CMD_OPT(OPT_JSON),
	.needs = CFG_NEED_DIRECTORY,
};

static const struct cmd_group group = {
	.name = "sync",
	.usage = "usage: dingauth sync [--dry-run] [--force] [--json]\n\n"
	    "Copy the company directory (departments and members) from "
	    "DingTalk.\nThe new directory replaces the old one in a single "
	    "transaction at the end:\na failed or interrupted run changes "
	    "nothing. Active users no longer in\nDingTalk become inactive and "
	    "lose their sessions, but only when every\ndepartment loaded and "
	    "they are at most DINGAUTH_SYNC_MAX_DEACTIVATE percent\nof the "
	    "active users.\n\n"
	    "  --dry-run  print what would change; change nothing\n"
	    "  --force    deactivate leavers even above the limit\n"
	    "  --json     print the summary as one JSON object\n\n"
	    "Settings: DINGAUTH_SYNC_QPS (requests per second per API), "
	    "DINGAUTH_SYNC_CONCURRENCY,\nDINGAUTH_SYNC_MAX_DEACTIVATE. Exit "
	    "status: 0 done, 1 failed, partial or refused,\n2 usage.\n",
	.subs = &sync_sub,
	.nsubs = 1,
};

static void
print_json(const struct sync_stats *st, int dry_run)
{
	json		*o, *arr;
	long long	 i;

	o = json_new_object();
	json_add_str(o, "outcome", sync_outcome_name(st->outcome));
	json_add_bool(o, "dry_run", dry_run);
	json_add_int(o, "run_id", st->run_id);
	json_add_int(o, "departments", st->departments);
	json_add_int(o, "users", st->users);
	json_add_int(o, "added", st->added);
	json_add_int(o, "updated", st->updated);
	json_add_int(o, "reactivated", st->reactivated);
	if (st->outcome == SYNC_REFUSED) {
		json_add_int(o, "deactivated", 0);
		json_add_int(o, "would_deactivate", st->deactivated);
	} else
		json_add_int(o, "deactivated", st->deactivated);
	json_add_int(o, "sessions_ended", st->sessions_ended);
	json_add_int(o, "departments_added", st->depts_added);
	json_add_int(o, "departments_updated", st->depts_updated);
	json_add_int(o, "departments_removed", st->depts_removed);
	json_add_int(o, "active_before", st->active_before);
	json_add_int(o, "failed_departments", st->failed_departments);
	arr = json_new_array();
	for (i = 0; i < st->failed_departments && i < SYNC_FAILED_LISTED; i++)
		json_append_int(arr, st->failed[i]);
	json_add(o, "failed_department_ids", arr);
	if (st->failure[0] != '\0')
		json_add_str(o, "reason", st->failure);
	json_add_int(o, "requests", st->requests);
	json_add_int(o, "retries", st->retries);
	json_add_int(o, "rate_limited", st->rate_limited);
	json_add_int(o, "token_refreshes", st->token_refreshes);
	json_add_int(o, "milliseconds", (long long)(st->seconds * 1000));
	json_add_int(o, "fetch_milliseconds",
	    (long long)(st->fetch_seconds * 1000));
	json_add_int(o, "apply_milliseconds",
	    (long long)((st->seconds - st->fetch_seconds) * 1000));
	cmd_print_json(o);
	json_free(o);
}

static void
print_text(const struct sync_stats *st)
{
	const char	*verb = st->outcome == SYNC_DRY_RUN ? "would " : "";

	printf("sync %s: %lld departments, %lld users at DingTalk\n",
	    sync_outcome_name(st->outcome), st->departments, st->users);
	printf("users: %sadd %lld, update %lld, reactivate %lld, "
	    "deactivate %lld", verb, st->added, st->updated, st->reactivated,
	    st->outcome == SYNC_REFUSED ? 0 : st->deactivated);
	if (st->sessions_ended > 0)
		printf(" (%lld sessions ended)", st->sessions_ended);
	printf("\ndepartments: %sadd %lld, update %lld, remove %lld\n",
	    verb, st->depts_added, st->depts_updated, st->depts_removed);
	printf("%ld requests (%ld retries, %ld rate-limited) in %.1f s\n",
	    st->requests, st->retries, st->rate_limited, st->seconds);
	if (st->outcome == SYNC_DRY_RUN)
		printf("dry run: nothing changed\n");
}

static void
print_failed_ids(const struct sync_stats *st)
{
	long long	 i;

	for (i = 0; i < st->failed_departments && i < SYNC_FAILED_LISTED; i++)
		fprintf(stderr, "%s%lld", i ? ", " : " (", st->failed[i]);
	if (st->failed_departments > SYNC_FAILED_LISTED)
		fprintf(stderr, ", ...");
	if (st->failed_departments > 0)
		fprintf(stderr, ")");
}

static int
sync_command(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct sync_options	 opt;
	struct sync_stats	 st;
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	int			 as_json = a->opt[OPT_JSON] != NULL, rc;

	memset(&opt, 0, sizeof(opt));
	opt.dry_run = a->opt[OPT_DRY_RUN] != NULL;
	opt.force = a->opt[OPT_FORCE] != NULL;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	opt.progress = isatty(STDERR_FILENO) ? cmd_progress_stream() : NULL;
	opt.plan = opt.dry_run && !as_json ? stdout : NULL;

	if (sync_run(db, &opt, &st, &err) != DA_OK) {
		if (as_json) {
			snprintf(st.failure, sizeof(st.failure), "%s", err.msg);
			print_json(&st, opt.dry_run);
		}
		db_close(db);
		return cmd_fail("sync failed: %s; the directory is unchanged",
		    err.msg);
	}
	db_close(db);
	if (as_json)
		print_json(&st, opt.dry_run);
	else
		print_text(&st);
	rc = EXIT_OK;
	switch (st.outcome) {
	case SYNC_PARTIAL:
		fprintf(stderr, "dingauth: sync partial: %lld department(s) "
		    "could not be loaded", st.failed_departments);
		print_failed_ids(&st);
		fprintf(stderr, ": %s\ndingauth: users found were updated; "
		    "nobody was deactivated and no department removed\n",
		    st.failure);
		rc = EXIT_FAIL;
		break;
	case SYNC_REFUSED:
		fprintf(stderr, "dingauth: sync refused: %s; nothing changed.\n"
		    "dingauth: check the app's visible range in DingTalk, then "
		    "rerun with --force if this is right\n", st.failure);
		rc = EXIT_FAIL;
		break;
	case SYNC_DRY_RUN:
		if (st.failed_departments > 0) {
			fprintf(stderr, "dingauth: %lld department(s) could "
			    "not be loaded", st.failed_departments);
			print_failed_ids(&st);
			fprintf(stderr, ": %s\n", st.failure);
			rc = EXIT_FAIL;
		} else if (!opt.force && st.deactivated > 0 &&
		    st.deactivated * 100 > cfg()->num[CFG_SYNC_MAX_DEACTIVATE] *
		    st.active_before)
			fprintf(stderr, "dingauth: a real run would be "
			    "refused: %lld of %lld active users would leave "
			    "(limit DINGAUTH_SYNC_MAX_DEACTIVATE=%lld%%)\n",
			    st.deactivated, st.active_before,
			    cfg()->num[CFG_SYNC_MAX_DEACTIVATE]);
		break;
	default:
		break;
	}
	return rc;
}

int
cmd_sync(int argc, char **argv)
{
	return cmd_run(&group, &sync_sub, argc, argv);
}
