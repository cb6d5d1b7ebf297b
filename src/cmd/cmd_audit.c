/*
 * dingauth audit [--user USERID] [--since WHEN] [--limit N] [--json]: the
 * audit trail (audit.h), oldest first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "mem.h"

#define LIST_DEFAULT	100	/* rows shown without --limit */
#define USERID_MAX	128

static int	audit_list(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub audit_sub = {
	.run = audit_list,
	.opts = CMD_OPT(OPT_USER) | CMD_OPT(OPT_SINCE) | CMD_OPT(OPT_LIMIT) |
	    CMD_OPT(OPT_JSON),
	.needs = CFG_NEED_DB,
};

static const struct cmd_group group = {
	.name = "audit",
	.usage = "usage: dingauth audit [--user USERID] [--since WHEN] "
	    "[--limit N] [--json]\n\n"
	    "The audit trail, oldest first: logins (outcome, flow, client "
	    "address, user\nagent), sign-outs, offboardings (by which event "
	    "or sync), syncs and their\ncounts, operator actions (approve, "
	    "reject, disable, enable, revoke).\n"
	    "  --user USERID  only rows about this person\n"
	    "  --since WHEN   2026-12-01, 2026-12-01T08:00:00Z, or an age: "
	    "30m, 12h, 7d\n"
	    "  --limit N      the newest N rows (default 100, 0 for all)\n"
	    "  --json         an array of objects (id, at, event, userid, "
	    "unionid, flow,\n                 outcome, reason, source, "
	    "remote_addr, user_agent, detail)\n"
	    "Rows older than DINGAUTH_AUDIT_DAYS are pruned by the worker.\n",
	.subs = &audit_sub,
	.nsubs = 1,
};

/*
 * WHEN as Unix seconds: YYYY-MM-DD (UTC midnight), YYYY-MM-DDTHH:MM:SSZ,
 * or N followed by m, h or d before now. -1 when it is none of those.
 */
static long long
parse_since(const char *s)
{
	struct tm	 tm;
	char		*end;
	long long	 n;
	int		 used = 0;

	memset(&tm, 0, sizeof(tm));
	if ((sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) == 6 ||
	    sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &used) == 3) && used > 0 && s[used] == '\0') {
		if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
		    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
		    tm.tm_min > 59 || tm.tm_sec > 60)
			return -1;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		return (long long)timegm(&tm);
	}
	n = strtoll(s, &end, 10);
	if (end == s || n < 0 || n > 100000 || end[0] == '\0' ||
	    end[1] != '\0')
		return -1;
	switch (*end) {
	case 'm':
		return db_now() - n * 60;
	case 'h':
		return db_now() - n * 3600;
	case 'd':
		return db_now() - n * 86400;
	default:
		return -1;
	}
}

static int
list_one(const struct audit_row *row, void *arg)
{
	struct cmd_list	*ls = arg;
	json		*o;
	char		 id[24], at[32], *note;

	if (ls->as_json) {
		o = json_new_object();
		json_add_int(o, "id", row->id);
		cmd_json_time(o, "at", row->at);
		json_add_str(o, "event", row->event);
		json_add_str(o, "userid", row->userid);
		json_add_str(o, "unionid", row->unionid);
		json_add_str(o, "flow", row->flow);
		json_add_str(o, "outcome", row->outcome);
		json_add_str(o, "reason", row->reason);
		json_add_str(o, "source", row->source);
		json_add_str(o, "remote_addr", row->remote_addr);
		json_add_str(o, "user_agent", row->user_agent);
		json_add_str(o, "detail", row->detail);
		cmd_list_item(ls, o);
	} else {
		if (ls->n == 0)
			cmd_table_begin(&ls->table, 9, "ID", "TIME", "EVENT",
			    "USERID", "OUTCOME", "FLOW", "SOURCE", "ADDRESS",
			    "DETAIL");
		snprintf(id, sizeof(id), "%lld", row->id);
		note = xasprintf("%s%s%s%s%s", row->detail, *row->detail &&
		    *row->reason ? "; " : "", row->reason,
		    *row->user_agent && (*row->detail || *row->reason) ?
		    "; " : "", *row->user_agent ? row->user_agent : "");
		cmd_table_row(&ls->table, id, cmd_time(row->at, at,
		    sizeof(at)), row->event, *row->userid ? row->userid : "-",
		    *row->outcome ? row->outcome : "-",
		    *row->flow ? row->flow : "-",
		    *row->source ? row->source : "-",
		    *row->remote_addr ? row->remote_addr : "-", note);
		free(note);
	}
	ls->n++;
	return 0;
}

static int
audit_list(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct cmd_list	 ls;
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*user = a->opt[OPT_USER];
	long long	 since = 0, limit = LIST_DEFAULT;
	char		*end;
	int		 rc;
	enum da_err	 e;

	if (user != NULL && (*user == '\0' || strlen(user) >= USERID_MAX))
		return cmd_usage("audit: --user needs a USERID");
	if (a->opt[OPT_SINCE] != NULL &&
	    (since = parse_since(a->opt[OPT_SINCE])) < 0)
		return cmd_usage("audit: --since takes a date (2026-12-01), "
		    "a time (2026-12-01T08:00:00Z) or an age (30m, 12h, 7d)");
	if (a->opt[OPT_LIMIT] != NULL) {
		limit = strtoll(a->opt[OPT_LIMIT], &end, 10);
		if (*a->opt[OPT_LIMIT] == '\0' || *end != '\0' || limit < 0)
			return cmd_usage("audit: --limit takes a number >= 0");
	}
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	cmd_list_begin(&ls, a->opt[OPT_JSON] != NULL);
	e = audit_each(db, user, since, limit, list_one, &ls, &err);
	db_close(db);
	cmd_list_end(&ls);
	if (e != DA_OK)
		return cmd_fail("audit: %s", err.msg);
	if (!ls.as_json && ls.n == 0)
		printf("no audit rows\n");
	return EXIT_OK;
}

int
cmd_audit(int argc, char **argv)
{
	return cmd_run(&group, &audit_sub, argc, argv);
}
