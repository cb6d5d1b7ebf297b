/*
 * WebSocket client over TLS: our socket, OpenSSL and the upgrade, wslay's
 * framing. See ws.h.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <wslay/wslay.h>

#include "config.h"
#include "crypto.h"
#include "mem.h"
#include "mono.h"
#include "version.h"
#include "ws.h"

#define WS_HOST_MAX	256
#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"	/* RFC 6455 */

struct ws {
	int			 fd;
	SSL			*ssl;
	wslay_event_context_ptr	 ctx;
	unsigned char		*early;		/* read past the upgrade */
	size_t			 nearly, early_off;
	int			 eof;		/* the peer closed or reset */
	int			 io_error;	/* TLS or socket failure */
	long long		 last_frame;
	ws_text_fn		 fn;		/* during ws_service */
	void			*arg;
	int			 stop;		/* fn asked to stop reading */
	char			 why[160];	/* how the link ended */
};

/* The parts of a wss:// URL: host, port, and path with query. */
struct ws_url {
	char	 host[WS_HOST_MAX];
	char	 port[8];
	char	*target;
};

static enum da_err
parse_url(const char *url, struct ws_url *u, struct da_error *err)
{
	const char	*p, *host, *end, *colon;
	size_t		 hlen;
	long		 port;
	char		*e;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "wss://", 6) != 0)
		return DA_ERROR(err, DA_EINPUT, "the Stream endpoint is not a "
		    "wss:// URL");
	host = url + 6;
	end = host + strcspn(host, "/?#");
	if (*host == '[') {	/* [IPv6]:port */
		if ((p = memchr(host, ']', (size_t)(end - host))) == NULL)
			return DA_ERROR(err, DA_EINPUT, "bad host in the Stream "
			    "endpoint");
		colon = p + 1 < end && p[1] == ':' ? p + 1 : NULL;
		host++;
		hlen = (size_t)(p - host);
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		hlen = (size_t)((colon != NULL ? colon : end) - host);
	}
	if (hlen == 0 || hlen >= sizeof(u->host))
		return DA_ERROR(err, DA_EINPUT, "bad host in the Stream endpoint");
	memcpy(u->host, host, hlen);
	snprintf(u->port, sizeof(u->port), "443");
	if (colon != NULL) {
		errno = 0;
		port = strtol(colon + 1, &e, 10);
		if (e != end || e == colon + 1 || port < 1 || port > 65535)
			return DA_ERROR(err, DA_EINPUT, "bad port in the Stream "
			    "endpoint");
		snprintf(u->port, sizeof(u->port), "%ld", port);
	}
	if (*end == '#')
		return DA_ERROR(err, DA_EINPUT, "a fragment in the Stream "
		    "endpoint");
	u->target = *end == '/' ? xstrdup(end) : xasprintf("/%s", end);
	if (strpbrk(u->target, " \r\n\t") != NULL || strchr(u->target, '#')) {
		free(u->target);
		u->target = NULL;
		return DA_ERROR(err, DA_EINPUT, "bad path in the Stream endpoint");
	}
	return DA_OK;
}

/* Wait for events on fd until deadline: >0 ready, 0 timed out, -1 error. */
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd	 p;
	long long	 left;
	int		 n;

	for (;;) {
		if ((left = deadline - mono_ms()) <= 0)
			return 0;
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* A non-blocking TCP connection to host:port before deadline. */
static enum da_err
tcp_connect(const struct ws_url *u, long long deadline, int *out,
    struct da_error *err)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	enum da_err	 rc = DA_EHTTP;
	socklen_t	 len;
	int		 fd = -1, gai, soerr = 0, one = 1, w;

	*out = -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
		rc = DA_ERROR(err, DA_EHTTP, "Stream endpoint %s: %s", u->host,
		    gai_strerror(gai));
		goto out;
	}
	DA_ERROR(err, DA_EHTTP, "Stream endpoint %s: no address", u->host);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS &&
		    (w = wait_fd(fd, POLLOUT, deadline)) > 0 &&
		    (len = sizeof(soerr), getsockopt(fd, SOL_SOCKET, SO_ERROR,
		    &soerr, &len)) == 0 && soerr == 0)) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one,
			    sizeof(one));
			*out = fd;
			rc = DA_OK;
			goto out;
		}
		if (mono_ms() >= deadline) {
			rc = DA_ERROR(err, DA_ETIMEOUT, "Stream endpoint %s:%s: "
			    "connect timed out", u->host, u->port);
			close(fd);
			goto out;
		}
		DA_ERROR(err, DA_EHTTP, "Stream endpoint %s:%s: %s", u->host,
		    u->port, strerror(soerr != 0 ? soerr : errno));
		close(fd);
		fd = -1;
	}
