#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "http.h"
#include "http_multi.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "mono.h"
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

/* The run's record (table sync_runs); the directory's SQL is directory.c's. */
enum stmt {
	STMT_RUN_START,
	STMT_RUN_ORPHANS,
	STMT_RUN_FINISH,
	STMT_RUN_LAST,
	STMT_RUN_LAST_OK,
	STMT__MAX
};

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_RUN_START] = { "sync_runs",
	    "INSERT INTO sync_runs (started_at, outcome) VALUES (?1, 'running')"
	    " RETURNING id" },
	/* Runs that never finished were killed (or are still going). */
	[STMT_RUN_ORPHANS] = { "sync_runs",
	    "UPDATE sync_runs SET outcome = 'interrupted',"
	    " error = 'the run ended before it finished (killed?)'"
	    " WHERE outcome = 'running' AND id < ?1" },
	[STMT_RUN_FINISH] = { "sync_runs",
	    "UPDATE sync_runs SET finished_at = ?2, outcome = ?3,"
	    " departments = ?4, users = ?5, added = ?6, updated = ?7,"
	    " deactivated = ?8, reactivated = ?9, requests = ?10, error = ?11"
	    " WHERE id = ?1" },
	/* ?1: the dry run's outcome name. */
	[STMT_RUN_LAST] = { "sync_runs",
	    "SELECT started_at, outcome FROM sync_runs"
	    " WHERE outcome <> ?1 ORDER BY id DESC LIMIT 1" },
	/* ?1: the ok outcome's name. */
	[STMT_RUN_LAST_OK] = { "sync_runs",
	    "SELECT coalesce(max(finished_at), 0) FROM sync_runs"
	    " WHERE outcome = ?1" },
};

struct job {
	enum sync_api	 api;
	long long	 dept_id;
	long long	 cursor;
	long long	 not_before;	/* monotonic us */
	struct dt_tries	 tries;		/* retries and refresh so far */
	unsigned	 token_gen;	/* token the request carried */
	int		 in_flight;	/* a slot taken by a transfer */
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
	/*
	 * The jobs of the transfers in flight, one slot each: a run that
	 * stops with transfers still running leaks none of them.
	 */
	struct job		*slots;
	char			 token[TOKEN_MAX];
	unsigned		 token_gen;
	int			 fatal;
	long long		 t0;		/* monotonic us */
	long long		 last_draw;
	int			 drawn;
	long			 http_requests;	/* through multi */
	long			 calls0;	/* dt_calls_made() at start */
	long long		 events0;	/* newest event at the start */
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
	struct db_rows	 r;
	enum da_err	 rc;

	memset(h, 0, sizeof(*h));
	db_query(db, &r, &stmts[STMT_RUN_LAST],
	    DB_ARGS(DB_TEXT(outcome_names[SYNC_DRY_RUN])), err);
	if ((h->ran = db_next(&r) == 1)) {
		h->last_started = db_int(&r, 0);
		snprintf(h->last_outcome, sizeof(h->last_outcome), "%s",
		    db_text(&r, 1));
	}
	if ((rc = db_done(&r)) != DA_OK)
		return rc;
	db_query(db, &r, &stmts[STMT_RUN_LAST_OK],
	    DB_ARGS(DB_TEXT(outcome_names[SYNC_OK])), err);
	if (db_next(&r) == 1)
		h->last_ok = db_int(&r, 0);
	return db_done(&r);
}

const char *
sync_outcome_name(enum sync_outcome outcome)
{
	if (outcome < 0 || outcome >= SYNC__MAX)
		return "unknown";
	return outcome_names[outcome];
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
	rc = directory_stage_dept_failed(c->db, j->dept_id, err);
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
	int			 i;

	body = dt_dept_body(apis[j->api].api, j->dept_id, j->cursor);
	dt_request_init(&rq, apis[j->api].api, c->token, body);
	for (i = 0; i < c->concurrency && c->slots[i].in_flight; i++)
		continue;
	if (i == c->concurrency) {
		rc = DA_ERROR(err, DA_EBUSY, "no free transfer slot");
		goto out;
	}
	tag = &c->slots[i];
	*tag = *j;
	tag->token_gen = c->token_gen;
	tag->in_flight = 0;
	if ((rc = http_multi_add(c->multi, &rq.http, tag, err)) == DA_OK) {
		tag->in_flight = 1;
		c->http_requests++;
	}
out:
	dt_request_free(&rq);
	json_free(body);
	return rc;
}

static enum da_err
stage_user(struct sync_ctx *c, const struct dir_user *u, long long dept_id,
    struct da_error *err)
{
	enum da_err	 rc;
	int		 fresh;

