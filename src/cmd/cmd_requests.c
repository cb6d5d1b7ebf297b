/*
 * dingauth requests list|approve|reject: logins by DingTalk colleagues
 * who are not in our directory, recorded for review when
 * DINGAUTH_UNKNOWN_USER=review. Approving fetches the person from DingTalk
 * and adds them (the work of 'users approve'); rejecting only decides.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "requests.h"

enum sub {
	SUB_LIST,
	SUB_APPROVE,
	SUB_REJECT,
	SUB__MAX
};

static int	list_requests(const struct cmd_sub *, const struct cmd_args *);
static int	approve_request(const struct cmd_sub *,
		    const struct cmd_args *);
static int	reject_request(const struct cmd_sub *,
		    const struct cmd_args *);

static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_LIST] = { "list", list_requests,
	    CMD_OPT(OPT_ALL) | CMD_OPT(OPT_JSON), 0, CFG_NEED_DB, 0, NULL },
	[SUB_APPROVE] = { "approve", approve_request, 0, 1,
	    CFG_NEED_DIRECTORY, 0, NULL },
	[SUB_REJECT] = { "reject", reject_request, 0, 1, CFG_NEED_DB, 0,
	    NULL },
};

static const struct cmd_group group = {
	.name = "requests",
	.usage = "usage:\n"
	    "  dingauth requests [list] [--all] [--json]\n"
	    "      logins waiting for review (--all: decided ones too)\n"
	    "  dingauth requests approve ID\n"
	    "      fetch the person from DingTalk and add them to the "
	    "directory\n"
	    "  dingauth requests reject ID\n"
	    "      decide against the request\n\n"
	    "Exit status: 0 done, 1 failed (no such pending request, DingTalk "
	    "error), 2 usage.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
	.bare = &subs[SUB_LIST],
};

static int
list_one(const struct request_row *row, void *arg)
{
	struct cmd_list	*ls = arg;
	json			*o;
	char			 id[24], attempts[24], t1[32], t2[32];

	if (ls->as_json) {
		o = json_new_object();
		json_add_int(o, "id", row->id);
		json_add_str(o, "userid", row->userid);
		json_add_str(o, "unionid", row->unionid);
		json_add_str(o, "name", row->name);
		json_add_str(o, "status", row->status);
		json_add_int(o, "attempts", row->attempts);
		cmd_json_time(o, "created_at", row->created_at);
		cmd_json_time(o, "updated_at", row->updated_at);
		cmd_json_time(o, "decided_at", row->decided_at);
		cmd_list_item(ls, o);
	} else {
		if (ls->n == 0)
			cmd_table_begin(&ls->table, 7, "ID", "USERID",
			    "STATUS", "ATTEMPTS", "FIRST", "LAST", "NAME");
		snprintf(id, sizeof(id), "%lld", row->id);
		snprintf(attempts, sizeof(attempts), "%lld", row->attempts);
		cmd_table_row(&ls->table, id, row->userid, row->status,
		    attempts, cmd_time(row->created_at, t1, sizeof(t1)),
		    cmd_time(row->updated_at, t2, sizeof(t2)), row->name);
	}
	ls->n++;
	return 0;
}

static int
list_requests(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct cmd_list		 ls;
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	int			 all = a->opt[OPT_ALL] != NULL, rc;
	enum da_err		 e;

	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	cmd_list_begin(&ls, a->opt[OPT_JSON] != NULL);
	e = requests_each(db, all, list_one, &ls, &err);
	db_close(db);
	cmd_list_end(&ls);
	if (e != DA_OK)
		return cmd_fail("requests list: %s", err.msg);
	if (!ls.as_json && ls.n == 0)
		printf("no %slogin requests\n", all ? "" : "pending ");
	return EXIT_OK;
}

/* "approve ID" / "reject ID": ID is a positive number. */
static int
parse_id(const struct cmd_sub *sub, const struct cmd_args *a, long long *id)
{
	char	*end;

	if (a->argc != 1)
		return cmd_usage("requests %s: exactly one request ID is "
		    "needed", sub->name);
	errno = 0;
	*id = strtoll(a->argv[0], &end, 10);
	if (errno != 0 || end == a->argv[0] || *end != '\0' || *id <= 0)
		return cmd_usage("requests %s: '%s' is not a request ID",
		    sub->name, a->argv[0]);
	return EXIT_OK;
}

/*
 * The request's userid, if it is still pending. Prints why not and
 * returns EXIT_FAIL otherwise.
 */
static int
pending_userid(struct db *db, long long id, char *userid, size_t size)
{
	struct da_error	 err = { 0 };
	char		 status[16];

	if (requests_get(db, id, userid, size, status, sizeof(status),
	    &err) != DA_OK)
		return cmd_fail("%s", err.msg);
	if (strcmp(status, "pending") != 0)
		return cmd_fail("login request %lld is already %s", id,
		    status);
	return EXIT_OK;
}

static int
approve_request(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct db	*db = NULL;
	char		 userid[128], *args[3];
	long long	 id;
	int		 rc;

	if ((rc = parse_id(sub, a, &id)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	rc = pending_userid(db, id, userid, sizeof(userid));
	db_close(db);
	if (rc != EXIT_OK)
		return rc;
	/* Fetch, add and mark approved: the same as for 'users approve'. */
	args[0] = "users";
	args[1] = "approve";
	args[2] = userid;
	return cmd_users(3, args);
}

static int
reject_request(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	char		 userid[128], detail[48];
	long long	 id;
	int		 rc, changed = 0;

	if ((rc = parse_id(sub, a, &id)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	if ((rc = pending_userid(db, id, userid, sizeof(userid))) != EXIT_OK)
		goto out;
	snprintf(detail, sizeof(detail), "request %lld", id);
	/* The decision and its audit row: one transaction. */
	if (db_begin_immediate(db, &err) != DA_OK ||
	    requests_reject(db, id, &changed, &err) != DA_OK ||
	    (changed && cmd_audit_record(db, AUDIT_REJECT, userid, detail,
	    &err) != DA_OK) ||
	    db_commit(db, &err) != DA_OK) {
		db_rollback(db);
		rc = cmd_fail("requests reject: %s", err.msg);
	} else if (!changed)
		rc = cmd_fail("requests reject: the request was decided "
		    "meanwhile");
	else {
		cmd_audit_log(AUDIT_REJECT, userid, detail);
		printf("rejected login request %lld (%s)\n", id, userid);
	}
out:
	db_close(db);
	return rc;
}

int
cmd_requests(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