out:
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

/* The process's TLS settings, made once: verification always on. */
static SSL_CTX *
tls_context(struct da_error *err)
{
	static SSL_CTX	*ctx;
	const char	*ca = config_str(CFG_CA_FILE);

	if (ctx != NULL)
		return ctx;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if ((*ca != '\0' ? SSL_CTX_load_verify_locations(ctx, ca, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx)) != 1)
		goto fail;
	return ctx;
fail:
	DA_ERROR(err, DA_EHTTP, "TLS set-up%s%s: %s", *ca ? " with " : "", ca,
	    ERR_reason_error_string(ERR_get_error()) ?
	    ERR_reason_error_string(ERR_get_error()) : "failed");
	SSL_CTX_free(ctx);
	ctx = NULL;
	return NULL;
}

/* Why the TLS handshake failed, in words. */
static void
tls_failure(SSL *ssl, const char *host, struct da_error *err)
{
	unsigned long	 e = ERR_get_error();
	long		 v = SSL_get_verify_result(ssl);

	if (v != X509_V_OK)
		DA_ERROR(err, DA_EHTTP, "TLS to %s: certificate not trusted: %s",
		    host, X509_verify_cert_error_string(v));
	else
		DA_ERROR(err, DA_EHTTP, "TLS to %s: %s", host, e != 0 ?
		    ERR_reason_error_string(e) : "the handshake failed");
	ERR_clear_error();
}

/* TLS on fd, the peer verified as host (a name, or an IP address). */
static enum da_err
tls_connect(struct ws *ws, const struct ws_url *u, long long deadline,
    struct da_error *err)
{
	unsigned char	 addr[16];
	SSL_CTX		*ctx;
	int		 r, e, w, is_ip;

	if ((ctx = tls_context(err)) == NULL)
		return DA_EHTTP;
	if ((ws->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ws->ssl, ws->fd) != 1)
		return DA_ERROR(err, DA_EHTTP, "TLS: cannot make a session");
	is_ip = inet_pton(AF_INET, u->host, addr) == 1 ||
	    inet_pton(AF_INET6, u->host, addr) == 1;
	if (is_ip)
		r = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ws->ssl),
		    u->host);
	else
		r = SSL_set_tlsext_host_name(ws->ssl, u->host) == 1 &&
		    SSL_set1_host(ws->ssl, u->host) == 1;
	if (r != 1)
		return DA_ERROR(err, DA_EHTTP, "TLS: cannot check host %s",
		    u->host);
	ERR_clear_error();
	while ((r = SSL_connect(ws->ssl)) != 1) {
		e = SSL_get_error(ws->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			tls_failure(ws->ssl, u->host, err);
			return DA_EHTTP;
		}
		w = wait_fd(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    deadline);
		if (w == 0)
			return DA_ERROR(err, DA_ETIMEOUT, "TLS to %s timed out",
			    u->host);
		if (w < 0)
			return DA_ERROR(err, DA_EHTTP, "TLS to %s: %s", u->host,
			    strerror(errno));
	}
	return DA_OK;
}

/* Write all of buf over TLS before deadline. */
static enum da_err
tls_write_all(struct ws *ws, const char *buf, size_t len, long long deadline,
    struct da_error *err)
{
	size_t	 done = 0;
	int	 r, e;

	while (done < len) {
		if ((r = SSL_write(ws->ssl, buf + done, (int)(len - done))) > 0) {
			done += (size_t)r;
			continue;
		}
		e = SSL_get_error(ws->ssl, r);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    wait_fd(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    deadline) <= 0)
			return DA_ERROR(err, DA_EHTTP, "sending the WebSocket "
			    "upgrade failed");
	}
	return DA_OK;
}

