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

/* Lengths, with the terminating NUL: a longer value is refused whole. */
#define DIR_ID_MAX	128	/* userid, unionid */
#define DIR_TEXT_MAX	256	/* names, title, email */
#define DIR_SHORT_MAX	64	/* job number, mobile */

/*
 * A person, the one type for them everywhere: DingTalk's fields (filled
 * from its answers by dingtalk.c, refused with DA_ETOOLONG rather than
 * cut when a value does not fit) and what our directory adds. Department
 * ids are an array from DingTalk to the page; dir_user_dept_text joins
 * them (dir_dept_ids_text) only where the outside contract wants "1,2,3".
 */
struct dir_user {
	char		 userid[DIR_ID_MAX];
	char		 unionid[DIR_ID_MAX];
	char		 name[DIR_TEXT_MAX];
	char		 title[DIR_TEXT_MAX];
	char		 job_number[DIR_SHORT_MAX];
	char		 email[DIR_TEXT_MAX];
	char		 mobile[DIR_SHORT_MAX];
	int		 admin;
	long long	*dept_ids;	/* allocated; dir_user_clear frees */
	size_t		 ndept;
	/* Ours: */
	char		 source[16];	/* sync|callback|admit|approve */
	int		 active;	/* 0: left the company */
	int		 disabled;	/* 1: an operator disabled them */
	long long	 created_at, updated_at, left_at;
};

struct dir_dept {
	long long	 dept_id;
	long long	 parent_id;	/* 0 for the root */
	char		 name[DIR_TEXT_MAX];
};

/* Free the department ids and zero u; NULL is fine. */
void		 dir_user_clear(struct dir_user *u);
/* Append a department id to u. */
void		 dir_user_add_dept(struct dir_user *u, long long dept_id);
/*
 * Department ids as "1,2,3" ("" if none), the form of the outside
 * contract's headers; caller frees.
 */
char		*dir_dept_ids_text(const long long *ids, size_t n);

/*
 * The name of department dept_id in name[size] (cut to fit: for pages);
 * DA_ENOTFOUND (name "") if the directory has none.
 */
enum da_err	 directory_dept_name(struct db *db, long long dept_id,
		    char *name, size_t size, struct da_error *err);

/* DA_ENOTFOUND if no row. Memberships are loaded too. */
enum da_err	 directory_get_user(struct db *db, const char *userid,
		    struct dir_user *u, struct da_error *err);

/*
 * Insert or update a user from DingTalk's data and replace their
 * memberships; the user becomes active again (a rehire) with left_at
 * cleared. "disabled" (an operator's decision) is left alone.
 * *was is set (if not NULL) to 0 new, 1 existed active, 2 existed inactive.
 */
enum da_err	 directory_upsert_user(struct db *db, const struct dir_user *u,
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
		    const struct dir_user *u, const char *source,
		    const struct dir_mark *m, int *stale, struct da_error *err);

/*
 * The user left: active = 0, left_at = now, every session ended at once.
 * *sessions (if not NULL) is the number of sessions ended. DA_OK also when
 * the user is unknown (nothing to do).
 */
enum da_err	 directory_deactivate_user(struct db *db, const char *userid,
		    int *sessions, struct da_error *err);
/*
 * The same as an offboarding: when the user was active, an audit row
 * (audit.h, AUDIT_OFFBOARD, with source: "event user_leave_org ID",
 * "sync 12") in the same transaction, and its log line once committed.
 */
enum da_err	 directory_offboard_user(struct db *db, const char *userid,
		    const char *source, int *sessions, struct da_error *err);

/* Operator's switch; disabling ends the user's sessions. DA_ENOTFOUND. */
enum da_err	 directory_set_disabled(struct db *db, const char *userid,
		    int disabled, struct da_error *err);

