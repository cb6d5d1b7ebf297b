/*
 * Shared counters in a mapped file: see metrics.h.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

#define MAGIC		0x64614d4554524331ULL	/* layout 1 */
#define SLOTS		1024		/* series, all families */
#define BUCKETS		9		/* the bounds below and +Inf */
#define SPINS		10000		/* waits for a slot being claimed */

enum slot_state { SLOT_EMPTY, SLOT_CLAIMED, SLOT_READY };

/* One series. Only count, sum_us and bucket change once it is READY. */
struct slot {
	uint32_t	 state;
	uint32_t	 family;
	char		 labels[METRICS_LABELS_MAX];
	uint64_t	 count;
	uint64_t	 sum_us;
	uint64_t	 bucket[BUCKETS];	/* not cumulative */
};

struct table {
	uint64_t	 magic;
	uint64_t	 nslots;
	struct slot	 slot[SLOTS];
};

/* Histogram bounds, seconds: a DingTalk call takes 20 ms to seconds. */
static const double bounds[BUCKETS - 1] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const struct family_def {
	const char	*name;
	const char	*help;
	const char	*histogram;	/* its _seconds name, or NULL */
} families[METRICS__MAX] = {
	[METRICS_LOGINS] = { "dingauth_logins_total",
	    "Login attempts by flow and outcome (ok or the problem).", NULL },
	[METRICS_AUTHORIZER] = { "dingauth_authorizer_decisions_total",
	    "Authorizer and auth/whoami decisions.", NULL },
	[METRICS_EVENTS] = { "dingauth_events_total",
	    "Address-book events by type and outcome.", NULL },
	[METRICS_DT_CALLS] = { "dingauth_dingtalk_calls_total",
	    "HTTP calls to DingTalk by API path and result.",
	    "dingauth_dingtalk_call_seconds" },
	[METRICS_TOKENS] = { "dingauth_token_fetches_total",
	    "Access tokens fetched from DingTalk by kind and result.", NULL },
	[METRICS_SYNCS] = { "dingauth_syncs_total",
	    "Directory sync runs by outcome.", NULL },
	[METRICS_NOTIFICATIONS] = { "dingauth_notifications_total",
	    "Review notifications by result.", NULL },
};

static struct {
	int		 tried;		/* the file was looked at */
	struct table	*t;		/* NULL: not counting */
} M;

/* The mapped table, opened on first use; NULL when it cannot be. */
static struct table *
table(void)
{
	struct stat	 st;
	uint64_t	 magic = 0;
	char		 path[1100];
	void		*p = MAP_FAILED;
	int		 fd = -1;

	if (M.tried)
		return M.t;
	M.tried = 1;
	if (metrics_path(path, sizeof(path))[0] != '/')
		goto out;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0640)) == -1 || fstat(fd, &st) == -1 ||
	    ((size_t)st.st_size < sizeof(struct table) &&
	    ftruncate(fd, sizeof(struct table)) == -1) ||
	    (p = mmap(NULL, sizeof(struct table), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0)) == MAP_FAILED) {
		log_msg(LOG_WARN, "metrics: %s: %s: not counting", path,
		    strerror(errno));
		goto out;
	}
	/* A new file is all zeros: an empty table. */
	if (!__atomic_compare_exchange_n(&((struct table *)p)->magic, &magic,
	    MAGIC, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) && magic != MAGIC) {
		log_msg(LOG_WARN, "metrics: %s has another layout: not "
		    "counting (remove it to start again)", path);
		munmap(p, sizeof(struct table));
		goto out;
	}
	M.t = p;
out:
	if (fd != -1)
		close(fd);
	return M.t;
}

const char *
metrics_path(char *buf, size_t size)
{
	const char	*db = cfg()->str[CFG_DB];

	if (config_is_set(CFG_METRICS_FILE))
		snprintf(buf, size, "%s", cfg()->str[CFG_METRICS_FILE]);
	else if (db_is_server(db))
		snprintf(buf, size, "%s", METRICS_SERVER_FILE);
	else if (db[0] == '/')
		snprintf(buf, size, "%s%s", db, METRICS_SUFFIX);
	else
		buf[0] = '\0';
	return buf;
}

int
metrics_ready(void)
{
	return table() != NULL ? 0 : -1;
}

void
metrics_close(void)
{
	if (M.t != NULL)
		munmap(M.t, sizeof(struct table));
	memset(&M, 0, sizeof(M));
}

/*
 * The series of family and labels: found by FNV-1a and linear probing,
 * or claimed (compare-and-swap EMPTY to CLAIMED, fill, READY). NULL when
 * the table is full or the labels too long.
 */
