/*
 * dingauth users list|show|approve|disable|enable: the directory as the
 * operator sees it. A leaver stays as a row with active false.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "json.h"

/* Pending login requests of a user someone just approved. */
static const char *const sql_requests_approve =
    "UPDATE login_requests SET status = 'approved', decided_at = ?2,"
    " updated_at = ?2 WHERE userid = ?1 AND status = 'pending'";

enum sub {
	SUB_LIST,
	SUB_SHOW,
	SUB_APPROVE,
	SUB_DISABLE,
	SUB_ENABLE,
	SUB__MAX
};

static int	users_list(int, char **);
static int	users_show(int, char **);
static int	users_approve(int, char **);
static int	users_disable(int, char **);
static int	users_enable(int, char **);

static const struct subcommand {
	const char	*name;
	int		(*run)(int, char **);
	const char	*usage;
} subs[SUB__MAX] = {
	[SUB_LIST] = { "list", users_list,
	    "users list [--active] [--json]\n"
	    "    every user (leavers too); --active: only active, not "
	    "disabled" },
	[SUB_SHOW] = { "show", users_show,
	    "users show USERID [--json]\n"
	    "    one user with departments and state" },
	[SUB_APPROVE] = { "approve", users_approve,
	    "users approve USERID\n"
	    "    fetch the person from DingTalk and add them to the directory\n"
	    "    (their pending login request, if any, becomes approved)" },
	[SUB_DISABLE] = { "disable", users_disable,
	    "users disable USERID\n"
	    "    refuse this user's logins and end their sessions" },
	[SUB_ENABLE] = { "enable", users_enable,
	    "users enable USERID\n"
	    "    undo disable" },
};

static void
usage(FILE *f)
{
	int	 i;

	fprintf(f, "usage:\n");
	for (i = 0; i < SUB__MAX; i++)
		fprintf(f, "  dingauth %s\n", subs[i].usage);
	fprintf(f, "\nExit status: 0 done, 1 failed (unknown user, DingTalk "
	    "error), 2 usage.\n");
}

static void
sub_usage(FILE *f, enum sub s)
{
	fprintf(f, "usage: dingauth %s\n", subs[s].usage);
}

/* ISO 8601 UTC, or "-" for 0. */
static const char *
when(long long t, char *buf, size_t size)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

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
	json_add_int(o, "created_at", u->created_at);
	json_add_int(o, "updated_at", u->updated_at);
	if (u->left_at > 0)
		json_add_int(o, "left_at", u->left_at);
	else
		json_add_null(o, "left_at");
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

struct list_state {
	int		 as_json;
	long long	 n;
};

static int
list_one(const struct dir_user *u, void *arg)
{
	struct list_state	*ls = arg;
	json			*o;
	char			*text;

	if (ls->as_json) {
		/* One object at a time: a big directory is never in memory. */
		o = user_json(u);
		text = json_print(o);
		printf("%s%s", ls->n ? ",\n" : "\n", text);
		free(text);
		json_free(o);
	} else {
		if (ls->n == 0)
			printf("%-24s %-13s %-5s %s\n", "USERID", "STATE",
			    "ADMIN", "DEPARTMENTS NAME (TITLE)");
		printf("%-24s %-13s %-5s ", u->userid, state_of(u),
		    u->admin ? "yes" : "-");
		print_depts(u);
		printf(" %s%s%s%s\n", u->name, u->title[0] ? " (" : "",
		    u->title, u->title[0] ? ")" : "");
	}
	ls->n++;
	return 0;
}

static int
users_list(int argc, char **argv)
{
	struct list_state	 ls = { 0 };
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	int			 i, active = 0, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ls.as_json = 1;
		else if (strcmp(argv[i], "--active") == 0)
			active = 1;
		else {
			sub_usage(stderr, SUB_LIST);
			return cmd_usage("users list: unexpected argument '%s'",
			    argv[i]);
		}
	}
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	if (ls.as_json)
		printf("[");
	if (directory_each_user(db, active, list_one, &ls, &err) != DA_OK) {
		db_close(db);
		if (ls.as_json)
			printf("]\n");
		return cmd_fail("users list: %s", err.msg);
	}
	db_close(db);
	if (ls.as_json)
		printf("%s]\n", ls.n ? "\n" : "");
	else if (ls.n == 0)
		printf("no users: run 'dingauth sync'\n");
	return EXIT_OK;
}