/* A header's value in the answer head (NUL-terminated lines), or NULL. */
static const char *
header_value(const char *head, const char *name, char *buf, size_t size)
{
	const char	*line, *v, *eol;
	size_t		 n = strlen(name), vl;

	for (line = strstr(head, "\r\n"); line != NULL;
	    line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, n) != 0 || line[n] != ':')
			continue;
		v = line + n + 1;
		v += strspn(v, " \t");
		eol = strstr(v, "\r\n");
		vl = eol != NULL ? (size_t)(eol - v) : strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (vl >= size)
			return NULL;
		memcpy(buf, v, vl);
		buf[vl] = '\0';
		return buf;
	}
	return NULL;
}

/* Does the comma-separated list hold token (any case)? */
static int
list_has(const char *list, const char *token)
{
	size_t	 n = strlen(token), l;

	while (*list != '\0') {
		list += strspn(list, " \t,");
		l = strcspn(list, ",");
		while (l > 0 && (list[l - 1] == ' ' || list[l - 1] == '\t'))
			l--;
		if (l == n && strncasecmp(list, token, n) == 0)
			return 1;
		list += strcspn(list, ",");
	}
	return 0;
}

/*
 * Read the upgrade answer's head (up to the blank line) into head, NUL
 * terminated; *have is every byte read, which may run past the head.
 */
static enum da_err
read_head(struct ws *ws, char *head, size_t *have, long long deadline,
    struct da_error *err)
{
	int	 r, e, w;

	for (;;) {
		head[*have] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			return DA_OK;
		if (*have >= WS_HANDSHAKE_MAX)
			return DA_ERROR(err, DA_EHTTP, "the WebSocket upgrade's "
			    "answer is over %d bytes", WS_HANDSHAKE_MAX);
		if ((r = SSL_read(ws->ssl, head + *have,
		    (int)(WS_HANDSHAKE_MAX - *have))) > 0) {
			if (memchr(head + *have, '\0', (size_t)r) != NULL)
				return DA_ERROR(err, DA_EHTTP, "a NUL byte in "
				    "the WebSocket upgrade's answer");
			*have += (size_t)r;
			continue;
		}
		e = SSL_get_error(ws->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return DA_ERROR(err, DA_EHTTP, "the Stream endpoint "
			    "closed the link during the WebSocket upgrade");
		if ((w = wait_fd(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN :
		    POLLOUT, deadline)) <= 0)
			return DA_ERROR(err, w == 0 ? DA_ETIMEOUT : DA_EHTTP,
			    "the WebSocket upgrade %s", w == 0 ? "timed out" :
			    "failed");
	}
}

/*
 * The answer's head (each line ending in CRLF) is a 101 with Upgrade:
 * websocket, Connection: upgrade and the Sec-WebSocket-Accept of key.
 */
static enum da_err
check_answer(char *head, const char *key, struct da_error *err)
{
	unsigned char	 md[20];
	char		 value[128], *want = NULL, *accept_in = NULL;
	enum da_err	 rc;

	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		head[strcspn(head, "\r\n")] = '\0';
		return DA_ERROR(err, DA_EHTTP, "the Stream endpoint refused "
		    "the WebSocket upgrade: %.80s", head);
	}
	want = xasprintf("%s" WS_GUID, key);
	crypto_sha1(want, strlen(want), md);
	accept_in = crypto_base64_encode(md, sizeof(md));
	if (header_value(head, "Upgrade", value, sizeof(value)) == NULL ||
	    strcasecmp(value, "websocket") != 0 ||
	    header_value(head, "Connection", value, sizeof(value)) == NULL ||
	    !list_has(value, "upgrade") ||
	    header_value(head, "Sec-WebSocket-Accept", value,
	    sizeof(value)) == NULL || strcmp(value, accept_in) != 0)
		rc = DA_ERROR(err, DA_EHTTP, "the Stream endpoint's WebSocket "
		    "upgrade answer is not valid (Upgrade, Connection or "
		    "Sec-WebSocket-Accept)");
	else
		rc = DA_OK;
	free(want);
	free(accept_in);
	return rc;
}

