#ifndef DINGAUTH_STREAM_H
#define DINGAUTH_STREAM_H

#include <stddef.h>

#include "err.h"
#include "events.h"

/*
 * DingTalk's Stream mode (docs/dingtalk.md, Stream mode): the worker
 * opens the link itself (DINGAUTH_EVENT_MODE=stream), so no public URL
 * is needed. Two layers here:
 *
 * - the messages: parse a frame (stream_frame_parse), and answer it
 *   (stream_handle): an EVENT goes through the same pipeline as an HTTP
 *   push (events_store_apply, source "stream", dedupe key "event:" +
 *   eventId) and is acknowledged SUCCESS only once stored, LATER with
 *   code 500 when the database cannot store it; an event of another
 *   corp is acknowledged and not stored; a SYSTEM ping is echoed; a
 *   SYSTEM disconnect asks for a new link. No network, for tests and the
 *   fuzz target.
 * - the link (struct stream): the open call (dt_stream_open), a TLS
 *   WebSocket (ws.h), one poll() loop run by the worker between its
 *   passes, one reconnect path with jittered exponential backoff (reset
 *   by the first frame of a link), a WebSocket ping after
 *   DINGAUTH_STREAM_IDLE seconds without a frame and a new link when
 *   nothing answers, and on disconnect the new link opened before the
 *   old one is closed.
 */
struct db;

#define STREAM_ID_MAX		128	/* messageId, bytes with NUL */
#define STREAM_TOPIC_MAX	64
#define STREAM_CORP_MAX		128
#define STREAM_BACKOFF_MAX_MS	60000	/* the longest wait between tries */
#define STREAM_PONG_MAX_MS	10000	/* a ping unanswered this long */
#define STREAM_DRAIN_MS		10000	/* an old link kept at most this long */
#define STREAM_CLOSE_MS		2000	/* waited for the close handshake */
#define STREAM_CONNECT_MS	15000	/* connect, TLS and upgrade */

enum stream_type {
	STREAM_SYSTEM,		/* "SYSTEM": ping, disconnect, ... */
	STREAM_EVENT,		/* "EVENT": an address-book event */
	STREAM_CALLBACK,	/* "CALLBACK": bot messages, not ours */
	STREAM_TYPE_OTHER,
	STREAM_TYPE__MAX
};

/* One frame from the server, as stream_frame_parse understood it. */
struct stream_frame {
	enum stream_type type;
	char		 topic[STREAM_TOPIC_MAX];	/* "" if none */
	char		 message_id[STREAM_ID_MAX];	/* "" if none */
	char		 event_type[EVENT_TYPE_MAX];	/* EVENT: "" if none */
	char		 event_id[EVENT_KEY_MAX - 8];
	char		 event_corp_id[STREAM_CORP_MAX];
	long long	 event_born_ms;			/* 0 if none */
	char		*data;		/* the data string, NUL-terminated */
	size_t		 data_len;
};

/*
 * Parse one text message: a JSON object with a string type, a headers
 * object whose values are strings (or numbers, for time) and a string
 * data (JSON inside a string). DA_EINPUT (err says what) otherwise,
 * with f->message_id filled when it could be read. stream_frame_clear
 * frees.
 */
enum da_err	 stream_frame_parse(const char *text, size_t len,
		    struct stream_frame *f, struct da_error *err);
void		 stream_frame_clear(struct stream_frame *f);

/*
 * The event of an EVENT frame in the form events_parse reads, stored as
 * the row's payload: the data object with eventType, eventId,
 * eventCorpId and (when data has no time) EventTime from the headers.
 * Caller frees. DA_EINPUT when data is not a JSON object.
 */
enum da_err	 stream_event_payload(const struct stream_frame *f,
		    char **payload, struct da_error *err);

/* What the link should do after a frame. */
enum stream_next {
	STREAM_NEXT_GO_ON,
	STREAM_NEXT_RELINK,	/* disconnect: a new link, then close this one */
};

/*
 * Handle one text message against db: *ack is the answer to send on the
 * same link (caller frees; NULL: none, the frame had no messageId),
 * *next what the link does now. Never fails: what cannot be used is
 * logged and acknowledged (or ignored without a messageId).
 */
void		 stream_handle(struct db *db, const char *text, size_t len,
		    char **ack, enum stream_next *next);

/* The wait before try number failures + 1: 0, then 1 s doubling to
 * STREAM_BACKOFF_MAX_MS, plus up to a quarter more at random. */
long		 stream_backoff_ms(int failures);

struct stream;

/*
 * A Stream receiver storing into db; stopping() says when the process
 * is asked to stop (checked between frames). No link yet.
 */
struct stream	*stream_new(struct db *db, int (*stopping)(void));

/*
 * Hold the link for ms: open one when due, poll, answer frames, ping
 * when idle, reconnect. Returns early when stopping() says so.
 */
void		 stream_run(struct stream *s, long ms);

/*
 * Close every link with a close frame (1000), wait at most
 * STREAM_CLOSE_MS for the answers, and free. NULL ok.
 */
void		 stream_free(struct stream *s);

#endif