	rc = directory_stage_user(c->db, u, dept_id, &fresh, err);
	c->users_seen += fresh;
	return rc;
}

/* A page of members. *why is set when the answer itself is unusable. */
static enum da_err
take_members(struct sync_ctx *c, const struct job *j, json *doc,
    const char **why, struct da_error *err)
{
	struct dir_user	 u;
	struct da_error	 bad;
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
		if (dt_user_from_json(json_array_item(list, i), &u, &bad) !=
		    DA_OK) {
			/* No userid, or one too long to store uncut. */
			*why = bad.code == DA_ETOOLONG ? "a member with a value "
			    "longer than dingauth stores" :
			    "a member without userid";
			goto out;
		}
		rc = stage_user(c, &u, j->dept_id, err);
		dir_user_clear(&u);
		if (rc != DA_OK)
			goto out;
	}
	c->pages_done++;
	if (more)
		enqueue(c, API_USER_LIST, j->dept_id, next, 1);
	else
		c->members_done++;
out:
	dir_user_clear(&u);
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
	json		*result, *d;
	long long	 id, parent;
	char		 name[DIR_TEXT_MAX];
	size_t		 i, n;
	enum da_err	 rc = DA_OK;
	int		 fresh;

	if (json_get_array(doc, "result", &result) != JSON_OK) {
		*why = "the answer has no result list";
		goto out;
	}
	n = json_array_size(result);
	for (i = 0; i < n; i++) {
		d = json_array_item(result, i);
		if (json_get_int(d, "dept_id", &id) != JSON_OK) {
			*why = "a department without dept_id";
			goto out;
		}
		if (json_get_text(d, "name", name, sizeof(name)) ==
		    JSON_TOO_LONG) {
			*why = "a department name longer than dingauth stores";
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
		if ((rc = directory_stage_dept(c->db, id, parent, name, &fresh,
		    err)) != DA_OK)
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
	json		*result;
	char		 name[DIR_TEXT_MAX];
	enum da_err	 rc = DA_OK;

	/* Without a usable name in the answer the stored one stays. */
	if (json_get_object(doc, "result", &result) != JSON_OK ||
	    json_get_text(result, "name", name, sizeof(name)) != JSON_OK)
		goto out;
	rc = directory_stage_root_name(c->db, ROOT_DEPT, name, err);
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
	j->not_before = mono_us() + delay;
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
		pacer_slow(&c->pace[j->api], mono_us(), pause);
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
	j->in_flight = 0;	/* the slot is free again */
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
	long long	 now = mono_us();
	double		 elapsed, rate, pages, left;
	char		 eta[32];
	FILE		*to = c->opt->progress;

	if (to == NULL)
		return;
	if (last) {
		if (c->drawn)
			fputs("\r\033[K", to);
		fflush(to);
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
	fprintf(to, "\rsync: departments %lld/%lld, users %lld, "
	    "%.1f req/s, ETA %s\033[K", c->members_done, c->depts_known,
	    c->users_seen, rate, eta);
	fflush(to);
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
		now = mono_us();
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
	struct db_rows	 r;
	enum da_err	 rc;

	db_query(db, &r, &stmts[STMT_RUN_START], DB_ARGS(DB_INT(db_now())),
	    err);
	if (db_next(&r) == 1) {
		st->run_id = db_int(&r, 0);
		db_next(&r);	/* the INSERT to its end */
	}
	if ((rc = db_done(&r)) != DA_OK)
		return rc;
	return db_run(db, &stmts[STMT_RUN_ORPHANS], DB_ARGS(DB_INT(st->run_id)),
	    err);
}

/*
 * The run's record and, but for a dry run, its audit row (audit.h) in
 * the same transaction: with the directory it describes, or alone.
 */
static enum da_err
run_finish(struct db *db, const struct sync_stats *st, const char *error,
    struct da_error *err)
{
	struct audit_entry	 a;
	char			 source[32], counts[256],
				 labels[METRICS_LABELS_MAX];
	enum da_err		 rc;

	if (st->run_id == 0)
		return DA_OK;
	if ((rc = db_run(db, &stmts[STMT_RUN_FINISH],
	    DB_ARGS(DB_INT(st->run_id),
	    DB_INT(db_now()), DB_TEXT(sync_outcome_name(st->outcome)),
	    DB_INT(st->departments), DB_INT(st->users), DB_INT(st->added),
	    DB_INT(st->updated), DB_INT(st->outcome == SYNC_REFUSED ||
	    st->outcome == SYNC_DRY_RUN ? 0 : st->deactivated),
	    DB_INT(st->reactivated), DB_INT(st->requests),
	    DB_TEXT(error != NULL && *error != '\0' ? error : NULL)), err)) !=
	    DA_OK || st->outcome == SYNC_DRY_RUN)
		return rc;
	memset(&a, 0, sizeof(a));
	snprintf(source, sizeof(source), "sync %lld", st->run_id);
	snprintf(counts, sizeof(counts), "departments=%lld users=%lld "
	    "added=%lld updated=%lld deactivated=%lld reactivated=%lld",
	    st->departments, st->users, st->added, st->updated,
	    st->outcome == SYNC_REFUSED ? 0 : st->deactivated,
	    st->reactivated);
	snprintf(labels, sizeof(labels), "outcome=\"%s\"",
	    sync_outcome_name(st->outcome));
	metrics_count(METRICS_SYNCS, labels);
	a.event = AUDIT_SYNC;
	a.outcome = sync_outcome_name(st->outcome);
	a.reason = error;
	a.source = source;
	a.detail = counts;
	if ((rc = audit_record(db, &a, err)) == DA_OK)
		audit_log(st->outcome == SYNC_OK ? LOG_INFO : LOG_WARN, &a);
	return rc;
}

static enum da_err
count_staged(struct sync_ctx *c, struct da_error *err)
{
	struct dir_stage_counts	 n;
	enum da_err		 rc;

	rc = directory_stage_counts(c->db, &n, c->st->failed,
	    SYNC_FAILED_LISTED, err);
	c->st->departments = n.departments;
	c->st->users = n.users;
	c->st->failed_departments = n.failed;
	return rc;
}

/*
 * An event stored while the run fetched (a leave, a hire, a department
 * made or removed) is newer than the copy: its users and departments
 * stay as the event left them (docs/architecture.md, the sync).
 */
static enum da_err
hold_event(const struct event *ev, void *arg, struct da_error *err)
{
	struct sync_ctx	*c = arg;
	enum da_err	 rc = DA_OK;
	size_t		 i;

	for (i = 0; rc == DA_OK && i < ev->nuser; i++)
		rc = directory_stage_hold_user(c->db, ev->userids[i], err);
	for (i = 0; rc == DA_OK && i < ev->ndept; i++)
		rc = directory_stage_hold_dept(c->db, ev->dept_ids[i], err);
	return rc;
}

/* Compare the copy with the directory: the plan and its counts. */
static enum da_err
make_plan(struct sync_ctx *c, int complete, struct da_error *err)
{
	struct sync_stats	*s = c->st;
	struct dir_plan_counts	 n;
	enum da_err		 rc;

	if ((rc = events_each_since(c->db, c->events0, hold_event, c,
	    err)) != DA_OK)
		return rc;
	rc = directory_plan(c->db, complete, &n, err);
	s->active_before = n.active_before;
	s->added = n.users[DIR_ADD];
	s->updated = n.users[DIR_UPDATE];
	s->reactivated = n.users[DIR_REACTIVATE];
	s->deactivated = n.users[DIR_DEACTIVATE];
	s->depts_added = n.depts[DIR_ADD];
	s->depts_updated = n.depts[DIR_UPDATE];
	s->depts_removed = n.depts[DIR_REMOVE];
	return rc;
}

/* A dry run: a line per change of the plan. */
static enum da_err
print_dept(enum dir_action action, const struct dir_dept *d, void *arg,
    struct da_error *err)
{
	struct sync_ctx	*c = arg;

	if (c->opt->plan != NULL)
		fprintf(c->opt->plan, "%s department %lld %s\n",
		    directory_action_name(action), d->dept_id, d->name);
	return DA_OK;
}

static enum da_err
print_user(enum dir_action action, const struct dir_user *u, void *arg,
    struct da_error *err)
{
	struct sync_ctx	*c = arg;

	if (c->opt->plan != NULL)
		fprintf(c->opt->plan, "%s user %s %s\n",
		    directory_action_name(action), u->userid, u->name);
	return DA_OK;
}

/*
 * Applying the plan: departments added and changed first, then the
 * users, then the departments that are gone (their members have moved).
 */
static enum da_err
apply_dept(enum dir_action action, const struct dir_dept *d, void *arg,
    struct da_error *err)
{
	struct sync_ctx	*c = arg;

	if (action == DIR_REMOVE)
		return DA_OK;
	return directory_upsert_dept(c->db, d, err);
}

static enum da_err
apply_user(enum dir_action action, const struct dir_user *u, void *arg,
    struct da_error *err)
{
	struct sync_ctx	*c = arg;
	enum da_err	 rc;
	int		 ended = 0;
	char		 source[32];

	if (action != DIR_DEACTIVATE)
		return directory_upsert_user(c->db, u, "sync", NULL, err);
	snprintf(source, sizeof(source), "sync %lld", c->st->run_id);
	rc = directory_offboard_user(c->db, u->userid, source, &ended, err);
	c->st->sessions_ended += ended;
	return rc;
}

static enum da_err
remove_dept(enum dir_action action, const struct dir_dept *d, void *arg,
    struct da_error *err)
{
	struct sync_ctx	*c = arg;

	if (action != DIR_REMOVE)
		return DA_OK;
	return directory_remove_dept(c->db, d->dept_id, err);
}

/* Decide and, unless refused or dry, replace the directory at once. */
static enum da_err
conclude(struct sync_ctx *c, struct da_error *err)
{
	struct sync_stats	*s = c->st;
	enum da_err		 rc;
	int			 complete, refuse, in_tx = 0;
	long long		 limit = cfg()->num[CFG_SYNC_MAX_DEACTIVATE];

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
		if ((rc = directory_plan_each_dept(c->db, print_dept, c,
		    err)) == DA_OK)
			rc = directory_plan_each_user(c->db, print_user, c,
			    err);
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
	if ((rc = directory_plan_each_dept(c->db, apply_dept, c, err)) !=
	    DA_OK ||
	    (rc = directory_plan_each_user(c->db, apply_user, c, err)) !=
	    DA_OK ||
	    (rc = directory_plan_each_dept(c->db, remove_dept, c, err)) !=
	    DA_OK)
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
	c.t0 = mono_us();
	c.calls0 = dt_calls_made();
	st->outcome = SYNC_FAILED;
	c.concurrency = (int)cfg()->num[CFG_SYNC_CONCURRENCY];
	c.slots = xcalloc((size_t)c.concurrency, sizeof(*c.slots));
	c.policy.busy_retries = RATE_RETRIES;
	c.policy.fail_retries = (int)cfg()->num[CFG_HTTP_RETRIES];
	c.policy.max_wait_ms = WAIT_MAX_MS;
	for (a = 0; a < API__MAX; a++)
		pacer_init(&c.pace[a], cfg()->num[CFG_SYNC_QPS]);

	if ((rc = run_start(db, st, err)) != DA_OK ||
	    (rc = events_last_id(db, &c.events0, err)) != DA_OK)
		goto out;
	if ((rc = directory_stage_begin(db, ROOT_DEPT, err)) != DA_OK)
		goto out;
	if ((rc = dt_corp_token(db, c.token, sizeof(c.token), NULL, err)) !=
	    DA_OK)
		goto out;
	if ((rc = http_multi_new(c.concurrency, &c.multi, err)) != DA_OK)
		goto out;
	rc = fetch(&c, err);
	st->fetch_seconds = (double)(mono_us() - c.t0) / 1e6;
	if (rc != DA_OK)
		goto out;
	http_multi_free(c.multi);
	c.multi = NULL;
	rc = conclude(&c, err);
out:
	http_multi_free(c.multi);
	free(c.slots);
	for (a = 0; a < API__MAX; a++)
		queue_free(&c.q[a]);
	crypto_cleanse(c.token, sizeof(c.token));
	count_requests(&c);
	st->seconds = (double)(mono_us() - c.t0) / 1e6;
	if (rc != DA_OK) {
		db_rollback(db);
		st->outcome = SYNC_FAILED;
		run_finish(db, st, err->msg, &e2);
	}
	directory_stage_end(db);
	return rc;
}

enum da_err
sync_run(struct db *db, const struct sync_options *opt,
    struct sync_stats *st, struct da_error *err)
{
	struct da_error	 e;
	enum da_err	 rc;
	int		 fd = -1;

	da_error_clear(&e);
	/*
	 * One sync at a time per database, on every node (db_lock: an
	 * advisory lock on PostgreSQL, let go when a node dies). A second
	 * one changes nothing, records no run and says why.
	 */
	if ((rc = db_lock(db, "sync", &fd, &e)) != DA_OK) {
		memset(st, 0, sizeof(*st));
		st->outcome = SYNC_FAILED;
		if (rc == DA_EBUSY)
			DA_ERROR(&e, DA_EBUSY, "another sync is running on "
			    "this database (one at a time, on every node)");
		goto out;
	}
	rc = run(db, opt, st, &e);
	db_unlock(db, "sync", fd);
out:
	if (rc != DA_OK && err != NULL)
		*err = e;
	return rc;
}
