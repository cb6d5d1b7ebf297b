/*
 * dingauth users list|show|approve|disable|enable: the directory as the
 * operator sees it. A leaver stays as a row with active false.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cmd.h"
#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "json.h"
#include "mem.h"
#include "requests.h"

enum sub {
	SUB_LIST,
	SUB_SHOW,
	SUB_APPROVE,
	SUB_DISABLE,
	SUB_ENABLE,
	SUB__MAX
};

static int	users_list(const struct cmd_sub *, const struct cmd_args *);
static int	users_show(const struct cmd_sub *, const struct cmd_args *);
static int	users_approve(const struct cmd_sub *, const struct cmd_args *);
static int	users_set_disabled(const struct cmd_sub *,
		    const struct cmd_args *);

/* arg: the disabled flag users_set_disabled sets. */
static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_LIST] = { "list", users_list,
	    CMD_OPT(OPT_ACTIVE) | CMD_OPT(OPT_JSON), 0, CFG_NEED_DB, 0,
	    "usage: dingauth users list [--active] [--json]\n"
	    "    every user (leavers too); --active: only active, not "
	    "disabled\n" },
	[SUB_SHOW] = { "show", users_show, CMD_OPT(OPT_JSON), 1, CFG_NEED_DB,
	    0,
	    "usage: dingauth users show USERID [--json]\n"
	    "    one user with departments and state\n" },
	[SUB_APPROVE] = { "approve", users_approve, 0, 1, CFG_NEED_DIRECTORY,
	    0,
	    "usage: dingauth users approve USERID\n"
	    "    fetch the person from DingTalk and add them to the "
	    "directory\n"
	    "    (their pending login request, if any, becomes approved)\n" },
	[SUB_DISABLE] = { "disable", users_set_disabled, 0, 1, CFG_NEED_DB, 1,
	    "usage: dingauth users disable USERID\n"
	    "    refuse this user's logins and end their sessions\n" },
	[SUB_ENABLE] = { "enable", users_set_disabled, 0, 1, CFG_NEED_DB, 0,
	    "usage: dingauth users enable USERID\n"
	    "    undo disable\n" },
};

static const struct cmd_group group = {
	.name = "users",
	.usage = "usage:\n"
	    "  dingauth users list [--active] [--json]\n"
	    "    every user (leavers too); --active: only active, not "
	    "disabled\n"
	    "  dingauth users show USERID [--json]\n"
	    "    one user with departments and state\n"
	    "  dingauth users approve USERID\n"
	    "    fetch the person from DingTalk and add them to the "
	    "directory\n"
	    "    (their pending login request, if any, becomes approved)\n"
	    "  dingauth users disable USERID\n"
	    "    refuse this user's logins and end their sessions\n"
	    "  dingauth users enable USERID\n"
	    "    undo disable\n"
	    "\nExit status: 0 done, 1 failed (unknown user, DingTalk "
	    "error), 2 usage.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
};

static const char *
state_of(const struct dir_user *u)
{
	if (!u->active && u->disabled)
		return "left,disabled";
	if (!u->active)
		return "left";
	if (u->disabled)
		return "disabled";
	return "active";
}

static json *
user_json(const struct dir_user *u)
{
	json	*o, *depts;
	size_t	 i;

	o = json_new_object();
	json_add_str(o, "userid", u->userid);
	json_add_str(o, "unionid", u->unionid);
	json_add_str(o, "name", u->name);
	json_add_bool(o, "active", u->active);
	json_add_bool(o, "disabled", u->disabled);
	depts = json_new_array();
	for (i = 0; i < u->ndept; i++)
		json_append_int(depts, u->dept_ids[i]);
	json_add(o, "dept_ids", depts);
	json_add_str(o, "title", u->title);
	json_add_str(o, "job_number", u->job_number);
	json_add_str(o, "email", u->email);
	json_add_str(o, "mobile", u->mobile);
	json_add_bool(o, "admin", u->admin);
	json_add_str(o, "source", u->source);
	cmd_json_time(o, "created_at", u->created_at);
	cmd_json_time(o, "updated_at", u->updated_at);
	cmd_json_time(o, "left_at", u->left_at);
	return o;
}

