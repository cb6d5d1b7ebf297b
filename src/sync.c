#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "http.h"
#include "http_multi.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "token.h"

#define ROOT_DEPT		1
#define PAGE_SIZE		100
/* Pace at 1/QPS * this: arrival jitter never packs QPS+1 into a second. */
#define RATE_MARGIN		1.10
/*
 * Busy and rate-limit answers one request may meet. More than a login's
 * DINGAUTH_HTTP_RETRIES: nobody waits on a page, and a whole directory
 * copy should pace itself down through a busy spell rather than leave a
 * department out.
 */
#define RATE_RETRIES		8
#define WAIT_MAX_MS		60000	/* the per-minute limits' pause */
#define SLOWDOWN		1.5	/* interval factor: rate limited */
#define SPEEDUP		0.97	/* interval factor: success */
#define POLL_MAX_MS		200
#define PROGRESS_EVERY_US	250000LL

static const char *const outcome_names[SYNC__MAX] = {
	[SYNC_OK] = "ok",
	[SYNC_PARTIAL] = "partial",
	[SYNC_REFUSED] = "refused",
	[SYNC_FAILED] = "failed",
	[SYNC_DRY_RUN] = "dry-run",
};

enum sync_api {
	API_DEPT_GET,		/* the root's name */
	API_LISTSUB,		/* direct sub-departments */
	API_USER_LIST,		/* one page of members */
	API__MAX
};

static const struct sync_api_def {
	enum dt_api	 api;
	const char	*what;
} apis[API__MAX] = {
	[API_DEPT_GET] = { DT_API_DEPT_GET, "department" },
	[API_LISTSUB] = { DT_API_DEPT_LISTSUB, "sub-departments" },
	[API_USER_LIST] = { DT_API_USER_LIST, "members" },
};

/* Plan actions (temp.sync_plan.action, temp.sync_dept_plan.action). */
enum plan_action {
	PLAN_ADD = 1,
	PLAN_UPDATE = 2,
	PLAN_REACTIVATE = 3,
	PLAN_DEACTIVATE = 4,
	PLAN_REMOVE = 5,
};

/*
 * The run's copy of DingTalk's directory lives in TEMP tables: they
 * vanish with the connection, so a killed run leaves nothing behind.
 */
static const char *const sql_stage_create =
    "DROP TABLE IF EXISTS temp.sync_depts;"
    "DROP TABLE IF EXISTS temp.sync_users;"
    "DROP TABLE IF EXISTS temp.sync_user_depts;"
    "DROP TABLE IF EXISTS temp.sync_plan;"
    "DROP TABLE IF EXISTS temp.sync_dept_plan;"
    "CREATE TEMP TABLE sync_depts ("
    " dept_id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL,"
    " name TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TEMP TABLE sync_users ("
    " userid TEXT PRIMARY KEY, unionid TEXT NOT NULL, name TEXT NOT NULL,"
    " title TEXT NOT NULL, job_number TEXT NOT NULL, email TEXT NOT NULL,"
    " mobile TEXT NOT NULL, admin INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_user_depts ("
    " userid TEXT NOT NULL, dept_id INTEGER NOT NULL,"
    " PRIMARY KEY (userid, dept_id)) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_plan ("
    " userid TEXT PRIMARY KEY, action INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_dept_plan ("
    " dept_id INTEGER PRIMARY KEY, action INTEGER NOT NULL);";
static const char *const sql_stage_drop =
    "DROP TABLE IF EXISTS temp.sync_depts;"
    "DROP TABLE IF EXISTS temp.sync_users;"
    "DROP TABLE IF EXISTS temp.sync_user_depts;"
    "DROP TABLE IF EXISTS temp.sync_plan;"
    "DROP TABLE IF EXISTS temp.sync_dept_plan;";
/* The root keeps its stored name should department/get fail. */
static const char *const sql_stage_root =
    "INSERT OR IGNORE INTO temp.sync_depts (dept_id, parent_id, name)"
    " VALUES (?1, 0, COALESCE((SELECT name FROM main.departments"
    " WHERE dept_id = ?1), ''))";
static const char *const sql_stage_root_name =
    "UPDATE temp.sync_depts SET name = ?2 WHERE dept_id = ?1";
static const char *const sql_stage_dept =
    "INSERT OR IGNORE INTO temp.sync_depts (dept_id, parent_id, name)"
    " VALUES (?1, ?2, ?3)";
static const char *const sql_stage_dept_failed =
    "UPDATE temp.sync_depts SET failed = 1 WHERE dept_id = ?1";
static const char *const sql_stage_user =
    "INSERT OR IGNORE INTO temp.sync_users (userid, unionid, name, title,"
    " job_number, email, mobile, admin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
    " ?8)";
static const char *const sql_stage_member =
    "INSERT OR IGNORE INTO temp.sync_user_depts (userid, dept_id)"
    " VALUES (?1, ?2)";
static const char *const sql_stage_counts =
    "SELECT (SELECT count(*) FROM temp.sync_depts),"
    " (SELECT count(*) FROM temp.sync_users),"
    " (SELECT count(*) FROM temp.sync_depts WHERE failed)";
static const char *const sql_stage_failed_list =
    "SELECT dept_id FROM temp.sync_depts WHERE failed ORDER BY dept_id"
    " LIMIT ?1";

static const char *const sql_run_start =
    "INSERT INTO sync_runs (started_at, outcome) VALUES (?1, 'running')";
/* Runs that never finished were killed (or are still going elsewhere). */
static const char *const sql_run_orphans =
    "UPDATE sync_runs SET outcome = 'interrupted',"
    " error = 'the run ended before it finished (killed?)'"
    " WHERE outcome = 'running' AND id < ?1";