/* "USERID [--json]" for show; "USERID" for the others. */
static int
parse_userid(int argc, char **argv, enum sub s, int json_ok,
    const char **userid, int *as_json)
{
	int	 i;

	*userid = NULL;
	if (as_json != NULL)
		*as_json = 0;
	for (i = 1; i < argc; i++) {
		if (json_ok && strcmp(argv[i], "--json") == 0)
			*as_json = 1;
		else if (argv[i][0] == '-' || *userid != NULL) {
			sub_usage(stderr, s);
			return cmd_usage("users %s: unexpected argument '%s'",
			    subs[s].name, argv[i]);
		} else
			*userid = argv[i];
	}
	if (*userid == NULL || **userid == '\0' ||
	    strlen(*userid) >= DIR_ID_MAX) {
		sub_usage(stderr, s);
		return cmd_usage("users %s: a USERID is needed", subs[s].name);
	}
	return EXIT_OK;
}

static int
users_show(int argc, char **argv)
{
	struct dir_user	 u;
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*userid;
	char		*text, t1[32], t2[32], t3[32];
	json		*o;
	int		 as_json, rc;
	enum da_err	 e;

	memset(&u, 0, sizeof(u));
	if ((rc = parse_userid(argc, argv, SUB_SHOW, 1, &userid, &as_json)) !=
	    EXIT_OK)
		return rc;
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	e = directory_get_user(db, userid, &u, &err);
	db_close(db);
	if (e != DA_OK)
		return cmd_fail("users show: %s", err.msg);
	if (as_json) {
		o = user_json(&u);
		text = json_print(o);
		printf("%s\n", text);
		free(text);
		json_free(o);
	} else {
		printf("userid:      %s\n", u.userid);
		printf("unionid:     %s\n", u.unionid[0] ? u.unionid : "-");
		printf("name:        %s\n", u.name);
		printf("title:       %s\n", u.title[0] ? u.title : "-");
		printf("job number:  %s\n", u.job_number[0] ? u.job_number :
		    "-");
		printf("email:       %s\n", u.email[0] ? u.email : "-");
		printf("mobile:      %s\n", u.mobile[0] ? u.mobile : "-");
		printf("admin:       %s\n", u.admin ? "yes" : "no");
		printf("state:       %s\n", state_of(&u));
		printf("departments: ");
		print_depts(&u);
		printf("\nsource:      %s\n", u.source);
		printf("created:     %s\n", when(u.created_at, t1, sizeof(t1)));
		printf("updated:     %s\n", when(u.updated_at, t2, sizeof(t2)));
		if (!u.active)
			printf("left:        %s\n", when(u.left_at, t3,
			    sizeof(t3)));
	}
	dir_user_clear(&u);
	return EXIT_OK;
}

static int
users_approve(int argc, char **argv)
{
	struct dt_user	 person;
	struct dir_user	 u;
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	sqlite3_stmt	*st;
	const char	*userid;
	int		 rc, was = 0, requests = 0;
	enum da_err	 e;

	memset(&person, 0, sizeof(person));
	memset(&u, 0, sizeof(u));
	if ((rc = parse_userid(argc, argv, SUB_APPROVE, 0, &userid, NULL)) !=
	    EXIT_OK)
		return rc;
	if ((rc = cmd_open(CFG_NEED_DIRECTORY, &db)) != EXIT_OK)
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
	if ((e = directory_upsert_user(db, &person, "approve", &was, &err)) !=
	    DA_OK)
		goto dberr;
	if ((st = db_stmt(db, sql_requests_approve, &err)) == NULL) {
		e = DA_EDB;
		goto dberr;
	}
	db_bind_text(st, 1, person.userid);
	sqlite3_bind_int64(st, 2, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		e = db_error(db, &err, "login requests");
	else
		requests = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (e != DA_OK || (e = db_commit(db, &err)) != DA_OK)
		goto dberr;
	printf("approved %s (%s): %s%s\n", person.userid, person.name,
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
	dt_user_clear(&person);
	db_close(db);
	return rc;
}

static int
set_disabled(int argc, char **argv, enum sub s, int disabled)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	const char	*userid;
	int		 rc;
	enum da_err	 e;

	if ((rc = parse_userid(argc, argv, s, 0, &userid, NULL)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	e = directory_set_disabled(db, userid, disabled, &err);
	db_close(db);
	if (e != DA_OK)
		return cmd_fail("users %s: %s", subs[s].name, err.msg);
	printf("%s %s%s\n", disabled ? "disabled" : "enabled", userid,
	    disabled ? "; their sessions ended" : "");
	return EXIT_OK;
}

static int
users_disable(int argc, char **argv)
{
	return set_disabled(argc, argv, SUB_DISABLE, 1);
}

static int
users_enable(int argc, char **argv)
{
	return set_disabled(argc, argv, SUB_ENABLE, 0);
}

int
cmd_users(int argc, char **argv)
{
	int	 i;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < SUB__MAX; i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		if (cmd_wants_help(argc - 1, argv + 1)) {
			sub_usage(stdout, (enum sub)i);
			return EXIT_OK;
		}
		return subs[i].run(argc - 1, argv + 1);
	}
	usage(stderr);
	return cmd_usage("users: unknown subcommand '%s'", argv[1]);
}