static void
print_depts(const struct dir_user *u)
{
	size_t	 i;

	if (u->ndept == 0)
		printf("-");
	for (i = 0; i < u->ndept; i++)
		printf("%s%lld", i ? "," : "", u->dept_ids[i]);
}

static int
list_one(const struct dir_user *u, void *arg)
{
	struct cmd_list	*ls = arg;
	char		*depts, *who;

	if (ls->as_json)
		cmd_list_item(ls, user_json(u));
	else {
		if (ls->n == 0)
			cmd_table_begin(&ls->table, 5, "USERID", "STATE",
			    "ADMIN", "DEPARTMENTS", "NAME (TITLE)");
		depts = u->ndept ? dir_dept_ids_text(u->dept_ids, u->ndept) :
		    xstrdup("-");
		who = xasprintf("%s%s%s%s", u->name, u->title[0] ? " (" : "",
		    u->title, u->title[0] ? ")" : "");
		cmd_table_row(&ls->table, u->userid, state_of(u),
		    u->admin ? "yes" : "-", depts, who);
		free(depts);
		free(who);
	}
	ls->n++;
	return 0;
}

static int
users_list(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct cmd_list		 ls;
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	int			 rc;
	enum da_err		 e;

	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	cmd_list_begin(&ls, a->opt[OPT_JSON] != NULL);
	e = directory_each_user(db, a->opt[OPT_ACTIVE] != NULL, list_one, &ls,
	    &err);
	db_close(db);
	cmd_list_end(&ls);
	if (e != DA_OK)
		return cmd_fail("users list: %s", err.msg);
	if (!ls.as_json && ls.n == 0)
		printf("no users: run 'dingauth sync'\n");
	return EXIT_OK;
}

/* The USERID operand. */
static int
userid_operand(const struct cmd_sub *sub, const struct cmd_args *a,
    const char **userid)
{
	*userid = a->argc > 0 ? a->argv[0] : NULL;
	if (*userid != NULL && **userid == '-')
		return cmd_usage("users %s: unexpected argument '%s' "
		    "(see --help)", sub->name, *userid);
	if (*userid == NULL || **userid == '\0' ||
	    strlen(*userid) >= DIR_ID_MAX)
		return cmd_usage("users %s: a USERID is needed (see --help)",
		    sub->name);
	return EXIT_OK;
}

