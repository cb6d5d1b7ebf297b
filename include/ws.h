#ifndef DINGAUTH_WS_H
#define DINGAUTH_WS_H

#include <stddef.h>

#include "err.h"

/*
 * A WebSocket client (RFC 6455) over TLS, for DingTalk's Stream mode
 * (docs/dingtalk.md, Stream mode). The framing is wslay's; the socket,
 * TLS and the upgrade are ours, on the project's OpenSSL: the server's
 * certificate chain and host name (or IP address) are always verified,
 * against DINGAUTH_CA_FILE when it is set (as for the HTTPS calls),
 * else the system's CA store (which honours SSL_CERT_FILE). Only wss://
 * URLs are accepted: no setting turns verification off.
 *
 * The socket is non-blocking and driven by the caller's poll(): ws_fd
 * and ws_want say what to wait for, ws_service does what the socket
 * allows and hands each complete text message to a callback. Messages
 * over WS_MESSAGE_MAX bytes end the link (close 1009). wslay answers
 * pings with pongs and a close with a close by itself.
 */

#define WS_MESSAGE_MAX		(256 * 1024)	/* one received message */
#define WS_HANDSHAKE_MAX	8192		/* the upgrade's answer */

struct ws;

/*
 * Connect to url (wss://host[:port]/path[?query]) and upgrade, all
 * within timeout_ms. *out on success (ws_free it). DA_EINPUT for a URL
 * that is not wss://, DA_ETIMEOUT, DA_EHTTP for the rest (connect, TLS,
 * verification, an upgrade refused: err says which).
 */
enum da_err	 ws_connect(const char *url, long timeout_ms, struct ws **out,
		    struct da_error *err);

/* The socket, and the poll() events the link waits for now. */
int		 ws_fd(const struct ws *ws);
short		 ws_want(const struct ws *ws);

/*
 * Called for each complete text message (not NUL-terminated): return 0
 * to go on, non-zero to stop reading for now.
 */
typedef int	(*ws_text_fn)(const char *text, size_t len, void *arg);

/*
 * Read and write what the socket allows (after poll() said so, or to
 * flush what was queued). DA_OK while the link is usable; DA_EHTTP when
 * it has ended (the peer closed or reset it, a protocol error, a
 * message too big), err saying how.
 */
enum da_err	 ws_service(struct ws *ws, ws_text_fn fn, void *arg,
		    struct da_error *err);

/* Queue a text message, a ping, or a close (code, e.g. 1000), and try
 * to send at once. DA_EHTTP when the link can no longer send. */
enum da_err	 ws_send_text(struct ws *ws, const char *text, size_t len,
		    struct da_error *err);
enum da_err	 ws_ping(struct ws *ws, struct da_error *err);
enum da_err	 ws_close(struct ws *ws, int code, struct da_error *err);

/* 1 once a close has been sent and received (or the link is dead). */
int		 ws_closed(const struct ws *ws);
/* mono_ms() of the last frame received (any kind), or of the upgrade. */
long long	 ws_last_frame(const struct ws *ws);

/* Close the socket and free (no close frame: see ws_close). NULL ok. */
void		 ws_free(struct ws *ws);

#endif
