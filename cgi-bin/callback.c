/*
 * callback.fcgi: DingTalk's encrypted event push (docs/dingtalk.md §a, §b).
 *
 * POST /dingauth/callback?signature|msg_signature=…&timestamp|timeStamp=…
 * &nonce=… with {"encrypt":"…"}. The front line, in order: route, method
 * (405), body size (413), the query and body shapes (400), the signature
 * over the ciphertext in constant time (403), the timestamp window (400),
 * decryption and the receiver id (400), the event itself (400). None of
 * these writes anything. Then the event is stored (a push already stored
 * writes nothing and is answered the same), the encrypted "success" goes
 * out and the request is finished (FCGX_Finish_r, or stdout closed under
 * CGI) before any call to DingTalk: DingTalk allows 1500 ms. Only then
 * is the event applied to the directory (a user_leave_org or
 * org_dept_remove was applied with its store, before the answer), and
 * other events that are due, for at most EVENT_APPLY_BUDGET_MS. A push
 * stored before (a retry, a replay) writes nothing, takes no write lock
 * and does nothing after its answer.
 *
 * Under FastCGI CALLBACK_THREADS request threads verify and decrypt
 * pushes and hand each new one, with its request, to the process's
 * committer (group commit, group.h): the pushes waiting at one moment
 * share one transaction and one fsync, the committer answers each only
 * after that commit, and the slow part runs in the process's applier
 * thread. Under CGI the one push is stored and applied by itself.
 *
 * check_url (sent by register_call_back and the developer console) is
 * answered and not stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "envelope.h"
#include "events.h"
#include "group.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "prog.h"
#include "req.h"

#define CALLBACK_BODY_MAX	(64u * 1024)	/* DingTalk's pushes are small */
#define CALLBACK_ENCRYPT_MAX	(CALLBACK_BODY_MAX)
/*
 * Request threads of one FastCGI process: as many pushes verified and
 * decrypted at once. They do not wait for commits (the committer answers
 * each push after its batch, group.h), so however many pushes wait for
 * one fsync, a few threads keep the CPUs busy.
 */
#define CALLBACK_THREADS	4

struct callback {
	struct envelope_key	 key;
	struct events_seen	*seen;	/* keys known stored (FastCGI) */
};

static void	serve_callback(struct req *, void *);

/* Anything but POST: 405 (JSON, like every answer to DingTalk). */
static const struct req_route routes[] = {
	{ "callback", REQ_M_POST, serve_callback, REQ_M_ANY },
};

/* The query parameters of a push; each has two spellings at most. */
enum qarg {
	Q_SIGNATURE,
	Q_TIMESTAMP,
	Q_NONCE,
	Q__MAX
};

enum charset {
	CS_HEX,			/* [0-9a-fA-F] */
	CS_DIGITS,		/* [0-9] */
	CS_PRINTABLE,		/* ASCII '!'..'~' */
};

static const struct qarg_def {
	const char	*names[3];	/* first present wins, NULL-ended */
	size_t		 max;		/* longest accepted value */
	enum charset	 charset;
} qargs[Q__MAX] = {
	[Q_SIGNATURE] = { { "msg_signature", "signature", NULL }, 64, CS_HEX },
	[Q_TIMESTAMP] = { { "timestamp", "timeStamp", NULL }, 16, CS_DIGITS },
	[Q_NONCE] = { { "nonce", NULL, NULL }, 128, CS_PRINTABLE },
};

/* Why a push is refused: status and the short text in the answer. */
enum refusal {
	R_TOO_BIG,
	R_BODY,
	R_QUERY,
	R_SIGNATURE,
	R_STALE,
	R_ENVELOPE,
	R_RECEIVER,
	R_EVENT,
	R_BUSY,
	R_INTERNAL,
	R__MAX
};

