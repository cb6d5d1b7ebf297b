/*
 * DingTalk's Stream mode: frames into events, and the link that carries
 * them (docs/dingtalk.md, Stream mode). See stream.h.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "events.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "mono.h"
#include "stream.h"
#include "ws.h"

#define STREAM_TICK_MS	250	/* the poll loop looks at its timers */

static const char *const type_names[STREAM_TYPE__MAX] = {
	[STREAM_SYSTEM] = "SYSTEM",
	[STREAM_EVENT] = "EVENT",
	[STREAM_CALLBACK] = "CALLBACK",
	[STREAM_TYPE_OTHER] = "",
};

/* The time keys of an event (as events_parse reads them). */
static const char *const keys_time[] = {
	"TimeStamp", "timeStamp", "EventTime", NULL
};

void
stream_frame_clear(struct stream_frame *f)
{
	if (f == NULL)
		return;
	free(f->data);
	memset(f, 0, sizeof(*f));
}

/* A header copied into buf: "" when absent; -1 when unusable. */
static int
header(const json *headers, const char *key, char *buf, size_t size)
{
	enum json_rc	 rc;

	buf[0] = '\0';
	if (json_get(headers, key) == NULL)
		return 0;
	rc = json_get_text(headers, key, buf, size);
	if (rc != JSON_OK) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * The headers of a frame. Values are strings (numbers taken too: the
 * docs call time a number); a header that does not fit is refused.
 */
static enum da_err
parse_headers(const json *h, struct stream_frame *f, struct da_error *err)
{
	char	 born[32];

	if (header(h, "messageId", f->message_id, sizeof(f->message_id)) < 0)
		return DA_ERROR(err, DA_EINPUT, "the frame's messageId is not "
		    "a usable string");
	if (header(h, "topic", f->topic, sizeof(f->topic)) < 0)
		return DA_ERROR(err, DA_EINPUT, "the frame's topic is not a "
		    "usable string");
	if (f->type != STREAM_EVENT)
		return DA_OK;
	if (header(h, "eventType", f->event_type, sizeof(f->event_type)) < 0 ||
	    header(h, "eventId", f->event_id, sizeof(f->event_id)) < 0 ||
	    header(h, "eventCorpId", f->event_corp_id,
	    sizeof(f->event_corp_id)) < 0 ||
	    header(h, "eventBornTime", born, sizeof(born)) < 0)
		return DA_ERROR(err, DA_EINPUT, "an event header is not a "
		    "usable string");
	if (born[0] != '\0' && json_get_int(h, "eventBornTime",
	    &f->event_born_ms) != JSON_OK)
		return DA_ERROR(err, DA_EINPUT, "eventBornTime is not a number");
	return DA_OK;
}

enum da_err
stream_frame_parse(const char *text, size_t len, struct stream_frame *f,
    struct da_error *err)
{
	json		*doc = NULL, *h;
	const char	*s;
	enum da_err	 rc;
	int		 t;

	memset(f, 0, sizeof(*f));
	if (text == NULL || len == 0 || memchr(text, '\0', len) != NULL ||
	    (doc = json_parse(text, len)) == NULL || !json_is_object(doc)) {
		rc = DA_ERROR(err, DA_EINPUT, "the frame is not a JSON object");
		goto out;
	}
	if (json_get_str(doc, "type", &s) != JSON_OK) {
		rc = DA_ERROR(err, DA_EINPUT, "the frame has no type");
		goto out;
	}
	f->type = STREAM_TYPE_OTHER;
	for (t = 0; t < STREAM_TYPE_OTHER; t++)
		if (strcmp(type_names[t], s) == 0)
			f->type = (enum stream_type)t;
	if ((h = json_get(doc, "headers")) == NULL || !json_is_object(h)) {
		rc = DA_ERROR(err, DA_EINPUT, "the frame has no headers object");
		goto out;
	}
	if ((rc = parse_headers(h, f, err)) != DA_OK)
		goto out;
	/* data is JSON inside a string; absent counts as empty. */
	if (json_get(doc, "data") == NULL)
		s = "";
	else if (json_get_str(doc, "data", &s) != JSON_OK) {
		rc = DA_ERROR(err, DA_EINPUT, "the frame's data is not a string");
		goto out;
	}
	f->data_len = strlen(s);
	f->data = xstrdup(s);
	rc = DA_OK;
out:
	json_free(doc);
	if (rc != DA_OK) {
		free(f->data);
		f->data = NULL;
		f->data_len = 0;
	}
	return rc;
}

enum da_err
stream_event_payload(const struct stream_frame *f, char **payload,
    struct da_error *err)
{
	json		*doc = NULL;
	const char	*const *k;
	int		 timed = 0;

	*payload = NULL;
	if (f->data == NULL || (doc = json_parse(f->data, f->data_len)) ==
	    NULL || !json_is_object(doc)) {
		json_free(doc);
		return DA_ERROR(err, DA_EINPUT, "the event's data is not a JSON "
		    "object");
	}
	/* The headers say what data does not (lowerCamelCase, §b.2). */
	if (f->event_type[0] != '\0' && json_get(doc, "EventType") == NULL &&
	    json_get(doc, "eventType") == NULL)
		json_add_str(doc, "eventType", f->event_type);
	if (f->event_id[0] != '\0' && json_get(doc, "eventId") == NULL)
		json_add_str(doc, "eventId", f->event_id);
	if (f->event_corp_id[0] != '\0' && json_get(doc, "eventCorpId") == NULL)
		json_add_str(doc, "eventCorpId", f->event_corp_id);
	for (k = keys_time; *k != NULL; k++)
		timed |= json_get(doc, *k) != NULL;
	if (!timed && f->event_born_ms > 0)
		json_add_int(doc, "EventTime", f->event_born_ms);
	*payload = json_print(doc);
	json_free(doc);
	return DA_OK;
}

/*
 * An answer to the frame message_id: code, message, and data (JSON text
 * carried as a string). Caller frees.
 */
static char *
ack_json(const char *message_id, int code, const char *message,
    const char *data)
{
	json	*a, *h;
	char	*text;

	a = json_new_object();
	json_add_int(a, "code", code);
	h = json_new_object();
	json_add_str(h, "contentType", "application/json");
	json_add_str(h, "messageId", message_id);
	json_add(a, "headers", h);
	json_add_str(a, "message", message);
	json_add_str(a, "data", data);
	text = json_print(a);
	json_free(a);
	return text;
}

/* An EVENT answer: status SUCCESS (consumed) or LATER (push it again). */
static char *
event_ack(const char *message_id, int later, const char *why)
{
	json	*d;
	char	*data, *text;

	d = json_new_object();
	json_add_str(d, "status", later ? "LATER" : "SUCCESS");
	json_add_str(d, "message", why);
	data = json_print(d);
	text = ack_json(message_id, later ? 500 : 200, later ? "LATER" : "OK",
	    data);
	free(data);
	json_free(d);
	return text;
}

/*
 * Store the event of frame f: SUCCESS once it is committed (or was
 * stored before), LATER when the database could not take it. What cannot
 * be used is acknowledged and not stored: DingTalk would only push it
 * again.
 */
static char *
handle_event(struct db *db, const struct stream_frame *f)
{
	struct event	 ev;
	struct da_error	 err;
	char		*payload = NULL, *ack, fallback[STREAM_ID_MAX + 8];
	long long	 id = 0;
	int		 stored = 0, applied = 0;
	enum da_err	 rc;

	memset(&ev, 0, sizeof(ev));
	da_error_clear(&err);
	if (!crypto_str_equal(f->event_corp_id, config_str(CFG_CORP_ID))) {
		log_msg(LOG_WARN, "stream: event %s (%s) is for corp %s, not "
		    "ours: acknowledged, not stored", f->event_id,
		    f->event_type, f->event_corp_id[0] ? f->event_corp_id :
		    "(none)");
		ack = event_ack(f->message_id, 0, "not this company's");
		goto out;
	}
	if (stream_event_payload(f, &payload, &err) != DA_OK ||
	    events_parse(payload, strlen(payload), &ev, &err) != DA_OK ||
	    ev.kind == EVENT_CHECK_URL) {
		log_msg(LOG_WARN, "stream: event %s (%s) cannot be used: %s: "
		    "acknowledged, not stored", f->event_id, f->event_type,
		    ev.kind == EVENT_CHECK_URL ? "check_url" : err.msg);
		ack = event_ack(f->message_id, 0, "unusable");
		goto out;
	}
	ev.source = EVENT_SOURCE_STREAM;
	/* Without an eventId, the message tells a re-push apart. */
	snprintf(fallback, sizeof(fallback), "stream:%s", f->message_id);
	rc = events_store_apply(db, &ev, payload, strlen(payload),
	    f->message_id[0] ? fallback : NULL, &stored, &id, &applied, &err);
	if (rc != DA_OK) {
		log_msg(LOG_WARN, "stream: event %s (%s) not stored: %s: "
		    "answered LATER", f->event_id, ev.type, err.msg);
		ack = event_ack(f->message_id, 1, "not stored");
		goto out;
	}
	if (!stored)
		log_msg(LOG_INFO, "stream: event %s (%s) was stored before "
		    "(event %lld)", f->event_id, ev.type, id);
	else
		log_msg(LOG_INFO, "stream: event %s (%s) stored as event "
		    "%lld%s", f->event_id, ev.type, id, applied ?
		    " and applied" : "");
	ack = event_ack(f->message_id, 0, stored ? "stored" : "duplicate");
out:
	free(payload);
	event_clear(&ev);
	return ack;
}

void
stream_handle(struct db *db, const char *text, size_t len, char **ack,
    enum stream_next *next)
{
	struct stream_frame	 f;
	struct da_error		 err;

	*ack = NULL;
	*next = STREAM_NEXT_GO_ON;
	da_error_clear(&err);
	if (stream_frame_parse(text, len, &f, &err) != DA_OK) {
		log_msg(LOG_WARN, "stream: a frame that cannot be used: %s%s",
		    err.msg, f.message_id[0] ? " (acknowledged)" : "");
		if (f.message_id[0] != '\0')
			*ack = ack_json(f.message_id, 200, "OK", "{}");
		goto out;
	}
	switch (f.type) {
	case STREAM_SYSTEM:
		if (strcmp(f.topic, "disconnect") == 0) {
			log_msg(LOG_INFO, "stream: the server asks to "
			    "reconnect");
			*next = STREAM_NEXT_RELINK;
		} else if (strcmp(f.topic, "ping") != 0)
			log_msg(LOG_DEBUG, "stream: SYSTEM %s", f.topic);
		/* A ping's data comes back verbatim (its opaque). */
		if (f.message_id[0] != '\0')
			*ack = ack_json(f.message_id, 200, "OK", f.data);
		break;
	case STREAM_EVENT:
		if (f.message_id[0] == '\0')
			log_msg(LOG_WARN, "stream: an event without messageId: "
			    "not stored (it cannot be acknowledged)");
		else
			*ack = handle_event(db, &f);
		break;
	default:
		log_msg(LOG_DEBUG, "stream: a frame of type %s: not ours",
		    f.type == STREAM_CALLBACK ? "CALLBACK" : "unknown");
		if (f.message_id[0] != '\0')
			*ack = ack_json(f.message_id, 404, "not handled", "{}");
		break;
	}
out:
	stream_frame_clear(&f);
}

long
stream_backoff_ms(int failures)
{
	unsigned int	 r;
	long		 base = 1000;

	if (failures <= 0)
		return 0;
	while (--failures > 0 && base < STREAM_BACKOFF_MAX_MS)
		base *= 2;
	if (base > STREAM_BACKOFF_MAX_MS)
		base = STREAM_BACKOFF_MAX_MS;
	crypto_random(&r, sizeof(r));
	return base + (long)(r % (unsigned int)(base / 4 + 1));
}

/* One WebSocket link and its timers. */
struct link {
	struct ws	*ws;
	int		 no;		/* the n-th link of this process */
	long long	 ping_ms;	/* our ping awaits an answer since */
	long long	 drain_until;	/* an old link: closed by then */
	long		 frames;
};

struct stream {
	struct db	*db;
	int		(*stopping)(void);
	struct link	*cur;		/* the link frames arrive on */
	struct link	*old;		/* one being replaced, or NULL */
	int		 failures;	/* since the last link with a frame */
	int		 links;
	int		 relink;	/* cur asked for its replacement */
	long long	 next_try;	/* ms: open a link then */
};

/* While servicing one link: what its frames need. */
struct link_ctx {
	struct stream	*s;
	struct link	*l;
};

struct stream *
stream_new(struct db *db, int (*stopping)(void))
{
	struct stream	*s;

	s = xcalloc(1, sizeof(*s));
	s->db = db;
	s->stopping = stopping;
	return s;
}

static void
link_free(struct link *l)
{
	if (l == NULL)
		return;
	ws_free(l->ws);
	free(l);
}

/* The one reconnect path: the current link is gone (why), try again. */
static void
lost(struct stream *s, const char *why)
{
	long	 wait;

	link_free(s->cur);
	s->cur = NULL;
	wait = stream_backoff_ms(++s->failures);
	s->next_try = mono_ms() + wait;
	log_msg(LOG_WARN, "stream: %s; next try in %ld.%01ld s", why,
	    wait / 1000, wait % 1000 / 100);
}

/* Open a link: the open call for a ticket, then the WebSocket. */
static void
open_link(struct stream *s)
{
	struct da_error	 err;
	struct ws	*ws = NULL;
	char		 endpoint[DT_STREAM_ENDPOINT_MAX];
	char		 ticket[DT_STREAM_TICKET_MAX], *t = NULL, *url = NULL;
	char		 why[sizeof(err.msg) + 32];

	da_error_clear(&err);
	if (dt_stream_open(endpoint, sizeof(endpoint), ticket, sizeof(ticket),
	    &err) != DA_OK) {
		snprintf(why, sizeof(why), "the open call failed: %s", err.msg);
		lost(s, why);
		goto out;
	}
	t = http_escape(ticket);
	url = xasprintf("%s%sticket=%s", endpoint, strchr(endpoint, '?') ?
	    "&" : "?", t);
	if (ws_connect(url, STREAM_CONNECT_MS, &ws, &err) != DA_OK) {
		snprintf(why, sizeof(why), "%s", err.msg);
		lost(s, why);
		goto out;
	}
	s->cur = xcalloc(1, sizeof(*s->cur));
	s->cur->ws = ws;
	s->cur->no = ++s->links;
	log_msg(LOG_INFO, "stream: link %d open to %s", s->cur->no, endpoint);
out:
	crypto_cleanse(ticket, sizeof(ticket));
	if (t != NULL)
		crypto_cleanse(t, strlen(t));
	if (url != NULL)
		crypto_cleanse(url, strlen(url));
	free(t);
	free(url);
}

/* A text message on link c->l: answer it on the same link. */
static int
on_text(const char *text, size_t len, void *arg)
{
	struct link_ctx		*c = arg;
	struct da_error		 err;
	enum stream_next	 next;
	char			*ack;

	da_error_clear(&err);
	if (c->l->frames++ == 0 && c->l == c->s->cur)
		c->s->failures = 0;	/* a working link: backoff starts over */
	stream_handle(c->s->db, text, len, &ack, &next);
	if (ack != NULL) {
		if (ws_send_text(c->l->ws, ack, strlen(ack), &err) != DA_OK)
			log_msg(LOG_WARN, "stream: an answer was not sent: %s",
			    err.msg);
		free(ack);
	}
	if (next == STREAM_NEXT_RELINK && c->l == c->s->cur)
		c->s->relink = 1;	/* done after the poll: see relink */
	return 0;
}

/*
 * A disconnect: a new link first; this one is closed once that is up.
 * Done between polls, so that no link is freed while it is served.
 */
static void
relink(struct stream *s)
{
	if (!s->relink)
		return;
	s->relink = 0;
	if (s->cur == NULL)
		return;		/* lost meanwhile: the backoff path has it */
	link_free(s->old);
	s->old = s->cur;
	s->old->drain_until = mono_ms() + STREAM_DRAIN_MS;
	s->cur = NULL;
	s->next_try = 0;
}

/* Ping an idle link; a ping unanswered for too long loses it. */
static int
keepalive(struct stream *s, struct link *l, long long now)
{
	struct da_error	 err;
	long long	 idle = config_int(CFG_STREAM_IDLE) * 1000, last;

	last = ws_last_frame(l->ws);
	if (l->ping_ms != 0 && last >= l->ping_ms)
		l->ping_ms = 0;		/* answered */
	if (l->ping_ms == 0 && now - last >= idle) {
		if (ws_ping(l->ws, &err) != DA_OK)
			return -1;
		l->ping_ms = now;
		log_msg(LOG_DEBUG, "stream: link %d idle, pinged", l->no);
	}
	if (l->ping_ms != 0 && now - l->ping_ms >= (idle < STREAM_PONG_MAX_MS ?
	    idle : STREAM_PONG_MAX_MS))
		return -1;
	(void)s;
	return 0;
}

/* The old link: closed once the new one is up, dropped at its deadline. */
static void
drain(struct stream *s, long long now)
{
	struct da_error	 err;

	if (s->old == NULL)
		return;
	if (now >= s->old->drain_until || ws_closed(s->old->ws)) {
		log_msg(LOG_INFO, "stream: link %d closed", s->old->no);
		link_free(s->old);
		s->old = NULL;
		return;
	}
	if (s->cur != NULL && ws_close(s->old->ws, 1000, &err) == DA_OK &&
	    s->old->drain_until > now + STREAM_CLOSE_MS)
		s->old->drain_until = now + STREAM_CLOSE_MS;
}

/* One poll() over the links for at most wait ms, then their frames. */
static void
poll_links(struct stream *s, long wait)
{
	struct pollfd	 p[2];
	struct link	*l[2];
	struct link_ctx	 c;
	struct da_error	 err;
	char		 why[sizeof(err.msg) + 32];
	int		 n = 0, i;

	if (s->cur != NULL)
		l[n++] = s->cur;
	if (s->old != NULL)
		l[n++] = s->old;
	for (i = 0; i < n; i++) {
		p[i].fd = ws_fd(l[i]->ws);
		p[i].events = ws_want(l[i]->ws);
		p[i].revents = 0;
	}
	if (poll(p, (nfds_t)n, (int)wait) <= 0)
		return;		/* timers, or a signal */
	for (i = 0; i < n; i++) {
		if (p[i].revents == 0)
			continue;
		c.s = s;
		c.l = l[i];
		da_error_clear(&err);
		if (ws_service(l[i]->ws, on_text, &c, &err) == DA_OK)
			continue;
		if (l[i] == s->cur) {
			snprintf(why, sizeof(why), "link %d: %s", l[i]->no,
			    err.msg);
			lost(s, why);
		} else {
			log_msg(LOG_INFO, "stream: link %d closed", l[i]->no);
			link_free(s->old);
			s->old = NULL;
		}
	}
	relink(s);
}

void
stream_run(struct stream *s, long ms)
{
	long long	 now, end = mono_ms() + ms;
	long		 wait;

	while (!s->stopping()) {
		now = mono_ms();
		if (s->cur == NULL && now >= s->next_try)
			open_link(s);
		now = mono_ms();
		if (s->cur != NULL && keepalive(s, s->cur, now) != 0)
			lost(s, "no answer to a ping: the link is half-open");
		drain(s, now);
		if (now >= end)
			break;
		wait = end - now < STREAM_TICK_MS ? (long)(end - now) :
		    STREAM_TICK_MS;
		if (s->cur == NULL && s->old == NULL) {
			if (s->next_try - now < wait)
				wait = s->next_try > now ?
				    (long)(s->next_try - now) : 0;
			poll(NULL, 0, (int)wait);	/* nothing to read */
			continue;
		}
		poll_links(s, wait);
	}
}

void
stream_free(struct stream *s)
{
	struct pollfd	 p[2];
	struct link	*l[2];
	struct da_error	 err;
	long long	 end;
	int		 n = 0, i, open;

	if (s == NULL)
		return;
	if (s->cur != NULL)
		l[n++] = s->cur;
	if (s->old != NULL)
		l[n++] = s->old;
	for (i = 0; i < n; i++)
		ws_close(l[i]->ws, 1000, &err);
	end = mono_ms() + STREAM_CLOSE_MS;
	/* Frames now are not answered: DingTalk pushes them again. */
	do {
		open = 0;
		for (i = 0; i < n; i++) {
			p[i].fd = ws_fd(l[i]->ws);
			p[i].events = ws_closed(l[i]->ws) ? 0 :
			    ws_want(l[i]->ws);
			p[i].revents = 0;
			open += p[i].events != 0;
		}
		if (open == 0 || poll(p, (nfds_t)n, 100) < 0)
			break;
		for (i = 0; i < n; i++)
			if (p[i].revents != 0)
				(void)ws_service(l[i]->ws, NULL, NULL, &err);
	} while (mono_ms() < end);
	if (n > 0)
		log_msg(LOG_INFO, "stream: closed");
	link_free(s->cur);
	link_free(s->old);
	free(s);
}