enum da_err	 directory_upsert_dept(struct db *db, const struct dir_dept *d,
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

/*
 * A staged copy of DingTalk's directory, for a full sync: filled while
 * it is fetched, then compared with ours into a plan that sync applies
 * through the functions above. The copy and the plan live in TEMP tables
 * of this connection: they vanish with it, so a killed run leaves
 * nothing behind.
 */

/* Start an empty copy holding the root (with our name for it, if any). */
enum da_err	 directory_stage_begin(struct db *db, long long root,
		    struct da_error *err);
/* Drop the copy and its plan (errors ignored: cleanup). */
void		 directory_stage_end(struct db *db);

/* The root's name as DingTalk gave it. */
enum da_err	 directory_stage_root_name(struct db *db, long long root,
		    const char *name, struct da_error *err);
/* A department; *fresh is 1 if it was not staged before. */
enum da_err	 directory_stage_dept(struct db *db, long long dept_id,
		    long long parent_id, const char *name, int *fresh,
		    struct da_error *err);
/*
 * Hold a user or a department out of the plan: an event stored while the
 * run was fetching named them, and what it stored (a leave above all) is
 * newer than the copy. Held ids are neither added, updated, reactivated
 * nor removed by this run; the next one sees them as DingTalk has them.
 */
enum da_err	 directory_stage_hold_user(struct db *db, const char *userid,
		    struct da_error *err);
enum da_err	 directory_stage_hold_dept(struct db *db, long long dept_id,
		    struct da_error *err);
/* A department whose sub-departments or members could not be read. */
enum da_err	 directory_stage_dept_failed(struct db *db, long long dept_id,
		    struct da_error *err);
/*
 * A user (once: *fresh is 1 if not staged before) with the departments
 * their record names and dept_id, where they were found.
 */
enum da_err	 directory_stage_user(struct db *db, const struct dir_user *u,
		    long long dept_id, int *fresh, struct da_error *err);

struct dir_stage_counts {
	long long	 departments;
	long long	 users;
	long long	 failed;	/* departments not fully read */
};

/* What is staged; the first max failed departments into failed_ids. */
enum da_err	 directory_stage_counts(struct db *db,
		    struct dir_stage_counts *c, long long *failed_ids,
		    size_t max, struct da_error *err);

/* What the plan does to a user or department. */
enum dir_action {
	DIR_ADD = 1,
	DIR_UPDATE,
	DIR_REACTIVATE,
	DIR_DEACTIVATE,		/* users: left the company */
	DIR_REMOVE,		/* departments: gone */
	DIR__MAX
};

/* "add", "update", "reactivate", "deactivate", "remove". */
const char	*directory_action_name(enum dir_action action);

struct dir_plan_counts {
	long long	 active_before;		/* active users now */
	long long	 users[DIR__MAX];	/* by action */
	long long	 depts[DIR__MAX];	/* by action */
};

/*
 * Compare the copy with our directory into the plan: users and
 * departments to add or update (users to reactivate); when complete (the
 * whole directory was read), also users who left and departments gone;
 * never a held user or department (directory_stage_hold_*). Run inside
 * the caller's transaction; counts into *c.
 */
enum da_err	 directory_plan(struct db *db, int complete,
		    struct dir_plan_counts *c, struct da_error *err);

/*
 * Call fn for every department of the plan, ordered by action then id
 * (d->name is ours for a removal), or for every user, ordered the same
 * way (u as staged with its staged departments; a leaver carries only
 * userid and our name). fn returns DA_OK to go on; its error (err
 * filled) stops the walk and is returned. The plan is sorted before the
 * first call, so fn may write to the directory.
 */
enum da_err	 directory_plan_each_dept(struct db *db,
		    enum da_err (*fn)(enum dir_action action,
		    const struct dir_dept *d, void *arg, struct da_error *err),
		    void *arg, struct da_error *err);
enum da_err	 directory_plan_each_user(struct db *db,
		    enum da_err (*fn)(enum dir_action action,
		    const struct dir_user *u, void *arg, struct da_error *err),
		    void *arg, struct da_error *err);

#endif