static const struct refusal_def {
	int		 status;
	const char	*error;
} refusals[R__MAX] = {
	[R_TOO_BIG] = { 413, "body too large" },
	[R_BODY] = { 400, "body must be a JSON object with an encrypt string" },
	[R_QUERY] = { 400, "signature, timestamp and nonce are required" },
	[R_SIGNATURE] = { 403, "bad signature" },
	[R_STALE] = { 400, "timestamp outside the accepted window" },
	[R_ENVELOPE] = { 400, "malformed envelope" },
	[R_RECEIVER] = { 400, "wrong receiver id" },
	[R_EVENT] = { 400, "malformed event" },
	/* Not stored: DingTalk sends it again (docs/dingtalk.md §a.8). */
	[R_BUSY] = { 503, "busy" },
	[R_INTERNAL] = { 500, "internal error" },
};

static int
charset_ok(const char *s, enum charset cs)
{
	for (; *s != '\0'; s++) {
		switch (cs) {
		case CS_HEX:
			if (!((*s >= '0' && *s <= '9') ||
			    (*s >= 'a' && *s <= 'f') ||
			    (*s >= 'A' && *s <= 'F')))
				return 0;
			break;
		case CS_DIGITS:
			if (!(*s >= '0' && *s <= '9'))
				return 0;
			break;
		case CS_PRINTABLE:
			if (*s < '!' || *s > '~')
				return 0;
			break;
		}
	}
	return 1;
}