static struct slot *
series(struct table *t, enum metrics_family family, const char *labels)
{
	struct slot	*s;
	uint64_t	 h = 1469598103934665603ULL;
	uint32_t	 state, want;
	size_t		 i, len = strlen(labels);
	const char	*c;
	int		 spins;

	if (len >= METRICS_LABELS_MAX)
		return NULL;
	h = (h ^ (uint64_t)family) * 1099511628211ULL;
	for (c = labels; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	for (i = 0; i < SLOTS; i++) {
		s = &t->slot[(h + i) % SLOTS];
		state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (state == SLOT_EMPTY) {
			want = SLOT_EMPTY;
			if (__atomic_compare_exchange_n(&s->state, &want,
			    SLOT_CLAIMED, 0, __ATOMIC_ACQ_REL,
			    __ATOMIC_ACQUIRE)) {
				s->family = family;
				memcpy(s->labels, labels, len + 1);
				__atomic_store_n(&s->state, SLOT_READY,
				    __ATOMIC_RELEASE);
				return s;
			}
			state = want;
		}
		/* Another process is filling it in (or died doing so). */
		for (spins = 0; state == SLOT_CLAIMED && spins < SPINS;
		    spins++) {
			sched_yield();
			state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		}
		if (state == SLOT_READY && s->family == (uint32_t)family &&
		    strcmp(s->labels, labels) == 0)
			return s;
	}
	return NULL;
}

void
metrics_count(enum metrics_family family, const char *labels)
{
	struct table	*t;
	struct slot	*s;

	if ((t = table()) != NULL && (s = series(t, family, labels)) != NULL)
		__atomic_fetch_add(&s->count, 1, __ATOMIC_RELAXED);
}

void
metrics_observe(enum metrics_family family, const char *labels,
    double seconds)
{
	struct table	*t;
	struct slot	*s;
	size_t		 b;

	if ((t = table()) == NULL || (s = series(t, family, labels)) == NULL)
		return;
	for (b = 0; b < BUCKETS - 1 && seconds > bounds[b]; b++)
		continue;
	__atomic_fetch_add(&s->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum_us, (uint64_t)(seconds > 0 ?
	    seconds * 1e6 : 0), __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->count, 1, __ATOMIC_RELAXED);
}

static int
by_labels(const void *a, const void *b)
{
	const struct slot *const	*x = a, *const *y = b;

	return strcmp((*x)->labels, (*y)->labels);
}

/* name{labels,extra} value: the braces only when there is a label. */
static void
sample(struct buf *out, const char *name, const char *suffix,
    const char *labels, const char *extra, const char *value)
{
	const char	*sep = *labels != '\0' && *extra != '\0' ? "," : "";

	if (*labels == '\0' && *extra == '\0')
		buf_printf(out, "%s%s %s\n", name, suffix, value);
	else
		buf_printf(out, "%s%s{%s%s%s} %s\n", name, suffix, labels,
		    sep, extra, value);
}

static void
write_histogram(struct buf *out, const char *name, struct slot **s,
    size_t n)
{
	char		 le[32], v[32];
	uint64_t	 cum;
	size_t		 i, b;

	buf_printf(out, "# HELP %s Latency of DingTalk calls.\n"
	    "# TYPE %s histogram\n", name, name);
	for (i = 0; i < n; i++) {
		cum = 0;
		for (b = 0; b < BUCKETS; b++) {
			cum += __atomic_load_n(&s[i]->bucket[b],
			    __ATOMIC_RELAXED);
			if (b < BUCKETS - 1)
				snprintf(le, sizeof(le), "le=\"%g\"",
				    bounds[b]);
			else
				snprintf(le, sizeof(le), "le=\"+Inf\"");
			snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
			sample(out, name, "_bucket", s[i]->labels, le, v);
		}
		snprintf(v, sizeof(v), "%.6f", (double)__atomic_load_n(
		    &s[i]->sum_us, __ATOMIC_RELAXED) / 1e6);
		sample(out, name, "_sum", s[i]->labels, "", v);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
		sample(out, name, "_count", s[i]->labels, "", v);
	}
}

void
metrics_write(struct buf *out)
{
	struct table	*t = table();
	struct slot	*s[SLOTS];
	char		 v[32];
	size_t		 n, i;
	int		 f;

	for (f = 0; f < METRICS__MAX; f++) {
		n = 0;
		for (i = 0; t != NULL && i < SLOTS; i++)
			if (__atomic_load_n(&t->slot[i].state,
			    __ATOMIC_ACQUIRE) == SLOT_READY &&
			    t->slot[i].family == (uint32_t)f)
				s[n++] = &t->slot[i];
		qsort(s, n, sizeof(s[0]), by_labels);
		buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n",
		    families[f].name, families[f].help, families[f].name);
		for (i = 0; i < n; i++) {
			snprintf(v, sizeof(v), "%llu", (unsigned long long)
			    __atomic_load_n(&s[i]->count, __ATOMIC_RELAXED));
			sample(out, families[f].name, "", s[i]->labels, "", v);
		}
		if (families[f].histogram != NULL)
			write_histogram(out, families[f].histogram, s, n);
	}
}