static const char *const sql_run_finish =
    "UPDATE sync_runs SET finished_at = ?2, outcome = ?3, departments = ?4,"
    " users = ?5, added = ?6, updated = ?7, deactivated = ?8,"
    " reactivated = ?9, requests = ?10, error = ?11 WHERE id = ?1";
static const char *const sql_run_last =
    "SELECT started_at, outcome FROM sync_runs"
    " WHERE outcome <> 'dry-run' ORDER BY id DESC LIMIT 1";
static const char *const sql_run_last_ok =
    "SELECT coalesce(max(finished_at), 0) FROM sync_runs"
    " WHERE outcome = 'ok'";

static const char *const sql_active_count =
    "SELECT count(*) FROM main.users WHERE active = 1";
static const char *const sql_plan_users =
    "INSERT INTO temp.sync_plan (userid, action)"
    " SELECT s.userid, CASE WHEN u.userid IS NULL THEN 1"
    "  WHEN u.active = 0 THEN 3 ELSE 2 END"
    " FROM temp.sync_users s LEFT JOIN main.users u ON u.userid = s.userid"
    " WHERE u.userid IS NULL OR u.active = 0 OR u.name <> s.name"
    "  OR u.title <> s.title OR u.job_number <> s.job_number"
    "  OR u.email <> s.email OR u.mobile <> s.mobile OR u.admin <> s.admin"
    "  OR (s.unionid <> '' AND u.unionid IS NOT s.unionid)"
    "  OR EXISTS (SELECT 1 FROM temp.sync_user_depts m"
    "   WHERE m.userid = s.userid AND NOT EXISTS (SELECT 1"
    "   FROM main.user_depts x WHERE x.userid = m.userid"
    "   AND x.dept_id = m.dept_id))"
    "  OR EXISTS (SELECT 1 FROM main.user_depts x"
    "   WHERE x.userid = s.userid AND NOT EXISTS (SELECT 1"
    "   FROM temp.sync_user_depts m WHERE m.userid = x.userid"
    "   AND m.dept_id = x.dept_id))";
static const char *const sql_plan_leavers =
    "INSERT INTO temp.sync_plan (userid, action)"
    " SELECT userid, 4 FROM main.users WHERE active = 1"
    " AND userid NOT IN (SELECT userid FROM temp.sync_users)";
static const char *const sql_plan_depts =
    "INSERT INTO temp.sync_dept_plan (dept_id, action)"
    " SELECT s.dept_id, CASE WHEN d.dept_id IS NULL THEN 1 ELSE 2 END"
    " FROM temp.sync_depts s LEFT JOIN main.departments d"
    " ON d.dept_id = s.dept_id WHERE d.dept_id IS NULL OR d.name <> s.name"
    " OR d.parent_id IS NOT NULLIF(s.parent_id, 0)";
static const char *const sql_plan_dept_removals =
    "INSERT INTO temp.sync_dept_plan (dept_id, action)"
    " SELECT dept_id, 5 FROM main.departments"
    " WHERE dept_id NOT IN (SELECT dept_id FROM temp.sync_depts)";
static const char *const sql_plan_counts =
    "SELECT action, count(*) FROM temp.sync_plan GROUP BY action";
static const char *const sql_dept_plan_counts =
    "SELECT action, count(*) FROM temp.sync_dept_plan GROUP BY action";
static const char *const sql_plan_each =
    "SELECT p.action, p.userid, s.unionid, s.name, s.title, s.job_number,"
    " s.email, s.mobile, s.admin, u.name"
    " FROM temp.sync_plan p LEFT JOIN temp.sync_users s"
    " ON s.userid = p.userid LEFT JOIN main.users u ON u.userid = p.userid"
    " ORDER BY p.action, p.userid";
static const char *const sql_plan_user_depts =
    "SELECT dept_id FROM temp.sync_user_depts WHERE userid = ?1"
    " ORDER BY dept_id";
static const char *const sql_dept_plan_each =
    "SELECT p.action, p.dept_id, s.parent_id, s.name, d.name"
    " FROM temp.sync_dept_plan p LEFT JOIN temp.sync_depts s"
    " ON s.dept_id = p.dept_id LEFT JOIN main.departments d"
    " ON d.dept_id = p.dept_id ORDER BY p.action, p.dept_id";

struct job {
	enum sync_api	 api;
	long long	 dept_id;
	long long	 cursor;
	long long	 not_before;	/* monotonic us */
	struct dt_tries	 tries;		/* retries and refresh so far */
	unsigned	 token_gen;	/* token the request carried */
};

/* A FIFO that can also push at the front (a department's next page). */
struct queue {
	struct job	*v;
	size_t		 cap, head, len;
};

/*
 * One request at a time per interval: a token bucket holding a single
 * token, so there are no bursts and any QPS+1 consecutive requests span
 * more than a second.
 */
struct pacer {
	double		 base;		/* us between requests at most */
	double		 interval;	/* us between requests now */
	long long	 next;		/* earliest next start */
};

struct sync_ctx {
	struct db		*db;
	const struct sync_options *opt;
	struct sync_stats	*st;
	struct http_multi	*multi;
	struct dt_policy	 policy;
	struct queue		 q[API__MAX];
	struct pacer		 pace[API__MAX];
	int			 concurrency;
	char			 token[TOKEN_MAX];
	unsigned		 token_gen;
	int			 fatal;
	long long		 t0;		/* monotonic us */
	long long		 last_draw;
	int			 drawn;
	long			 http_requests;	/* through multi */
	long			 calls0;	/* dt_calls_made() at start */
	/* progress counters */
	long long		 depts_known;
	long long		 listsub_done;
	long long		 members_done;	/* depts with every page */
	long long		 pages_done;
	long long		 users_seen;
};

