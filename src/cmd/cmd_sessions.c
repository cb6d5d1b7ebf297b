/*
 * dingauth sessions list|revoke: live employee sessions. Only the SHA-256
 * of a session id is stored, and only its first bytes are ever shown (as
 * a reference to tell sessions apart), never the whole hash.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
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
	    CMD_OPT(OPT_USER) | CMD_OPT(OPT_ALL), 1, CFG_NEED_DB, 0, NULL },
};

static const struct cmd_group group = {
	.name = "sessions",
	.usage = "usage:\n"
	    "  dingauth sessions [list] [--user USERID] [--json]\n"
	    "      live sessions (REF is the start of the stored hash, not "
	    "the id)\n"
	    "  dingauth sessions revoke (REF | --user USERID | --all)\n"
	    "      end one session, a user's or all now; their browsers must "
	    "log in again\n\n"
	    "Exit status: 0 done, 1 failed, 2 usage.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
	.bare = &subs[SUB_LIST],
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
	char			 t1[32], t2[32], t3[32], l1[1024];

	if (ls->as_json) {
		o = json_new_object();
		json_add_str(o, "ref", row->ref);
		json_add_str(o, "userid", row->userid);
		json_add_str(o, "name", row->name);
		cmd_json_time(o, "created_at", row->created_at);
		cmd_json_time(o, "last_seen", row->last_seen);
		cmd_json_time(o, "expires_at", row->expires_at);
		json_add_str(o, "remote_addr", row->remote_addr);
		json_add_str(o, "user_agent", row->user_agent);
		cmd_list_item(ls, o);
	} else {
		if (ls->n == 0)
			cmd_table_begin(&ls->table, 7, "REF", "USERID",
			    "CREATED", "LAST SEEN", "EXPIRES", "ADDRESS",
			    "NAME");
		cmd_table_row(&ls->table, row->ref, row->userid,
		    cmd_time(row->created_at, t1, sizeof(t1)),
		    cmd_time(row->last_seen, t2, sizeof(t2)),
		    cmd_time(row->expires_at, t3, sizeof(t3)),
		    row->remote_addr, cmd_line(row->name, l1, sizeof(l1)));
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

/* REF as sessions list prints it: 12 hexadecimal digits, any case. */
static int
ref_operand(const char *arg, char ref[13])
{
	size_t	 i;

	if (strlen(arg) != 12)
		return cmd_usage("sessions revoke: '%s' is not a session "
		    "reference (12 hexadecimal digits, from sessions list)",
		    arg);
	for (i = 0; i < 12; i++) {
		if (!isxdigit((unsigned char)arg[i]))
			return cmd_usage("sessions revoke: '%s' is not a "
			    "session reference (12 hexadecimal digits, from "
			    "sessions list)", arg);
		ref[i] = (char)tolower((unsigned char)arg[i]);
	}
	ref[12] = '\0';
	return EXIT_OK;
}

static int
sessions_revoke(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*user;
	char		 ref[13], owner[USERID_MAX], detail[64];
	int		 rc, n = 0;
	enum da_err	 e;

	if ((rc = user_option(sub, a, &user)) != EXIT_OK)
		return rc;
	if ((a->opt[OPT_ALL] != NULL) + (user != NULL) + (a->argc > 0) != 1)
		return cmd_usage("sessions revoke: give a REF, --user USERID "
		    "or --all");
	if (a->argc > 0 && (rc = ref_operand(a->argv[0], ref)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	/* The sessions ended and the audit row: one transaction. */
	if ((e = db_begin_immediate(db, &err)) != DA_OK)
		goto fail;
	if (a->argc > 0) {
		e = session_end_ref(db, ref, owner, sizeof(owner), &err);
		n = e == DA_OK;
		user = owner;
	} else if (user != NULL)
		e = session_end_user(db, user, &n, &err);
	else
		e = session_end_all(db, &n, &err);
	snprintf(detail, sizeof(detail), "%d session(s)%s%s", n,
	    a->argc > 0 ? " by reference " : user == NULL ? ", all" : "",
	    a->argc > 0 ? ref : "");
	if (e == DA_OK && (e = cmd_audit_record(db, AUDIT_REVOKE, user,
	    detail, &err)) == DA_OK)
		e = db_commit(db, &err);
fail:
	if (e != DA_OK) {
		db_rollback(db);
		rc = cmd_fail("sessions revoke: %s", err.msg);
	} else {
		cmd_audit_log(AUDIT_REVOKE, user, detail);
		printf("%d session%s revoked%s%s\n", n, n == 1 ? "" : "s",
		    user != NULL ? " for " : "", user != NULL ? user : "");
	}
	db_close(db);
	return rc;
}

int
cmd_sessions(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
