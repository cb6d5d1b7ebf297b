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
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"

enum req_sql {
	SQL_LIST_PENDING,
	SQL_LIST_ALL,
	SQL_GET,
	SQL_REJECT,
	SQL__MAX
};

static const char *const sqls[SQL__MAX] = {
	[SQL_LIST_PENDING] =
	    "SELECT id, userid, unionid, name, status, attempts, created_at,"
	    " updated_at, decided_at FROM login_requests"
	    " WHERE status = 'pending' ORDER BY id",
	[SQL_LIST_ALL] =
	    "SELECT id, userid, unionid, name, status, attempts, created_at,"
	    " updated_at, decided_at FROM login_requests ORDER BY id",
	[SQL_GET] =
	    "SELECT userid, status FROM login_requests WHERE id = ?1",
	[SQL_REJECT] =
	    "UPDATE login_requests SET status = 'rejected', decided_at = ?2,"
	    " updated_at = ?2 WHERE id = ?1 AND status = 'pending'",
};

static void
usage(FILE *f)
{
	fprintf(f, "usage:\n"
	    "  dingauth requests list [--all] [--json]\n"
	    "      logins waiting for review (--all: decided ones too)\n"
	    "  dingauth requests approve ID\n"
	    "      fetch the person from DingTalk and add them to the "
	    "directory\n"
	    "  dingauth requests reject ID\n"
	    "      decide against the request\n\n"
	    "Exit status: 0 done, 1 failed (no such pending request, DingTalk "
	    "error), 2 usage.\n");
}

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

static int
requests_list(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	sqlite3_stmt	*st;
	json		*o;
	char		*text, t1[32], t2[32];
	long long	 n = 0;
	int		 i, all = 0, as_json = 0, rc, step;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else {
			usage(stderr);
			return cmd_usage("requests list: unexpected argument "
			    "'%s'", argv[i]);
		}
	}
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	if ((st = db_stmt(db, sqls[all ? SQL_LIST_ALL : SQL_LIST_PENDING],
	    &err)) == NULL) {
		db_close(db);
		return cmd_fail("requests list: %s", err.msg);
	}
	if (as_json)
		printf("[");
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (as_json) {
			o = json_new_object();
			json_add_int(o, "id", sqlite3_column_int64(st, 0));
			json_add_str(o, "userid", db_column_text(st, 1));
			json_add_str(o, "unionid", db_column_text(st, 2));
			json_add_str(o, "name", db_column_text(st, 3));
			json_add_str(o, "status", db_column_text(st, 4));
			json_add_int(o, "attempts",
			    sqlite3_column_int64(st, 5));
			json_add_int(o, "created_at",
			    sqlite3_column_int64(st, 6));
			json_add_int(o, "updated_at",
			    sqlite3_column_int64(st, 7));
			if (sqlite3_column_type(st, 8) == SQLITE_NULL)
				json_add_null(o, "decided_at");
			else
				json_add_int(o, "decided_at",
				    sqlite3_column_int64(st, 8));
			text = json_print(o);
			printf("%s%s", n ? ",\n" : "\n", text);
			free(text);
			json_free(o);
		} else {
			if (n == 0)
				printf("%-6s %-24s %-8s %-8s %-20s %-20s %s\n",
				    "ID", "USERID", "STATUS", "ATTEMPTS",
				    "FIRST", "LAST", "NAME");
			printf("%-6lld %-24s %-8s %-8lld %-20s %-20s %s\n",
			    sqlite3_column_int64(st, 0), db_column_text(st, 1),
			    db_column_text(st, 4), sqlite3_column_int64(st, 5),
			    when(sqlite3_column_int64(st, 6), t1, sizeof(t1)),
			    when(sqlite3_column_int64(st, 7), t2, sizeof(t2)),
			    db_column_text(st, 3));
		}
		n++;
	}
	if (step != SQLITE_DONE)
		db_error(db, &err, "login requests");
	sqlite3_reset(st);
	db_close(db);
	if (as_json)
		printf("%s]\n", n ? "\n" : "");
	if (step != SQLITE_DONE)
		return cmd_fail("requests list: %s", err.msg);
	if (!as_json && n == 0)
		printf("no %slogin requests\n", all ? "" : "pending ");
	return EXIT_OK;
}

/* "approve ID" / "reject ID": ID is a positive number. */
static int
parse_id(int argc, char **argv, long long *id)
{
	char	*end;

	if (argc != 2) {
		usage(stderr);
		return cmd_usage("requests %s: exactly one request ID is "
		    "needed", argv[0]);
	}
	errno = 0;
	*id = strtoll(argv[1], &end, 10);
	if (errno != 0 || end == argv[1] || *end != '\0' || *id <= 0) {
		usage(stderr);
		return cmd_usage("requests %s: '%s' is not a request ID",
		    argv[0], argv[1]);
	}
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
	sqlite3_stmt	*st;
	int		 step, rc = EXIT_OK;

	if ((st = db_stmt(db, sqls[SQL_GET], &err)) == NULL)
		return cmd_fail("login requests: %s", err.msg);
	sqlite3_bind_int64(st, 1, id);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE)
		rc = cmd_fail("no login request %lld", id);
	else if (step != SQLITE_ROW) {
		db_error(db, &err, "login requests");
		rc = cmd_fail("%s", err.msg);
	} else if (strcmp(db_column_text(st, 1), "pending") != 0)
		rc = cmd_fail("login request %lld is already %s", id,
		    db_column_text(st, 1));
	else
		snprintf(userid, size, "%s", db_column_text(st, 0));
	sqlite3_reset(st);
	return rc;
}

static int
requests_approve(int argc, char **argv)
{
	struct db	*db = NULL;
	char		 userid[128], *args[3];
	long long	 id;
	int		 rc;

	if ((rc = parse_id(argc, argv, &id)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(CFG_NEED_DIRECTORY, &db)) != EXIT_OK)
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
requests_reject(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	sqlite3_stmt	*st;
	char		 userid[128];
	long long	 id;
	int		 rc, changed = 0;

	if ((rc = parse_id(argc, argv, &id)) != EXIT_OK)
		return rc;
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	if ((rc = pending_userid(db, id, userid, sizeof(userid))) != EXIT_OK)
		goto out;
	if ((st = db_stmt(db, sqls[SQL_REJECT], &err)) == NULL) {
		rc = cmd_fail("requests reject: %s", err.msg);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		db_error(db, &err, "login requests");
	else
		changed = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (!changed)
		rc = cmd_fail("requests reject: %s", err.msg[0] ? err.msg :
		    "the request was decided meanwhile");
	else
		printf("rejected login request %lld (%s)\n", id, userid);
out:
	db_close(db);
	return rc;
}

int
cmd_requests(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		(*run)(int, char **);
	} subs[] = {
		{ "list", requests_list },
		{ "approve", requests_approve },
		{ "reject", requests_reject },
	};
	size_t	 i;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cmd_wants_help(argc, argv) || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1);
	usage(stderr);
	return cmd_usage("requests: unknown subcommand '%s'", argv[1]);
}
