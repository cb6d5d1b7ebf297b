/*
 * dingauth sessions list|revoke: live employee sessions. Only the SHA-256
 * of a session id is stored, and only its first bytes are ever shown (as
 * a reference to tell sessions apart), never the whole hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "session.h"

#define USERID_MAX	128

enum sub {
	SUB_LIST,
	SUB_REVOKE,
	SUB__MAX
};

static int	sessions_list(const struct cmd_sub *, const struct cmd_args *);
static int	sessions_revoke(const struct cmd_sub *,
		    const struct cmd_args *);

static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_LIST] = { "list", sessions_list,
	    CMD_OPT(OPT_USER) | CMD_OPT(OPT_JSON), 0, CFG_NEED_DB, 0, NULL },
	[SUB_REVOKE] = { "revoke", sessions_revoke,
	    CMD_OPT(OPT_USER) | CMD_OPT(OPT_ALL), 0, CFG_NEED_DB, 0, NULL },
};

static const struct cmd_group group = {
	.name = "sessions",
	.usage = "usage:\n"
	    "  dingauth sessions list [--user USERID] [--json]\n"
	    "      live sessions (REF is the start of the stored hash, not "
	    "the id)\n"
	    "  dingauth sessions revoke (--user USERID | --all)\n"
	    "      end sessions now; their browsers must log in again\n\n"
	    "Exit status: 0 done, 1 failed, 2 usage.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
};

/* The --user value, if given and usable. */
static int
user_option(const struct cmd_sub *sub, const struct cmd_args *a,
    const char **user)
{
	*user = a->opt[OPT_USER];
	if (*user != NULL && (**user == '\0' || strlen(*user) >= USERID_MAX))
		return cmd_usage("sessions %s: --user needs a USERID",
		    sub->name);
	return EXIT_OK;
}

static int
list_one(const struct session_row *row, void *arg)
{
	struct cmd_list	*ls = arg;
	json			*o;
	char			 t1[32], t2[32], t3[32];

	if (ls->as_json) {
		o = json_new_object();
		json_add_str(o, "ref", row->ref);
		json_add_str(o, "userid", row->userid);
		json_add_str(o, "name", row->name);
		json_add_int(o, "created_at", row->created_at);
		json_add_int(o, "last_seen", row->last_seen);
		json_add_int(o, "expires_at", row->expires_at);
		json_add_str(o, "remote_addr", row->remote_addr);
		json_add_str(o, "user_agent", row->user_agent);
		cmd_list_item(ls, o);
	} else {
		if (ls->n == 0)
			printf("%-12s %-20s %-20s %-20s %-20s %-15s %s\n",
			    "REF", "USERID", "CREATED", "LAST SEEN", "EXPIRES",
			    "ADDRESS", "NAME");
		printf("%-12s %-20s %-20s %-20s %-20s %-15s %s\n", row->ref,
		    row->userid, cmd_time(row->created_at, t1, sizeof(t1)),
		    cmd_time(row->last_seen, t2, sizeof(t2)),
		    cmd_time(row->expires_at, t3, sizeof(t3)),
		    row->remote_addr, row->name);
	}
	ls->n++;
	return 0;
}

static int
sessions_list(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct cmd_list		 ls;
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	const char		*user;
	int			 rc;
	enum da_err		 e;

	if ((rc = user_option(sub, a, &user)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	cmd_list_begin(&ls, a->opt[OPT_JSON] != NULL);
	e = session_each(db, user, list_one, &ls, &err);
	db_close(db);
	cmd_list_end(&ls);
	if (e != DA_OK)
		return cmd_fail("sessions list: %s", err.msg);
	if (!ls.as_json && ls.n == 0)
		printf("no live sessions\n");
	return EXIT_OK;
}

static int
sessions_revoke(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*user;
	int		 rc, n = 0;
	enum da_err	 e;

	if ((rc = user_option(sub, a, &user)) != EXIT_OK)
		return rc;
	if ((a->opt[OPT_ALL] != NULL) == (user != NULL))
		return cmd_usage("sessions revoke: give --user USERID or "
		    "--all");
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	if (user != NULL)
		e = session_end_user(db, user, &n, &err);
	else
		e = session_end_all(db, &n, &err);
	db_close(db);
	if (e != DA_OK)
		return cmd_fail("sessions revoke: %s", err.msg);
	printf("%d session%s revoked%s%s\n", n, n == 1 ? "" : "s",
	    user != NULL ? " for " : "", user != NULL ? user : "");
	return EXIT_OK;
}

int
cmd_sessions(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