enum da_err
sync_history(struct db *db, struct sync_history *h, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 step;

	memset(h, 0, sizeof(*h));
	if ((st = db_stmt(db, sql_run_last, err)) == NULL)
		return DA_EDB;
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		h->ran = 1;
		h->last_started = sqlite3_column_int64(st, 0);
		snprintf(h->last_outcome, sizeof(h->last_outcome), "%s",
		    db_column_text(st, 1));
	} else if (step != SQLITE_DONE)
		rc = db_error(db, err, "sync_runs");
	sqlite3_reset(st);
	if (rc != DA_OK)
		return rc;
	if ((st = db_stmt(db, sql_run_last_ok, err)) == NULL)
		return DA_EDB;
	if (sqlite3_step(st) == SQLITE_ROW)
		h->last_ok = sqlite3_column_int64(st, 0);
	else
		rc = db_error(db, err, "sync_runs");
	sqlite3_reset(st);
	return rc;
}

const char *
sync_outcome_name(enum sync_outcome outcome)
{
	if (outcome < 0 || outcome >= SYNC__MAX)
		return "unknown";
	return outcome_names[outcome];
}

static long long
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_us(long long us)
{
	struct timespec	 ts;

	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) == -1)
		continue;
}

static void
queue_push(struct queue *q, const struct job *j, int front)
{
	struct job	*v;
	size_t		 i, cap;

	if (q->len == q->cap) {
		cap = q->cap ? q->cap * 2 : 64;
		v = xcalloc(cap, sizeof(*v));
		for (i = 0; i < q->len; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	if (front) {
		q->head = (q->head + q->cap - 1) % q->cap;
		q->v[q->head] = *j;
	} else
		q->v[(q->head + q->len) % q->cap] = *j;
	q->len++;
}

static void
queue_pop(struct queue *q, struct job *out)
{
	*out = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
}

static void
queue_free(struct queue *q)
{
	free(q->v);
	memset(q, 0, sizeof(*q));
}

static void
enqueue(struct sync_ctx *c, enum sync_api api, long long dept_id,
    long long cursor, int front)
{
	struct job	 j;

	memset(&j, 0, sizeof(j));
	j.api = api;
	j.dept_id = dept_id;
	j.cursor = cursor;
	queue_push(&c->q[api], &j, front);
}

static void
pacer_init(struct pacer *p, long long qps)
{
	p->base = 1e6 * RATE_MARGIN / (double)(qps > 0 ? qps : 1);
	p->interval = p->base;
	p->next = 0;
}

static void
pacer_take(struct pacer *p, long long now)
{
	if (p->next < now)
		p->next = now;
	p->next += (long long)p->interval;
}

static void
pacer_slow(struct pacer *p, long long now, long long pause)
{
	if (p->next < now + pause)
		p->next = now + pause;
	p->interval *= SLOWDOWN;
	if (p->interval > 1e6)
		p->interval = 1e6 > p->base ? 1e6 : p->base;
}

static void
pacer_ok(struct pacer *p)
{
	p->interval *= SPEEDUP;
	if (p->interval < p->base)
		p->interval = p->base;
}

/* Run a statement to completion; DA_EDB on failure. */
static enum da_err
step_done(struct db *db, sqlite3_stmt *st, const char *what,
    struct da_error *err)
{
	enum da_err	 rc = DA_OK;

	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, what);
	sqlite3_reset(st);
	return rc;
}

static enum da_err
exec_id(struct db *db, const char *sql, long long id, const char *what,
    struct da_error *err)
{
	sqlite3_stmt	*st;

	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_int64(st, 1, id);
	return step_done(db, st, what, err);
}

/* The department could not be loaded: nobody may leave in this run. */
static enum da_err
dept_failed(struct sync_ctx *c, const struct job *j, const char *why,
    struct da_error *err)
{
	enum da_err	 rc = DA_OK;

	if (j->api == API_DEPT_GET) {
		/* Only the root's name: keep the one we have. */
		log_msg(LOG_WARN, "the root department's name: %s", why);
		goto out;
	}
	if (c->st->failure[0] == '\0')
		snprintf(c->st->failure, sizeof(c->st->failure),
		    "department %lld %s: %s", j->dept_id, apis[j->api].what,
		    why);
	log_msg(LOG_WARN, "department %lld: %s failed: %s", j->dept_id,
	    apis[j->api].what, why);
	if (j->api == API_LISTSUB && j->dept_id == ROOT_DEPT) {
		/* Without the root's children nothing is known. */
		c->fatal = 1;
		rc = DA_ERROR(err, DA_EAPI, "the department tree could not be "
		    "read: %s", why);
		goto out;
	}
	rc = exec_id(c->db, sql_stage_dept_failed, j->dept_id,
	    "failed department", err);
out:
	return rc;
}

static enum da_err
start_job(struct sync_ctx *c, const struct job *j, struct da_error *err)
{
	struct dt_request	 rq;
	struct job		*tag;
	json			*body;
	enum da_err		 rc;

	body = dt_dept_body(apis[j->api].api, j->dept_id, j->cursor);
	dt_request_init(&rq, apis[j->api].api, c->token, body);
	tag = xmalloc(sizeof(*tag));
	*tag = *j;
	tag->token_gen = c->token_gen;
	if ((rc = http_multi_add(c->multi, &rq.http, tag, err)) != DA_OK)
		free(tag);
	else
		c->http_requests++;
	dt_request_free(&rq);
	json_free(body);
	return rc;
}

static enum da_err
stage_user(struct sync_ctx *c, const struct dt_user *u, long long dept_id,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	size_t		 i;

	if ((st = db_stmt(c->db, sql_stage_user, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, u->userid);
	db_bind_text(st, 2, u->unionid);
	db_bind_text(st, 3, u->name);
	db_bind_text(st, 4, u->title);
	db_bind_text(st, 5, u->job_number);
	db_bind_text(st, 6, u->email);
	db_bind_text(st, 7, u->mobile);
	sqlite3_bind_int(st, 8, u->admin ? 1 : 0);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(c->db, err, "staging a user");
	else
		c->users_seen += sqlite3_changes(db_handle(c->db));
	sqlite3_reset(st);
	/* Memberships: what the user record says, and where we found it. */
	for (i = 0; rc == DA_OK && i <= u->ndept; i++) {
		if ((st = db_stmt(c->db, sql_stage_member, err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		db_bind_text(st, 1, u->userid);
		sqlite3_bind_int64(st, 2, i < u->ndept ? u->dept_ids[i] :
		    dept_id);
		rc = step_done(c->db, st, "staging a membership", err);
	}
out:
	return rc;
}

/* A page of members. *why is set when the answer itself is unusable. */
static enum da_err
take_members(struct sync_ctx *c, const struct job *j, json *doc,
    const char **why, struct da_error *err)
{
	struct dt_user	 u;
	json		*result, *list;
	long long	 next = 0;
	size_t		 i, n;
	enum da_err	 rc = DA_OK;
	int		 more = 0;

	memset(&u, 0, sizeof(u));
	if (json_get_object(doc, "result", &result) != JSON_OK ||
	    json_get_array(result, "list", &list) != JSON_OK) {
		*why = "the answer has no result.list";
		goto out;
	}
	if (json_get_bool(result, "has_more", &more) == JSON_OK && more &&
	    (json_get_int(result, "next_cursor", &next) != JSON_OK ||
	    next <= j->cursor)) {
		*why = "has_more without a next_cursor past this page";
		goto out;
	}
	n = json_array_size(list);
	for (i = 0; i < n; i++) {
		if (dt_user_from_json(json_array_item(list, i), &u, NULL) !=
		    DA_OK) {
			*why = "a member without userid";
			goto out;
		}
		rc = stage_user(c, &u, j->dept_id, err);
		dt_user_clear(&u);
		if (rc != DA_OK)
			goto out;
	}
	c->pages_done++;
	if (more)
		enqueue(c, API_USER_LIST, j->dept_id, next, 1);
	else
		c->members_done++;
out:
	dt_user_clear(&u);
	return rc;
}

/*
 * Direct sub-departments. The whole answer is checked before anything is
 * staged or queued, so a bad one leaves no trace but the failure.
 */
static enum da_err
take_children(struct sync_ctx *c, const struct job *j, json *doc,
    const char **why, struct da_error *err)
{
	sqlite3_stmt	*st;
	json		*result, *d;
	long long	 id, parent;
	char		 name[DT_TEXT_MAX];
	size_t		 i, n;
	enum da_err	 rc = DA_OK;
	int		 fresh;

	if (json_get_array(doc, "result", &result) != JSON_OK) {
		*why = "the answer has no result list";
		goto out;
	}
	n = json_array_size(result);
	for (i = 0; i < n; i++) {
		if (json_get_int(json_array_item(result, i), "dept_id", &id) !=
		    JSON_OK) {
			*why = "a department without dept_id";
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		d = json_array_item(result, i);
		json_get_int(d, "dept_id", &id);
		/* Negative ids are education (家校) departments. */
		if (id <= 0 || id == j->dept_id)
			continue;
		if (json_get_int(d, "parent_id", &parent) != JSON_OK)
			parent = j->dept_id;
		if (json_get_text(d, "name", name, sizeof(name)) != JSON_OK)
			name[0] = '\0';
		if ((st = db_stmt(c->db, sql_stage_dept, err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, parent);
		db_bind_text(st, 3, name);
		fresh = 0;
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_error(c->db, err, "staging a department");
		else
			fresh = sqlite3_changes(db_handle(c->db)) == 1;
		sqlite3_reset(st);
		if (rc != DA_OK)
			goto out;
		/* Seen before (under a second parent?): never fetched twice. */
		if (!fresh)
			continue;
		c->depts_known++;
		enqueue(c, API_LISTSUB, id, 0, 0);
		enqueue(c, API_USER_LIST, id, 0, 0);
	}
	c->listsub_done++;
out:
	return rc;
}

static enum da_err
take_root(struct sync_ctx *c, json *doc, struct da_error *err)
{
	sqlite3_stmt	*st;
	json		*result;
	char		 name[DT_TEXT_MAX];
	enum da_err	 rc = DA_OK;

	/* Without a name in the answer the stored one stays. */
	if (json_get_object(doc, "result", &result) != JSON_OK ||
	    json_get_text(result, "name", name, sizeof(name)) != JSON_OK)
		goto out;
	if ((st = db_stmt(c->db, sql_stage_root_name, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, ROOT_DEPT);
	db_bind_text(st, 2, name);
	rc = step_done(c->db, st, "root name", err);
out:
	return rc;
}

/* A good answer: stage it in one (temp-only) transaction. */
static enum da_err
take_answer(struct sync_ctx *c, const struct job *j, json *doc,
    struct da_error *err)
{
	const char	*why = NULL;
	enum da_err	 rc;

	if ((rc = db_begin(c->db, err)) != DA_OK)
		goto out;
	switch (j->api) {
	case API_DEPT_GET:
		rc = take_root(c, doc, err);
		break;
	case API_LISTSUB:
		rc = take_children(c, j, doc, &why, err);
		break;
	case API_USER_LIST:
		rc = take_members(c, j, doc, &why, err);
		break;
	default:
		abort();
	}
	if (rc == DA_OK && why == NULL) {
		rc = db_commit(c->db, err);
		goto out;
	}
	db_rollback(c->db);
	if (rc == DA_OK)
		rc = dept_failed(c, j, why, err);
out:
	return rc;
}

static void
retry_later(struct sync_ctx *c, struct job *j, long long delay)
{
	j->not_before = now_us() + delay;
	c->st->retries++;
	queue_push(&c->q[j->api], j, 0);
}

/* The corp token was refused: fetch a new one (once per token). */
static enum da_err
token_refused(struct sync_ctx *c, struct job *j, const struct da_error *why,
    struct da_error *err)
{
	enum da_err	 rc = DA_OK;

	/* Only the first refusal of this token fetches a new one. */
	if (j->token_gen == c->token_gen) {
		log_msg(LOG_WARN, "corp token refused (%s); fetching a new one",
		    why->msg);
		if ((rc = dt_token_refresh(c->db, TOKEN_CORP, c->token,
		    sizeof(c->token), err)) != DA_OK) {
			c->fatal = 1;
			goto out;
		}
		c->token_gen++;
		c->st->token_refreshes++;
	}
	retry_later(c, j, 0);
out:
	return rc;
}

/* Ask again after the classifier's delay; rate limits slow the API. */
static void
retry(struct sync_ctx *c, struct job *j, const struct dt_verdict *v)
{
	long long	 pause = (long long)v->delay_ms * 1000;

	if (v->why.code == DA_ERATE) {
		c->st->rate_limited++;
		log_msg(LOG_INFO, "%s for department %lld: %s; slowing down",
		    apis[j->api].what, j->dept_id, v->why.msg);
		pacer_slow(&c->pace[j->api], now_us(), pause);
	} else
		log_msg(LOG_INFO, "%s for department %lld: %s; retrying",
		    apis[j->api].what, j->dept_id, v->why.msg);
	retry_later(c, j, pause);
}

/* The classifier gave up on the request: the department, or the sync. */
static enum da_err
give_up(struct sync_ctx *c, struct job *j, const struct dt_verdict *v,
    struct da_error *err)
{
	const struct da_error	*why = &v->why;
	enum da_err		 rc;

	switch (why->code) {
	case DA_ETOKEN:
		c->fatal = 1;
		rc = DA_ERROR(err, DA_ETOKEN, "the corp token is refused even "
		    "after a refresh: %s", why->msg);
		break;
	case DA_ERATE:
		if (v->used_up) {
			rc = dept_failed(c, j, why->msg, err);
			break;
		}
		/* An IP ban or calls disabled: hammering on makes it worse. */
		c->fatal = 1;
		rc = DA_ERROR(err, DA_ERATE, "DingTalk stopped this sync: %s",
		    why->msg);
		break;
	case DA_ECREDENTIALS:
	case DA_ECONFIG:
		c->fatal = 1;
		rc = DA_ERROR(err, why->code, "%s", why->msg);
		break;
	default:
		/* Transport failures past the retries, 60003 (gone
		 * meanwhile), 60011 (no permission), ... */
		rc = dept_failed(c, j, why->msg, err);
		break;
	}
	return rc;
}

/* Judge one finished request and act on it. */
static enum da_err
finished(struct sync_ctx *c, struct http_multi_result *res,
    struct da_error *err)
{
	struct job		*j = res->tag;
	struct dt_verdict	 v;
	json			*doc = NULL;
	enum da_err		 rc = DA_OK;

	dt_classify(DT_TOPAPI, res->rc, &res->err, &res->resp, &c->policy,
	    &j->tries, &doc, &v);
	switch (v.action) {
	case DT_ACT_OK:
		pacer_ok(&c->pace[j->api]);
		rc = take_answer(c, j, doc, err);
		break;
	case DT_ACT_RETRY:
		retry(c, j, &v);	/* a copy is queued */
		break;
	case DT_ACT_REFRESH:
		rc = token_refused(c, j, &v.why, err);
		break;
	case DT_ACT_FAIL:
		rc = give_up(c, j, &v, err);
		break;
	}
	json_free(doc);
	free(j);
	if (rc != DA_OK)
		c->fatal = 1;
	return rc;
}

static void
format_eta(char *buf, size_t size, double seconds)
{
	long	 s;

	if (seconds < 0 || seconds > 359999) {
		snprintf(buf, size, "--:--");
		return;
	}
	s = (long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60,
		    s % 60);
	else
		snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

/* "sync: departments 12/40, users 1234, 18.2 req/s, ETA 0:07" */
static void
progress(struct sync_ctx *c, int last)
{
	long long	 now = now_us();
	double		 elapsed, rate, pages, left;
	char		 eta[32];

	if (!c->opt->progress)
		return;
	if (last) {
		if (c->drawn)
			fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	if (now - c->last_draw < PROGRESS_EVERY_US)
		return;
	c->last_draw = now;
	elapsed = (double)(now - c->t0) / 1e6;
	rate = elapsed > 0 ? (double)c->http_requests / elapsed : 0;
	/* Requests still to make for the departments known so far. */
	pages = c->members_done > 0 ? (double)c->pages_done /
	    (double)c->members_done : 1.0;
	left = (double)(c->depts_known - c->listsub_done) +
	    (double)(c->depts_known - c->members_done) * pages;
	format_eta(eta, sizeof(eta), rate > 0 ? left / rate : -1);
	fprintf(stderr, "\rsync: departments %lld/%lld, users %lld, "
	    "%.1f req/s, ETA %s\033[K", c->members_done, c->depts_known,
	    c->users_seen, rate, eta);
	fflush(stderr);
	c->drawn = 1;
}

/* Fetch everything into the temp tables. */
static enum da_err
fetch(struct sync_ctx *c, struct da_error *err)
{
	struct http_multi_result res;
	struct job		 j;
	long long		 now, wake, ready;
	enum da_err		 rc = DA_OK;
	int			 a, started, got, idle;
	long			 wait;

	c->depts_known = 1;
	enqueue(c, API_DEPT_GET, ROOT_DEPT, 0, 0);
	enqueue(c, API_LISTSUB, ROOT_DEPT, 0, 0);
	enqueue(c, API_USER_LIST, ROOT_DEPT, 0, 0);
	for (;;) {
		/* Start what the pacers and the pool allow. */
		now = now_us();
		wake = now + (long long)POLL_MAX_MS * 1000;
		do {
			started = 0;
			for (a = 0; a < API__MAX; a++) {
				if (c->q[a].len == 0 ||
				    http_multi_in_flight(c->multi) >=
				    c->concurrency)
					continue;
				ready = c->q[a].v[c->q[a].head].not_before;
				if (ready < c->pace[a].next)
					ready = c->pace[a].next;
				if (ready > now) {
					if (ready < wake)
						wake = ready;
					continue;
				}
				queue_pop(&c->q[a], &j);
				if ((rc = start_job(c, &j, err)) != DA_OK)
					goto out;
				pacer_take(&c->pace[a], now);
				started = 1;
			}
		} while (started);
		idle = http_multi_in_flight(c->multi) == 0;
		if (idle) {
			for (a = 0; a < API__MAX && c->q[a].len == 0; a++)
				continue;
			if (a == API__MAX)
				break;	/* nothing queued or running */
		}
		wait = (long)((wake - now + 999) / 1000);
		if (wait < 0)
			wait = 0;
		if (idle)
			sleep_us((long long)wait * 1000);
		else {
			got = http_multi_next(c->multi, wait, &res, err);
			if (got < 0) {
				rc = DA_EHTTP;	/* libcurl itself failed */
				goto out;
			}
			if (got == 1) {
				rc = finished(c, &res, err);
				http_multi_result_free(&res);
				if (rc != DA_OK || c->fatal)
					goto out;
			}
		}
		progress(c, 0);
	}
out:
	progress(c, 1);
	if (rc == DA_OK && c->fatal)
		rc = DA_ERROR(err, DA_EAPI, "the sync stopped");
	return rc;
}

/* Requests so far: the multi handle's and the token fetches. */
static void
count_requests(struct sync_ctx *c)
{
	c->st->requests = c->http_requests + (dt_calls_made() - c->calls0);
}

static enum da_err
run_start(struct db *db, struct sync_stats *st, struct da_error *err)
{
	sqlite3_stmt	*s;
	enum da_err	 rc;

	if ((s = db_stmt(db, sql_run_start, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	sqlite3_bind_int64(s, 1, db_now());
	if ((rc = step_done(db, s, "sync_runs", err)) != DA_OK)
		goto out;
	st->run_id = sqlite3_last_insert_rowid(db_handle(db));
	rc = exec_id(db, sql_run_orphans, st->run_id, "sync_runs", err);
out:
	return rc;
}

static enum da_err
run_finish(struct db *db, const struct sync_stats *st, const char *error,
    struct da_error *err)
{
	sqlite3_stmt	*s;
	enum da_err	 rc = DA_OK;

	if (st->run_id == 0)
		goto out;
	if ((s = db_stmt(db, sql_run_finish, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	sqlite3_bind_int64(s, 1, st->run_id);
	sqlite3_bind_int64(s, 2, db_now());
	db_bind_text(s, 3, sync_outcome_name(st->outcome));
	sqlite3_bind_int64(s, 4, st->departments);
	sqlite3_bind_int64(s, 5, st->users);
	sqlite3_bind_int64(s, 6, st->added);
	sqlite3_bind_int64(s, 7, st->updated);
	sqlite3_bind_int64(s, 8, st->outcome == SYNC_REFUSED ||
	    st->outcome == SYNC_DRY_RUN ? 0 : st->deactivated);
	sqlite3_bind_int64(s, 9, st->reactivated);
	sqlite3_bind_int64(s, 10, st->requests);
	db_bind_text(s, 11, error != NULL && *error != '\0' ? error : NULL);
	rc = step_done(db, s, "sync_runs", err);
out:
	return rc;
}

static enum da_err
count_staged(struct sync_ctx *c, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 n = 0;

	if ((st = db_stmt(c->db, sql_stage_counts, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		c->st->departments = sqlite3_column_int64(st, 0);
		c->st->users = sqlite3_column_int64(st, 1);
		c->st->failed_departments = sqlite3_column_int64(st, 2);
	} else
		rc = db_error(c->db, err, "staged counts");
	sqlite3_reset(st);
	if (rc != DA_OK || c->st->failed_departments == 0)
		goto out;
	if ((st = db_stmt(c->db, sql_stage_failed_list, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	sqlite3_bind_int(st, 1, SYNC_FAILED_LISTED);
	while (sqlite3_step(st) == SQLITE_ROW && n < SYNC_FAILED_LISTED)
		c->st->failed[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
out:
	return rc;
}

static enum da_err
exec_plain(struct db *db, const char *sql, const char *what,
    struct da_error *err)
{
	sqlite3_stmt	*st;

	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	return step_done(db, st, what, err);
}

/* Compare the copy with the directory into temp.sync_plan/_dept_plan. */
static enum da_err
make_plan(struct sync_ctx *c, int complete, struct da_error *err)
{
	struct sync_stats	*s = c->st;
	sqlite3_stmt		*st;
	enum da_err		 rc = DA_OK;
	long long		 n;
	int			 i, step = SQLITE_DONE;
	const char		*counts[2] = { sql_plan_counts,
				    sql_dept_plan_counts };

	if ((st = db_stmt(c->db, sql_active_count, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		s->active_before = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if ((rc = exec_plain(c->db, sql_plan_users, "plan", err)) != DA_OK ||
	    (rc = exec_plain(c->db, sql_plan_depts, "plan", err)) != DA_OK)
		goto out;
	/* Leavers and removals only when the whole directory was seen. */
	if (complete &&
	    ((rc = exec_plain(c->db, sql_plan_leavers, "plan", err)) !=
	    DA_OK || (rc = exec_plain(c->db, sql_plan_dept_removals, "plan",
	    err)) != DA_OK))
		goto out;
	for (i = 0; i < 2 && step == SQLITE_DONE; i++) {
		if ((st = db_stmt(c->db, counts[i], err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			n = sqlite3_column_int64(st, 1);
			switch (sqlite3_column_int(st, 0) + 10 * i) {
			case PLAN_ADD:
				s->added = n;
				break;
			case PLAN_UPDATE:
				s->updated = n;
				break;
			case PLAN_REACTIVATE:
				s->reactivated = n;
				break;
			case PLAN_DEACTIVATE:
				s->deactivated = n;
				break;
			case 10 + PLAN_ADD:
				s->depts_added = n;
				break;
			case 10 + PLAN_UPDATE:
				s->depts_updated = n;
				break;
			case 10 + PLAN_REMOVE:
				s->depts_removed = n;
				break;
			}
		}
		sqlite3_reset(st);
	}
	if (step != SQLITE_DONE)
		rc = db_error(c->db, err, "plan counts");
out:
	return rc;
}

static const char *
action_word(int action)
{
	switch (action) {
	case PLAN_ADD:
		return "add";
	case PLAN_UPDATE:
		return "update";
	case PLAN_REACTIVATE:
		return "reactivate";
	case PLAN_DEACTIVATE:
		return "deactivate";
	case PLAN_REMOVE:
		return "remove";
	default:
		return "?";
	}
}

/* The staged departments of userid into u->dept_ids. */
static enum da_err
staged_depts(struct db *db, struct dt_user *u, struct da_error *err)
{
	sqlite3_stmt	*st;
	size_t		 cap = 0;
	enum da_err	 rc = DA_OK;
	int		 step;

	if ((st = db_stmt(db, sql_plan_user_depts, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, u->userid);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (u->ndept == cap) {
			cap = cap ? cap * 2 : 4;
			u->dept_ids = xrealloc(u->dept_ids,
			    cap * sizeof(*u->dept_ids));
		}
		u->dept_ids[u->ndept++] = sqlite3_column_int64(st, 0);
	}
	if (step != SQLITE_DONE)
		rc = db_error(db, err, "staged memberships");
	sqlite3_reset(st);
out:
	return rc;
}

static void
text_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	snprintf(dst, size, "%s", db_column_text(st, col));
}

/*
 * The plan's departments, added and changed ones first: print them (dry
 * run) or write them. Removals wait for remove_depts(), after the users.
 * Plans are sorted before their first row comes back, so writing to the
 * main tables meanwhile does not disturb a walk.
 */
static enum da_err
walk_depts(struct sync_ctx *c, int apply, struct da_error *err)
{
	FILE		*out = c->opt->plan;
	sqlite3_stmt	*st;
	struct dt_dept	 d;
	enum da_err	 rc = DA_OK;
	int		 action, step;

	if ((st = db_stmt(c->db, sql_dept_plan_each, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	while (rc == DA_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		action = sqlite3_column_int(st, 0);
		memset(&d, 0, sizeof(d));
		d.dept_id = sqlite3_column_int64(st, 1);
		d.parent_id = sqlite3_column_int64(st, 2);
		text_col(d.name, sizeof(d.name), st, action == PLAN_REMOVE ?
		    4 : 3);
		if (!apply) {
			if (out != NULL)
				fprintf(out, "%s department %lld %s\n",
				    action_word(action), d.dept_id, d.name);
		} else if (action != PLAN_REMOVE)
			rc = directory_upsert_dept(c->db, &d, err);
	}
	if (rc == DA_OK && step != SQLITE_DONE)
		rc = db_error(c->db, err, "department plan");
	sqlite3_reset(st);
out:
	return rc;
}

static enum da_err
remove_depts(struct sync_ctx *c, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 step;

	if ((st = db_stmt(c->db, sql_dept_plan_each, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	while (rc == DA_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_int(st, 0) == PLAN_REMOVE)
			rc = directory_remove_dept(c->db,
			    sqlite3_column_int64(st, 1), err);
	if (rc == DA_OK && step != SQLITE_DONE)
		rc = db_error(c->db, err, "department removals");
	sqlite3_reset(st);
out:
	return rc;
}

/* The plan's users: print them (dry run) or apply through directory.h. */
static enum da_err
walk_users(struct sync_ctx *c, int apply, struct da_error *err)
{
	FILE		*out = c->opt->plan;
	sqlite3_stmt	*st;
	struct dt_user	 u;
	enum da_err	 rc = DA_OK;
	int		 action, step, ended;

	memset(&u, 0, sizeof(u));
	if ((st = db_stmt(c->db, sql_plan_each, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	while (rc == DA_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		action = sqlite3_column_int(st, 0);
		dt_user_clear(&u);
		text_col(u.userid, sizeof(u.userid), st, 1);
		text_col(u.unionid, sizeof(u.unionid), st, 2);
		/* A leaver has no staged row: show the stored name. */
		text_col(u.name, sizeof(u.name), st, action ==
		    PLAN_DEACTIVATE ? 9 : 3);
		text_col(u.title, sizeof(u.title), st, 4);
		text_col(u.job_number, sizeof(u.job_number), st, 5);
		text_col(u.email, sizeof(u.email), st, 6);
		text_col(u.mobile, sizeof(u.mobile), st, 7);
		u.admin = sqlite3_column_int(st, 8);
		u.active = 1;
		if (!apply) {
			if (out != NULL)
				fprintf(out, "%s user %s %s\n",
				    action_word(action), u.userid, u.name);
		} else if (action == PLAN_DEACTIVATE) {
			ended = 0;
			rc = directory_deactivate_user(c->db, u.userid, &ended,
			    err);
			c->st->sessions_ended += ended;
		} else if ((rc = staged_depts(c->db, &u, err)) == DA_OK)
			rc = directory_upsert_user(c->db, &u, "sync", NULL,
			    err);
	}
	if (rc == DA_OK && step != SQLITE_DONE)
		rc = db_error(c->db, err, "user plan");
	sqlite3_reset(st);
out:
	dt_user_clear(&u);
	return rc;
}

/* Decide and, unless refused or dry, replace the directory at once. */
static enum da_err
conclude(struct sync_ctx *c, struct da_error *err)
{
	struct sync_stats	*s = c->st;
	enum da_err		 rc;
	int			 complete, refuse, in_tx = 0;
	long long		 limit = config_int(CFG_SYNC_MAX_DEACTIVATE);

	if ((rc = count_staged(c, err)) != DA_OK)
		goto out;
	complete = s->failed_departments == 0;
	rc = c->opt->dry_run ? db_begin(c->db, err) :
	    db_begin_immediate(c->db, err);
	if (rc != DA_OK)
		goto out;
	in_tx = 1;
	if ((rc = make_plan(c, complete, err)) != DA_OK)
		goto out;
	refuse = complete && !c->opt->force && s->deactivated > 0 &&
	    s->deactivated * 100 > limit * s->active_before;
	if (c->opt->dry_run) {
		if ((rc = walk_depts(c, 0, err)) == DA_OK)
			rc = walk_users(c, 0, err);
		s->outcome = SYNC_DRY_RUN;
		goto out;
	}
	if (refuse) {
		s->outcome = SYNC_REFUSED;
		snprintf(s->failure, sizeof(s->failure), "%lld of %lld active "
		    "users would leave (%.1f%%, more than "
		    "DINGAUTH_SYNC_MAX_DEACTIVATE=%lld%%)", s->deactivated,
		    s->active_before, s->active_before ? 100.0 *
		    (double)s->deactivated / (double)s->active_before : 100.0,
		    limit);
		goto out;
	}
	s->outcome = complete ? SYNC_OK : SYNC_PARTIAL;
	if ((rc = walk_depts(c, 1, err)) != DA_OK ||
	    (rc = walk_users(c, 1, err)) != DA_OK ||
	    (rc = remove_depts(c, err)) != DA_OK)
		goto out;
	count_requests(c);
	/* The run's record commits with the directory it describes. */
	if ((rc = run_finish(c->db, s, s->failure, err)) == DA_OK &&
	    (rc = db_commit(c->db, err)) == DA_OK)
		in_tx = 0;
out:
	/* Dry runs, refusals and failures change nothing but their record. */
	if (in_tx) {
		db_rollback(c->db);
		count_requests(c);
		if (rc == DA_OK)
			rc = run_finish(c->db, s, s->failure, err);
	}
	return rc;
}

/* sync_run with err never NULL: the run's record names the failure. */
static enum da_err
run(struct db *db, const struct sync_options *opt, struct sync_stats *st,
    struct da_error *err)
{
	struct sync_ctx	 c;
	struct da_error	 e2 = { 0 };
	enum da_err	 rc;
	int		 a;

	memset(st, 0, sizeof(*st));
	memset(&c, 0, sizeof(c));
	c.db = db;
	c.opt = opt;
	c.st = st;
	c.t0 = now_us();
	c.calls0 = dt_calls_made();
	st->outcome = SYNC_FAILED;
	c.concurrency = (int)config_int(CFG_SYNC_CONCURRENCY);
	c.policy.busy_retries = RATE_RETRIES;
	c.policy.fail_retries = (int)config_int(CFG_HTTP_RETRIES);
	c.policy.max_wait_ms = WAIT_MAX_MS;
	for (a = 0; a < API__MAX; a++)
		pacer_init(&c.pace[a], config_int(CFG_SYNC_QPS));

	if ((rc = run_start(db, st, err)) != DA_OK)
		goto out;
	if ((rc = db_exec(db, sql_stage_create, err)) != DA_OK ||
	    (rc = exec_id(db, sql_stage_root, ROOT_DEPT, "staging", err)) !=
	    DA_OK)
		goto out;
	if ((rc = dt_corp_token(db, c.token, sizeof(c.token), NULL, err)) !=
	    DA_OK)
		goto out;
	if ((rc = http_multi_new(c.concurrency, &c.multi, err)) != DA_OK)
		goto out;
	rc = fetch(&c, err);
	st->fetch_seconds = (double)(now_us() - c.t0) / 1e6;
	if (rc != DA_OK)
		goto out;
	http_multi_free(c.multi);
	c.multi = NULL;
	rc = conclude(&c, err);
out:
	http_multi_free(c.multi);
	for (a = 0; a < API__MAX; a++)
		queue_free(&c.q[a]);
	crypto_cleanse(c.token, sizeof(c.token));
	count_requests(&c);
	st->seconds = (double)(now_us() - c.t0) / 1e6;
	if (rc != DA_OK) {
		db_rollback(db);
		st->outcome = SYNC_FAILED;
		run_finish(db, st, err->msg, &e2);
	}
	db_exec(db, sql_stage_drop, &e2);
	return rc;
}

enum da_err
sync_run(struct db *db, const struct sync_options *opt,
    struct sync_stats *st, struct da_error *err)
{
	struct da_error	 e;
	enum da_err	 rc;

	da_error_clear(&e);
	if ((rc = run(db, opt, st, &e)) != DA_OK && err != NULL)
		*err = e;
	return rc;
}
