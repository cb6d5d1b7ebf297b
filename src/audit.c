/*
 * The audit trail: see audit.h.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "log.h"

enum stmt {
	STMT_INSERT,
	STMT_LIST,
	STMT_PRUNE,
	STMT__MAX
};

#define COLUMNS "id, at, event, userid, unionid, flow, outcome, reason," \
		" source, remote_addr, user_agent, detail"

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_INSERT] = { "audit record",
	    "INSERT INTO audit (at, event, userid, unionid, flow, outcome,"
	    " reason, source, remote_addr, user_agent, detail)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)" },
	/*
	 * The newest ?3 (-1: all) since ?1 about ?2 (NULL: anyone);
	 * PostgreSQL's LIMIT takes NULL for all, never a negative number.
	 */
	[STMT_LIST] = { "audit",
	    "SELECT " COLUMNS " FROM (SELECT " COLUMNS " FROM audit"
	    " WHERE at >= ?1 AND (?2 IS NULL OR userid = ?2)"
	    " ORDER BY id DESC LIMIT ?3) AS newest ORDER BY id",
	    .pg = "SELECT " COLUMNS " FROM (SELECT " COLUMNS " FROM audit"
	    " WHERE at >= ?1 AND (?2::text IS NULL OR userid = ?2)"
	    " ORDER BY id DESC LIMIT CASE WHEN ?3 >= 0 THEN ?3 END) AS newest"
	    " ORDER BY id" },
	[STMT_PRUNE] = { "prune audit",
	    "DELETE FROM audit WHERE at < ?1" },
};

static const char *const names[AUDIT__MAX] = {
	[AUDIT_LOGIN] = "login",
	[AUDIT_LOGOUT] = "logout",
	[AUDIT_OFFBOARD] = "offboard",
	[AUDIT_SYNC] = "sync",
	[AUDIT_APPROVE] = "approve",
	[AUDIT_REJECT] = "reject",
	[AUDIT_DISABLE] = "disable",
	[AUDIT_ENABLE] = "enable",
	[AUDIT_REVOKE] = "revoke",
};

const char *
audit_event_name(enum audit_event e)
{
	return (unsigned)e < AUDIT__MAX ? names[e] : "?";
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

enum da_err
audit_record(struct db *db, const struct audit_entry *e,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_INSERT], DB_ARGS(DB_INT(db_now()),
	    DB_TEXT(audit_event_name(e->event)), DB_TEXT(or_empty(e->userid)),
	    DB_TEXT(or_empty(e->unionid)), DB_TEXT(or_empty(e->flow)),
	    DB_TEXT(or_empty(e->outcome)), DB_TEXT(or_empty(e->reason)),
	    DB_TEXT(or_empty(e->source)), DB_TEXT(or_empty(e->remote_addr)),
	    DB_TEXT(or_empty(e->user_agent)), DB_TEXT(or_empty(e->detail))),
	    err);
}

void
audit_log(int level, const struct audit_entry *e)
{
	const struct log_field	 f[] = {
		{ "outcome", e->outcome },
		{ "userid", e->userid },
		{ "unionid", e->unionid },
		{ "flow", e->flow },
		{ "source", e->source },
		{ "remote_addr", e->remote_addr },
		{ "user_agent", e->user_agent },
		{ "detail", e->detail },
		{ "reason", e->reason },
	};

	log_fields((enum log_level)level, audit_event_name(e->event), f,
	    sizeof(f) / sizeof(f[0]));
}

enum da_err
audit_each(struct db *db, const char *userid, long long since,
    long long limit, int (*fn)(const struct audit_row *, void *), void *arg,
    struct da_error *err)
{
	struct audit_row	 row;
	struct db_rows		 r;

	db_query(db, &r, &stmts[STMT_LIST], DB_ARGS(DB_INT(since),
	    DB_TEXT(userid), DB_INT(limit > 0 ? limit : -1)), err);
	while (db_next(&r) == 1) {
		row.id = db_int(&r, 0);
		row.at = db_int(&r, 1);
		row.event = db_text(&r, 2);
		row.userid = db_text(&r, 3);
		row.unionid = db_text(&r, 4);
		row.flow = db_text(&r, 5);
		row.outcome = db_text(&r, 6);
		row.reason = db_text(&r, 7);
		row.source = db_text(&r, 8);
		row.remote_addr = db_text(&r, 9);
		row.user_agent = db_text(&r, 10);
		row.detail = db_text(&r, 11);
		if (fn(&row, arg) != 0)
			break;
	}
	return db_done(&r);
}

enum da_err
audit_prune(struct db *db, long long before, long long *n,
    struct da_error *err)
{
	enum da_err	 rc;

	*n = 0;
	if ((rc = db_run(db, &stmts[STMT_PRUNE], DB_ARGS(DB_INT(before)),
	    err)) == DA_OK)
		*n = db_changes(db);
	return rc;
}
