/*
 * dingauth sessions list|revoke: live employee sessions. Only the SHA-256
 * of a session id is stored, and only its first bytes are ever shown (as
 * a reference to tell sessions apart), never the whole hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "session.h"


enum sess_sql {
	SQL_LIST,
	SQL_LIST_USER,
	SQL_REVOKE_ALL,
	SQL__MAX
};

/* Live: before the absolute end and used within the idle time. */
static const char *const sqls[SQL__MAX] = {
	[SQL_LIST] =
	    "SELECT lower(hex(substr(s.id_hash, 1, 6))), s.userid,"
	    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at,"
	    " s.remote_addr, s.user_agent FROM sessions s"
	    " LEFT JOIN users u ON u.userid = s.userid"
	    " WHERE s.expires_at > ?1 AND s.last_seen > ?2"
	    " ORDER BY s.created_at, s.userid",
	[SQL_LIST_USER] =
	    "SELECT lower(hex(substr(s.id_hash, 1, 6))), s.userid,"
	    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at,"
	    " s.remote_addr, s.user_agent FROM sessions s"
	    " LEFT JOIN users u ON u.userid = s.userid"
	    " WHERE s.expires_at > ?1 AND s.last_seen > ?2 AND s.userid = ?3"
	    " ORDER BY s.created_at",
	[SQL_REVOKE_ALL] = "DELETE FROM sessions",
};

static void
usage(FILE *f)
{
	fprintf(f, "usage:\n"
	    "  dingauth sessions list [--user USERID] [--json]\n"
	    "      live sessions (REF is the start of the stored hash, not "
	    "the id)\n"
	    "  dingauth sessions revoke (--user USERID | --all)\n"
	    "      end sessions now; their browsers must log in again\n\n"
	    "Exit status: 0 done, 1 failed, 2 usage.\n");
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

/* "--user ID" at argv[*i]; advances *i. */
static int
take_user(int argc, char **argv, int *i, const char **user)
{
	if (*i + 1 >= argc || argv[*i + 1][0] == '\0' ||
	    strlen(argv[*i + 1]) >= 128) {
		usage(stderr);
		return cmd_usage("sessions %s: --user needs a USERID", argv[0]);
	}
	*user = argv[++*i];
	return EXIT_OK;
}

static int
sessions_list(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	sqlite3_stmt	*st;
	const char	*user = NULL;
	json		*o;
	char		*text, t1[32], t2[32], t3[32];
	long long	 now, n = 0;
	int		 i, as_json = 0, rc, step;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (strcmp(argv[i], "--user") == 0) {
			if ((rc = take_user(argc, argv, &i, &user)) != EXIT_OK)
				return rc;
		} else {
			usage(stderr);
			return cmd_usage("sessions list: unexpected argument "
			    "'%s'", argv[i]);
		}
	}
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	if ((st = db_stmt(db, sqls[user != NULL ? SQL_LIST_USER : SQL_LIST],
	    &err)) == NULL) {
		db_close(db);
		return cmd_fail("sessions list: %s", err.msg);
	}
	now = db_now();
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, now - config_int(CFG_SESSION_IDLE));
	if (user != NULL)
		db_bind_text(st, 3, user);
	if (as_json)
		printf("[");
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (as_json) {
			o = json_new_object();
			json_add_str(o, "ref", db_column_text(st, 0));
			json_add_str(o, "userid", db_column_text(st, 1));
			json_add_str(o, "name", db_column_text(st, 2));
			json_add_int(o, "created_at",
			    sqlite3_column_int64(st, 3));
			json_add_int(o, "last_seen",
			    sqlite3_column_int64(st, 4));
			json_add_int(o, "expires_at",
			    sqlite3_column_int64(st, 5));
			json_add_str(o, "remote_addr", db_column_text(st, 6));
			json_add_str(o, "user_agent", db_column_text(st, 7));
			text = json_print(o);
			printf("%s%s", n ? ",\n" : "\n", text);
			free(text);
			json_free(o);
		} else {
			if (n == 0)
				printf("%-12s %-20s %-20s %-20s %-20s %-15s "
				    "%s\n", "REF", "USERID", "CREATED",
				    "LAST SEEN", "EXPIRES", "ADDRESS", "NAME");
			printf("%-12s %-20s %-20s %-20s %-20s %-15s %s\n",
			    db_column_text(st, 0), db_column_text(st, 1),
			    when(sqlite3_column_int64(st, 3), t1, sizeof(t1)),
			    when(sqlite3_column_int64(st, 4), t2, sizeof(t2)),
			    when(sqlite3_column_int64(st, 5), t3, sizeof(t3)),
			    db_column_text(st, 6), db_column_text(st, 2));
		}
		n++;
	}
	if (step != SQLITE_DONE)
		db_error(db, &err, "sessions");
	sqlite3_reset(st);
	db_close(db);
	if (as_json)
		printf("%s]\n", n ? "\n" : "");
	if (step != SQLITE_DONE)
		return cmd_fail("sessions list: %s", err.msg);
	if (!as_json && n == 0)
		printf("no live sessions\n");
	return EXIT_OK;
}

static int
sessions_revoke(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	sqlite3_stmt	*st;
	const char	*user = NULL;
	int		 i, all = 0, rc, n = 0;
	enum da_err	 e = DA_OK;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (strcmp(argv[i], "--user") == 0) {
			if ((rc = take_user(argc, argv, &i, &user)) != EXIT_OK)
				return rc;
		} else {
			usage(stderr);
			return cmd_usage("sessions revoke: unexpected argument "
			    "'%s'", argv[i]);
		}
	}
	if (all == (user != NULL)) {
		usage(stderr);
		return cmd_usage("sessions revoke: give --user USERID or "
		    "--all");
	}
	if ((rc = cmd_open(CFG_NEED_DB, &db)) != EXIT_OK)
		return rc;
	if (user != NULL)
		e = session_end_user(db, user, &n, &err);
	else if ((st = db_stmt(db, sqls[SQL_REVOKE_ALL], &err)) == NULL)
		e = DA_EDB;
	else {
		if (sqlite3_step(st) != SQLITE_DONE)
			e = db_error(db, &err, "sessions");
		else
			n = sqlite3_changes(db_handle(db));
		sqlite3_reset(st);
	}
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
	static const struct {
		const char	*name;
		int		(*run)(int, char **);
	} subs[] = {
		{ "list", sessions_list },
		{ "revoke", sessions_revoke },
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
	return cmd_usage("sessions: unknown subcommand '%s'", argv[1]);
}