/*
 * The RFC 6455 upgrade: our key, the server's 101 with the matching
 * Sec-WebSocket-Accept. Bytes read past the answer's head are kept for
 * the framing.
 */
static enum da_err
upgrade(struct ws *ws, const struct ws_url *u, long long deadline,
    struct da_error *err)
{
	unsigned char	 nonce[16];
	char		 head[WS_HANDSHAKE_MAX + 1], *key = NULL;
	char		*req = NULL, *end;
	const char	*hostport;
	size_t		 have = 0, n;
	enum da_err	 rc;

	crypto_random(nonce, sizeof(nonce));
	key = crypto_base64_encode(nonce, sizeof(nonce));
	hostport = strcmp(u->port, "443") == 0 ? "" : u->port;
	req = xasprintf("GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	    "User-Agent: dingauth/%s\r\n\r\n", u->target,
	    strchr(u->host, ':') ? "[" : "", u->host,
	    strchr(u->host, ':') ? "]" : "", *hostport ? ":" : "", hostport,
	    key, version_string());
	if ((rc = tls_write_all(ws, req, strlen(req), deadline, err)) != DA_OK ||
	    (rc = read_head(ws, head, &have, deadline, err)) != DA_OK)
		goto out;
	end = strstr(head, "\r\n\r\n");
	n = (size_t)(end + 4 - head);
	if (have > n) {
		ws->nearly = have - n;
		ws->early = xmalloc(ws->nearly);
		memcpy(ws->early, head + n, ws->nearly);
	}
	end[2] = '\0';	/* the head, each line ending in CRLF */
	rc = check_answer(head, key, err);
out:
	free(key);
	free(req);
	return rc;
}

/* wslay's I/O: bytes left from the upgrade first, then TLS. */
static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct ws	*ws = user;
	size_t		 n;
	int		 r, e;

	(void)flags;
	if (ws->stop) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (ws->early_off < ws->nearly) {
		n = ws->nearly - ws->early_off;
		if (n > len)
			n = len;
		memcpy(buf, ws->early + ws->early_off, n);
		ws->early_off += n;
		return (ssize_t)n;
	}
	if ((r = SSL_read(ws->ssl, buf, len > INT32_MAX ? INT32_MAX :
	    (int)len)) > 0)
		return r;
	e = SSL_get_error(ws->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else {
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL &&
		    (r == 0 || errno == ECONNRESET || errno == EPIPE)) ||
		    e == SSL_ERROR_SSL)
			ws->eof = 1;
		else
			ws->io_error = 1;
		ERR_clear_error();
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct ws	*ws = user;
	int		 r, e;

	(void)flags;
	if ((r = SSL_write(ws->ssl, data, len > INT32_MAX ? INT32_MAX :
	    (int)len)) > 0)
		return r;
	e = SSL_get_error(ws->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else {
		ws->io_error = 1;
		ERR_clear_error();
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static int
genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	crypto_random(buf, len);
	return 0;
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg
    *m, void *user)
{
	struct ws	*ws = user;

	(void)ctx;
	ws->last_frame = mono_ms();
	if (m->opcode != WSLAY_TEXT_FRAME || ws->fn == NULL || ws->stop)
		return;		/* pings, pongs, close: wslay's; binary: none */
	if (ws->fn((const char *)m->msg, m->msg_length, ws->arg) != 0)
		ws->stop = 1;
}

enum da_err
ws_connect(const char *url, long timeout_ms, struct ws **out,
    struct da_error *err)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.genmask_callback = genmask_cb,
		.on_msg_recv_callback = msg_cb,
	};
	struct ws_url	 u;
	struct ws	*ws;
	long long	 deadline = mono_ms() + timeout_ms;
	enum da_err	 rc;

	*out = NULL;
	ws = xcalloc(1, sizeof(*ws));
	ws->fd = -1;
	if ((rc = parse_url(url, &u, err)) != DA_OK ||
	    (rc = tcp_connect(&u, deadline, &ws->fd, err)) != DA_OK ||
	    (rc = tls_connect(ws, &u, deadline, err)) != DA_OK ||
	    (rc = upgrade(ws, &u, deadline, err)) != DA_OK)
		goto out;
	if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0)
		abort();	/* out of memory */
	wslay_event_config_set_max_recv_msg_length(ws->ctx, WS_MESSAGE_MAX);
	ws->last_frame = mono_ms();
	*out = ws;