static int
users_show(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct dir_user	 u;
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*userid;
	char		 t1[32], t2[32], t3[32], l1[1024], l2[1024];
	json		*o;
	int		 rc;
	enum da_err	 e;

	memset(&u, 0, sizeof(u));
	if ((rc = userid_operand(sub, a, &userid)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	e = directory_get_user(db, userid, &u, &err);
	db_close(db);
	if (e != DA_OK)
		return cmd_fail("users show: %s", err.msg);
	if (a->opt[OPT_JSON] != NULL) {
		o = user_json(&u);
		cmd_print_json(o);
		json_free(o);
	} else {
		printf("userid:      %s\n", u.userid);
		printf("unionid:     %s\n", u.unionid[0] ? u.unionid : "-");
		printf("name:        %s\n", cmd_line(u.name, l1, sizeof(l1)));
		printf("title:       %s\n", u.title[0] ? cmd_line(u.title, l2,
		    sizeof(l2)) : "-");
		printf("job number:  %s\n", u.job_number[0] ? u.job_number :
		    "-");
		printf("email:       %s\n", u.email[0] ? u.email : "-");
		printf("mobile:      %s\n", u.mobile[0] ? u.mobile : "-");
		printf("admin:       %s\n", u.admin ? "yes" : "no");
		printf("state:       %s\n", state_of(&u));
		printf("departments: ");
		print_depts(&u);
		printf("\nsource:      %s\n", u.source);
		printf("created:     %s\n", cmd_time(u.created_at, t1,
		    sizeof(t1)));
		printf("updated:     %s\n", cmd_time(u.updated_at, t2,
		    sizeof(t2)));
		if (!u.active)
			printf("left:        %s\n", cmd_time(u.left_at, t3,
			    sizeof(t3)));
	}
	dir_user_clear(&u);
	return EXIT_OK;
}

static int
users_approve(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct dir_user	 person;
	struct dir_user	 u;
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*userid;
	char		 l1[1024];
	int		 rc, was = 0, requests = 0;
	enum da_err	 e;

	memset(&person, 0, sizeof(person));
	memset(&u, 0, sizeof(u));
	if ((rc = userid_operand(sub, a, &userid)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	if ((e = dt_user_get(db, userid, &person, &err)) != DA_OK) {
		rc = e == DA_ENOTFOUND ?
		    cmd_fail("users approve: DingTalk has no member %s",
		    userid) :
		    cmd_fail("users approve: DingTalk: %s", err.msg);
		goto out;
	}
	if ((e = db_begin_immediate(db, &err)) != DA_OK)
		goto dberr;
	/* The request first: adding the person would resolve it too. */
	if ((e = requests_approve_user(db, person.userid, &requests, &err)) !=
	    DA_OK ||
	    (e = directory_upsert_user(db, &person, "approve", &was, &err)) !=
	    DA_OK ||
	    (e = cmd_audit_record(db, AUDIT_APPROVE, person.userid,
	    was == 0 ? "added to the directory" : was == 2 ? "active again" :
	    "updated from DingTalk", &err)) != DA_OK ||
	    (e = db_commit(db, &err)) != DA_OK)
		goto dberr;
	cmd_audit_log(AUDIT_APPROVE, person.userid, was == 0 ? "added to the "
	    "directory" : was == 2 ? "active again" : "updated from DingTalk");
	printf("approved %s (%s): %s%s\n", person.userid,
	    cmd_line(person.name, l1, sizeof(l1)),
	    was == 0 ? "added to the directory" : was == 2 ?
	    "active again" : "updated from DingTalk",
	    requests ? "; pending login request approved" : "");
	if (directory_get_user(db, person.userid, &u, &err) == DA_OK &&
	    u.disabled)
		printf("note: %s is disabled; 'dingauth users enable %s' "
		    "lets them in\n", u.userid, u.userid);
	rc = EXIT_OK;
	goto out;
dberr:
	db_rollback(db);
	rc = cmd_fail("users approve: %s", err.msg);
out:
	dir_user_clear(&u);
	dir_user_clear(&person);
	db_close(db);
	return rc;
}

/* disable (sub->arg 1) or enable (0). */
static int
users_set_disabled(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*userid;
	int		 rc, disabled = sub->arg;
	enum da_err	 e;

	if ((rc = userid_operand(sub, a, &userid)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	/* The switch and its audit row: one transaction. */
	if ((e = db_begin_immediate(db, &err)) == DA_OK &&
	    (e = directory_set_disabled(db, userid, disabled, &err)) ==
	    DA_OK &&
	    (e = cmd_audit_record(db, disabled ? AUDIT_DISABLE : AUDIT_ENABLE,
	    userid, NULL, &err)) == DA_OK)
		e = db_commit(db, &err);
	if (e != DA_OK)
		db_rollback(db);
	db_close(db);
	if (e != DA_OK)
		return cmd_fail("users %s: %s", sub->name, err.msg);
	cmd_audit_log(disabled ? AUDIT_DISABLE : AUDIT_ENABLE, userid, NULL);
	printf("%s %s%s\n", disabled ? "disabled" : "enabled", userid,
	    disabled ? "; their sessions ended" : "");
	return EXIT_OK;
}

int
cmd_users(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