static void
refuse(struct req *r, enum refusal why, const char *detail)
{
	json	*doc;

	log_msg(why == R_INTERNAL || why == R_BUSY ? LOG_ERR : LOG_WARN,
	    "push refused "
	    "(%d %s)%s%s", refusals[why].status, refusals[why].error,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	resp_clear(r);
	doc = json_new_object();
	json_add_str(doc, "error", refusals[why].error);
	if (why == R_BUSY)
		resp_header(r, "Retry-After", "5");
	resp_json(r, refusals[why].status, doc);
	json_free(doc);
}

/*
 * The query values, validated by the table. A missing or malformed value
 * is malformed input, except a signature that is there but cannot be
 * right: that is a bad signature.
 */
static enum refusal
query_values(const struct req *r, const char *v[Q__MAX], char *what,
    size_t size)
{
	const struct qarg_def	*d;
	int			 a, i;

	for (a = 0; a < Q__MAX; a++) {
		d = &qargs[a];
		v[a] = NULL;
		for (i = 0; d->names[i] != NULL && v[a] == NULL; i++)
			v[a] = req_query(r, d->names[i]);
		if (v[a] == NULL || *v[a] == '\0') {
			snprintf(what, size, "%s missing", d->names[0]);
			return R_QUERY;
		}
		if (strlen(v[a]) > d->max || !charset_ok(v[a], d->charset)) {
			snprintf(what, size, "%s malformed", d->names[0]);
			return a == Q_SIGNATURE ? R_SIGNATURE : R_QUERY;
		}
	}
	return R__MAX;
}

/*
 * Is the push's timestamp within DINGAUTH_CALLBACK_WINDOW seconds of
 * now? DingTalk sends milliseconds (13 digits); seconds are accepted
 * too. A window of 0 turns the check off.
 */
static int
timestamp_fresh(const char *ts, long long *age)
{
	long long	 window = cfg()->num[CFG_CALLBACK_WINDOW], t, now;

	*age = 0;
	if (window == 0)
		return 1;
	t = strtoll(ts, NULL, 10);	/* at most 16 digits: no overflow */
	if (strlen(ts) >= 12)
		t /= 1000;
	now = (long long)time(NULL);
	*age = now - t;
	return *age <= window && *age >= -window;
}

/* The encrypt string of the body, or NULL. */
static const char *
body_encrypt(struct req *r)
{
	json		*doc = r->json_body;
	const char	*s;

	if (doc == NULL) {
		/* Any content type: DingTalk's is JSON, a proxy may differ. */
		if (r->body == NULL ||
		    (doc = json_parse(r->body, r->body_len)) == NULL)
			return NULL;
		if (!json_is_object(doc)) {
			json_free(doc);
			return NULL;
		}
		r->json_body = doc;	/* freed with r */
	}
	if ((s = json_as_str(json_get(doc, "encrypt"))) == NULL ||
	    *s == '\0' || strlen(s) > CALLBACK_ENCRYPT_MAX)
		return NULL;
	return s;
}

static enum refusal
envelope_refusal(enum da_err code)
{
	switch (code) {
	case DA_ESIG:
		return R_SIGNATURE;
	case DA_ERECEIVER:
		return R_RECEIVER;
	case DA_EB64:
	case DA_EPAD:
	case DA_ELEN:
	case DA_EINPUT:
		return R_ENVELOPE;
	default:
		return R_INTERNAL;
	}
}

/* A push from its checks to its answer. */
struct push {
	struct event_store	 st;	/* what became of it */
	struct event		 ev;
	char			*msg;	/* the decrypted event */
	size_t			 msglen;
	char			 key[80];	/* "sig:" + msg_signature */
	struct callback		*cb;
	struct req		*r;
};

static void
push_free(struct push *p)
{
	event_clear(&p->ev);
	if (p->msg != NULL) {
		crypto_cleanse(p->msg, p->msglen);
		free(p->msg);
	}
	free(p);
}

/*
 * The event stored as id needs DingTalk: applied now, after the answer,
 * with other due events for at most EVENT_APPLY_BUDGET_MS; under
 * FastCGI by the process's applier thread, so no request thread and no
 * commit waits for DingTalk.
 */
static void
apply_after(struct db *db, long long id)
{
	if (group_running())
		group_apply_later(id);
	else
		group_apply_now(db, id);
}

/*
 * p's answer, not yet sent: the refusal its store earned, or the
 * encrypted "success". Returns 1 when its event waits to be applied
 * after the answer.
 */
static int
respond(struct push *p)
{
	struct req		*r = p->r;
	struct event_store	*st = &p->st;
	struct da_error		 err;
	char			*reply = NULL;
	int			 later = 0;

	da_error_clear(&err);
	if (p->ev.kind != EVENT_CHECK_URL) {
		/*
		 * Another process holding the write lock past our budget
		 * (PROG_BUSY_CALLBACK): 503 well within DingTalk's 1500 ms,
		 * nothing stored, and DingTalk sends the push again.
		 */
		if (st->rc != DA_OK) {
			refuse(r, st->busy ? R_BUSY : R_INTERNAL, st->err.msg);
			return 0;
		}
		if (st->stored && p->ev.ninvalid > 0)
			log_msg(LOG_WARN, "%s event %lld: %zu id(s) left out: "
			    "%s", p->ev.type, st->id, p->ev.ninvalid,
			    p->ev.invalid);
		log_msg(LOG_DEBUG, "%s event %s as %lld", p->ev.type,
		    st->applied ? "stored and applied" : st->stored ?
		    "stored" : "already stored", st->id);
		later = p->ev.kind != EVENT_OTHER && st->stored &&
		    !st->applied;
	}
	if (envelope_reply(cfg()->str[CFG_TOKEN], &p->cb->key,
	    cfg()->str[CFG_CALLBACK_RECEIVER], "success", NULL, NULL, NULL,
	    &reply, &err) != DA_OK) {
		refuse(r, R_INTERNAL, err.msg);
		return later;
	}
	resp_status(r, 200);
	resp_header(r, "Content-Type", "application/json");
	resp_header(r, "Cache-Control", "no-store");
	resp_puts(r, reply);
	free(reply);
	return later;
}

/* The committer's call once p's batch has ended (group.h). */
static void
committed(void *arg)
{
	struct push	*p = arg;
	long long	 id = p->st.id;
	int		 later;

	later = respond(p);
	req_complete(p->r);
	if (later)
		group_apply_later(id);
	push_free(p);
}

/*
 * Store p (its fallback dedupe key from the push's signature), or hand
 * it to the committer: 1 when it is stored (or its
 * store failed) and the caller answers it, 0 when the committer has it
 * and the request with it (FastCGI, group.h; after a look in the
 * process's memory of keys stored (events.h: events_seen) and then on
 * this thread's own SQLite connection for a push stored before: a
 * replay is answered from that, without waiting for anyone's commit; on
 * PostgreSQL the threads have no connection and the committer reads
 * what the memory does not know). Under CGI it is stored alone on the
 * program's connection.
 */
static int
store_push(struct db *db, struct push *p, const char *signature)
{
	struct event_store	*st = &p->st;

	snprintf(p->key, sizeof(p->key), "sig:%s", signature);
	st->ev = &p->ev;
	st->payload = p->msg;
	st->len = p->msglen;
	st->fallback = p->key;
	st->seen = p->cb->seen;
	if (!group_running() || !req_can_detach(p->r)) {
		(void)events_store_batch(db, &st, 1);
		return 1;
	}
	if (events_store_seen(db, st))
		return 1;
	req_detach(p->r);
	group_submit(st, committed, p);
	return 0;
}

/*
 * One push, front to back: the refusals in the order of the header
 * comment, each before anything is written; then the store, and the
 * answer before the slow part.
 */
static void
serve_callback(struct req *r, void *arg)
{
	struct db	*db = prog_db();
	struct da_error	 err;
	struct push	*p;
	const char	*q[Q__MAX], *encrypt;
	char		 what[64];
	long long	 age;
	enum refusal	 why;
	enum da_err	 rc;

	p = xcalloc(1, sizeof(*p));
	p->cb = arg;
	p->r = r;
	da_error_clear(&err);
	if (r->body_status == REQ_BODY_TOO_BIG) {
		refuse(r, R_TOO_BIG, NULL);
		goto out;
	}
	if ((why = query_values(r, q, what, sizeof(what))) != R__MAX) {
		refuse(r, why, what);
		goto out;
	}
	if (r->body_status == REQ_BODY_BAD || r->body_status ==
	    REQ_BODY_NONE || (encrypt = body_encrypt(r)) == NULL) {
		refuse(r, R_BODY, NULL);
		goto out;
	}
	/* The signature authenticates everything else: first, alone. */
	if (envelope_verify(cfg()->str[CFG_TOKEN], q[Q_TIMESTAMP],
	    q[Q_NONCE], encrypt, q[Q_SIGNATURE], &err) != DA_OK) {
		refuse(r, R_SIGNATURE, NULL);
		goto out;
	}
	if (!timestamp_fresh(q[Q_TIMESTAMP], &age)) {
		snprintf(what, sizeof(what), "%lld s old", age);
		refuse(r, R_STALE, what);
		goto out;
	}
	if ((rc = envelope_decrypt(&p->cb->key,
	    cfg()->str[CFG_CALLBACK_RECEIVER], encrypt, &p->msg, &p->msglen,
	    &err)) != DA_OK) {
		refuse(r, envelope_refusal(rc), err.msg);
		goto out;
	}
	if (events_parse(p->msg, p->msglen, &p->ev, &err) != DA_OK) {
		refuse(r, R_EVENT, err.msg);
		goto out;
	}
	if (p->ev.kind != EVENT_CHECK_URL && !store_push(db, p, q[Q_SIGNATURE]))
		return;		/* the committer answers it */
	if (respond(p)) {
		/* DingTalk has its answer; now the slow part. */
		resp_send(r);
		apply_after(db, p->st.id);
	}
out:
	push_free(p);
}

int
main(int argc, char *argv[])
{
	struct callback	 cb;
	struct da_error	 err;
	int		 rc;

	memset(&cb, 0, sizeof(cb));
	da_error_clear(&err);
	if (prog_start("callback.fcgi", CFG_NEED_CALLBACK | CFG_NEED_DB,
	    PROG_BUSY_CALLBACK, argc, argv) == DA_OK && envelope_key(cfg()->str[CFG_AES_TOKEN], &cb.key,
	    &err) != DA_OK)
		prog_fail(&err);
	if (prog_ready() && req_fastcgi()) {
		cb.seen = events_seen_new();
		if (group_start(PROG_BUSY_CALLBACK, &err) != DA_OK)
			log_msg(LOG_ERR, "%s: serving one push at a time",
			    err.msg);
	}
	rc = prog_serve_threads(routes, sizeof(routes) / sizeof(routes[0]),
	    CALLBACK_BODY_MAX, &cb, group_running() ? CALLBACK_THREADS : 1);
	crypto_cleanse(&cb.key, sizeof(cb.key));
	events_seen_free(cb.seen);
	return rc;
}