out:
	free(u.target);
	if (rc != DA_OK)
		ws_free(ws);
	return rc;
}

int
ws_fd(const struct ws *ws)
{
	return ws->fd;
}

short
ws_want(const struct ws *ws)
{
	short	 ev = 0;

	if (wslay_event_want_read(ws->ctx))
		ev |= POLLIN;
	if (wslay_event_want_write(ws->ctx))
		ev |= POLLOUT;
	return ev;
}

/* How the link ended, in err. */
static enum da_err
ended(struct ws *ws, const char *how, struct da_error *err)
{
	uint16_t	 code;

	if (wslay_event_get_close_received(ws->ctx)) {
		code = wslay_event_get_status_code_received(ws->ctx);
		return DA_ERROR(err, DA_EHTTP, "the Stream server closed the "
		    "link (code %u)", (unsigned)code);
	}
	if (ws->eof)
		return DA_ERROR(err, DA_EHTTP, "the Stream link was cut");
	return DA_ERROR(err, DA_EHTTP, "the Stream link failed: %s", how);
}

/* Send what is queued, as far as the socket takes it. */
static enum da_err
flush(struct ws *ws, struct da_error *err)
{
	if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
		return ended(ws, "sending", err);
	return DA_OK;
}

enum da_err
ws_service(struct ws *ws, ws_text_fn fn, void *arg, struct da_error *err)
{
	enum da_err	 rc = DA_OK;

	ws->fn = fn;
	ws->arg = arg;
	ws->stop = 0;
	if (wslay_event_want_read(ws->ctx) && wslay_event_recv(ws->ctx) != 0 &&
	    !ws->stop) {
		rc = ended(ws, wslay_event_get_status_code_sent(ws->ctx) ==
		    WSLAY_CODE_MESSAGE_TOO_BIG ? "a message over the size cap" :
		    "a protocol error", err);
		goto out;
	}
	if ((rc = flush(ws, err)) != DA_OK)
		goto out;
	if (ws_closed(ws))
		rc = ended(ws, "closed", err);
out:
	ws->fn = NULL;
	ws->arg = NULL;
	return rc;
}

enum da_err
ws_send_text(struct ws *ws, const char *text, size_t len,
    struct da_error *err)
{
	struct wslay_event_msg	 m = { WSLAY_TEXT_FRAME,
	    (const uint8_t *)text, len };

	if (wslay_event_queue_msg(ws->ctx, &m) != 0)
		return DA_ERROR(err, DA_EHTTP, "the Stream link can no longer "
		    "send");
	return flush(ws, err);
}

enum da_err
ws_ping(struct ws *ws, struct da_error *err)
{
	struct wslay_event_msg	 m = { WSLAY_PING, (const uint8_t *)"", 0 };

	if (wslay_event_queue_msg(ws->ctx, &m) != 0)
		return DA_ERROR(err, DA_EHTTP, "the Stream link can no longer "
		    "send");
	return flush(ws, err);
}

enum da_err
ws_close(struct ws *ws, int code, struct da_error *err)
{
	if (wslay_event_get_close_sent(ws->ctx))
		return DA_OK;
	if (wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0) != 0)
		return DA_ERROR(err, DA_EHTTP, "the Stream link can no longer "
		    "send");
	return flush(ws, err);
}

int
ws_closed(const struct ws *ws)
{
	return ws->eof || ws->io_error ||
	    (wslay_event_get_close_sent(ws->ctx) &&
	    wslay_event_get_close_received(ws->ctx)) ||
	    (!wslay_event_get_read_enabled(ws->ctx) &&
	    !wslay_event_want_write(ws->ctx));
}

long long
ws_last_frame(const struct ws *ws)
{
	return ws->last_frame;
}

void
ws_free(struct ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->ctx != NULL)
		wslay_event_context_free(ws->ctx);
	if (ws->ssl != NULL) {
		SSL_set_quiet_shutdown(ws->ssl, 1);
		SSL_free(ws->ssl);
	}
	if (ws->fd != -1)
		close(ws->fd);
	free(ws->early);
	free(ws);
}
