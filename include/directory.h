#ifndef DINGAUTH_DIRECTORY_H
#define DINGAUTH_DIRECTORY_H

#include <stddef.h>

#include "err.h"

/*
 * Our copy of the company directory (tables users, user_depts,
 * departments). Login and authorization decide from it alone; sync and
 * callback events keep it true.
 *
 * Functions that change several rows run in their own transaction when
 * called outside one, or join the caller's (sync wraps a whole run in one).
 */
struct db;
struct dt_user;
struct dt_dept;

#define DIR_ID_MAX	128
#define DIR_TEXT_MAX	256

struct dir_user {
	char		 userid[DIR_ID_MAX];
	char		 unionid[DIR_ID_MAX];
	char		 name[DIR_TEXT_MAX];
	char		 title[DIR_TEXT_MAX];
	char		 job_number[64];
	char		 email[DIR_TEXT_MAX];
	char		 mobile[64];
	char		 source[16];	/* sync|callback|admit|approve */
	int		 admin;
	int		 active;	/* 0: left the company */
	int		 disabled;	/* 1: an operator disabled them */
	long long	 created_at, updated_at, left_at;
	long long	*dept_ids;	/* allocated; dir_user_clear frees */
	size_t		 ndept;
};

void		 dir_user_clear(struct dir_user *u);

/* DA_ENOTFOUND if no row. Memberships are loaded too. */
enum da_err	 directory_get_user(struct db *db, const char *userid,
		    struct dir_user *u, struct da_error *err);

/*
 * Insert or update a user from DingTalk's data and replace their
 * memberships; the user becomes active again (a rehire) with left_at
 * cleared. "disabled" (an operator's decision) is left alone.
 * *was is set (if not NULL) to 0 new, 1 existed active, 2 existed inactive.
 */
enum da_err	 directory_upsert_user(struct db *db, const struct dt_user *u,
		    const char *source, int *was, struct da_error *err);

/*
 * The user's row as it was before DingTalk was asked about them: an
 * answer may only be written over the row it was asked for. A leave
 * applied while the question was out (the answer may predate it) makes
 * the answer stale.
 */
struct dir_mark {
	int		 exists;
	int		 active;
	long long	 left_at;
};

enum da_err	 directory_mark_user(struct db *db, const char *userid,
		    struct dir_mark *m, struct da_error *err);

/*
 * directory_upsert_user, in one transaction with a check that the row is
 * still as m found it; if it is not, *stale = 1 and nothing is written.
 */
enum da_err	 directory_upsert_user_marked(struct db *db,
		    const struct dt_user *u, const char *source,
		    const struct dir_mark *m, int *stale, struct da_error *err);

/*
 * The user left: active = 0, left_at = now, every session ended at once.
 * *sessions (if not NULL) is the number of sessions ended. DA_OK also when
 * the user is unknown (nothing to do).
 */
enum da_err	 directory_deactivate_user(struct db *db, const char *userid,
		    int *sessions, struct da_error *err);

/* Operator's switch; disabling ends the user's sessions. DA_ENOTFOUND. */
enum da_err	 directory_set_disabled(struct db *db, const char *userid,
		    int disabled, struct da_error *err);

enum da_err	 directory_upsert_dept(struct db *db, const struct dt_dept *d,
		    struct da_error *err);
/* Remove the department and all memberships in it. */
enum da_err	 directory_remove_dept(struct db *db, long long dept_id,
		    struct da_error *err);

/*
 * Is userid a member of one of depts[0..n) or of a department below one
 * of them (by the departments tree)? *yes set.
 */
enum da_err	 directory_user_in_depts(struct db *db, const char *userid,
		    const long long *depts, size_t n, int *yes,
		    struct da_error *err);

/*
 * Call fn for every user (active_only: only active and not disabled),
 * ordered by userid. fn returns non-zero to stop.
 */
enum da_err	 directory_each_user(struct db *db, int active_only,
		    int (*fn)(const struct dir_user *u, void *arg), void *arg,
		    struct da_error *err);

/* Counts for doctor and summaries. */
enum da_err	 directory_counts(struct db *db, long long *users,
		    long long *active, long long *departments,
		    struct da_error *err);

#endif
