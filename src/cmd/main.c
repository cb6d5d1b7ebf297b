/*
 * dingauth COMMAND [options]: the operator's command.
 */
#define _GNU_SOURCE		/* fopencookie: the escaping output streams */

#include <sys/stat.h>

#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cmd.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "prog.h"
#include "version.h"

#define OPT_VAL	0x100	/* getopt_long value of option o is this + o */

_Static_assert(OPT__MAX <= 32, "masks of options are unsigned long");

static const struct option_def {
	const char	*name;
	int		 value;		/* takes a value */
	int		 once;		/* given twice is a usage error */
} option_defs[OPT__MAX] = {
	[OPT_JSON] = { "json", 0, 0 },
	[OPT_ALL] = { "all", 0, 0 },
	[OPT_ACTIVE] = { "active", 0, 0 },
	[OPT_USER] = { "user", 1, 0 },
	[OPT_PENDING] = { "pending", 0, 0 },
	[OPT_LIMIT] = { "limit", 1, 0 },
	[OPT_DRY_RUN] = { "dry-run", 0, 0 },
	[OPT_FORCE] = { "force", 0, 0 },
	[OPT_URL] = { "url", 1, 0 },
	[OPT_TAGS] = { "tags", 1, 0 },
	[OPT_APPLY] = { "apply", 0, 0 },
	[OPT_TOKEN] = { "token", 1, 1 },
	[OPT_AES_KEY] = { "aes-key", 1, 1 },
	[OPT_RECEIVER] = { "receiver", 1, 1 },
	[OPT_SIGNATURE] = { "signature", 1, 1 },
	[OPT_TIMESTAMP] = { "timestamp", 1, 1 },
	[OPT_NONCE] = { "nonce", 1, 1 },
	[OPT_ENCRYPT] = { "encrypt", 1, 1 },
	[OPT_QUERY] = { "query", 1, 1 },
	[OPT_BODY] = { "body", 1, 1 },
	[OPT_RANDOM] = { "random", 1, 1 },
	[OPT_CONFIG] = { "config", 1, 1 },
	[OPT_DB] = { "db", 1, 1 },
	[OPT_GROUP] = { "group", 1, 1 },
	[OPT_OWNER] = { "owner", 1, 1 },
	[OPT_ONCE] = { "once", 0, 0 },
	[OPT_FAILED] = { "failed", 0, 0 },
	[OPT_SINCE] = { "since", 1, 1 },
};

static const struct command {
	const char	*name;
	int		(*run)(int, char **);
	const char	*summary;
} commands[] = {
	{ "sync", cmd_sync, "copy the company directory from DingTalk (--dry-run)" },
	{ "users", cmd_users, "list|show|approve|disable|enable directory users" },
	{ "requests", cmd_requests, "list|approve|reject logins awaiting review" },
	{ "sessions", cmd_sessions, "list|revoke sessions" },
	{ "callback", cmd_callback, "register|update|show|delete|failed the DingTalk callback" },
	{ "events", cmd_events, "list|retry stored callback events" },
	{ "audit", cmd_audit, "the audit trail: logins, sign-outs, offboardings, syncs, operator actions" },
	{ "worker", cmd_worker, "the background process: events, daily sync, pruning (--once)" },
	{ "token", cmd_token, "show|refresh cached DingTalk access tokens" },
	{ "crypto", cmd_crypto, "decrypt|encrypt|sign callback envelopes" },
	{ "doctor", cmd_doctor, "check configuration, database, DingTalk, clock" },
	{ "init", cmd_init, "write a configuration with fresh keys; create the database" },
};

static void
usage(FILE *f)
{
	size_t	 i;

	fprintf(f, "usage: dingauth COMMAND [options]\n"
	    "       dingauth --version\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
		    commands[i].summary);
	fprintf(f, "\n'dingauth COMMAND --help' describes each command.\n"
	    "Configuration: the file named by DINGAUTH_CONFIG "
	    "(default /etc/dingauth.conf) and environment variables.\n");
}

static void	say(const char *, va_list) __attribute__((format(printf, 1, 0)));

/* "dingauth: message" on stderr. */
static void
say(const char *fmt, va_list ap)
{
	fputs("dingauth: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
}

int
cmd_usage(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

int
cmd_fail(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

int
cmd_wants_help(int argc, char **argv)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int
cmd_open(unsigned needs, struct db **db)
{
	struct da_error	 err = { 0 };
	char		 shown[1024];

	if (config_start(needs, &err) != DA_OK)
		return cmd_fail("configuration: %s", err.msg);
	if (db == NULL)
		return EXIT_OK;
	if (db_open(cfg()->str[CFG_DB], db, &err) != DA_OK)
		return cmd_fail("database %s: %s", db_redact(cfg()->str[CFG_DB],
		    shown, sizeof(shown)), err.msg);
	return EXIT_OK;
}

/* "operator NAME": who ran the command (through sudo: who ran sudo). */
static const char *
operator_name(void)
{
	static char	 name[96];
	struct passwd	*pw;
	const char	*who = getenv("SUDO_USER");

	if (who == NULL || *who == '\0')
		who = (pw = getpwuid(getuid())) != NULL ? pw->pw_name : NULL;
	if (who != NULL)
		snprintf(name, sizeof(name), "operator %s", who);
	else
		snprintf(name, sizeof(name), "operator uid %ld",
		    (long)getuid());
	return name;
}

static void
operator_entry(struct audit_entry *a, int event, const char *userid,
    const char *detail)
{
	memset(a, 0, sizeof(*a));
	a->event = (enum audit_event)event;
	a->userid = userid;
	a->outcome = "ok";
	a->source = operator_name();
	a->detail = detail;
}

enum da_err
cmd_audit_record(struct db *db, int event, const char *userid,
    const char *detail, struct da_error *err)
{
	struct audit_entry	 a;

	operator_entry(&a, event, userid, detail);
	return audit_record(db, &a, err);
}

void
cmd_audit_log(int event, const char *userid, const char *detail)
{
	struct audit_entry	 a;

	operator_entry(&a, event, userid, detail);
	audit_log(LOG_INFO, &a);
}

const char *
cmd_option_name(enum cmd_opt o)
{
	return (unsigned)o < OPT__MAX ? option_defs[o].name : "";
}

int
cmd_run(const struct cmd_group *g, const struct cmd_sub *sub, int argc,
    char **argv)
{
	struct option	 opts[OPT__MAX + 1];
	struct cmd_args	 a;
	char		 what[64];
	int		 o, c, n = 0;

	if (cmd_wants_help(argc, argv)) {
		fputs(sub->usage != NULL ? sub->usage : g->usage, stdout);
		return EXIT_OK;
	}
	snprintf(what, sizeof(what), "%s%s%s", g->name,
	    sub->name != NULL ? " " : "", sub->name != NULL ? sub->name : "");
	memset(&a, 0, sizeof(a));
	memset(opts, 0, sizeof(opts));
	for (o = 0; o < OPT__MAX; o++) {
		if (!(sub->opts & CMD_OPT(o)))
			continue;
		opts[n].name = option_defs[o].name;
		opts[n].has_arg = option_defs[o].value ? required_argument :
		    no_argument;
		opts[n].val = OPT_VAL + o;
		n++;
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return cmd_usage("%s: %s needs a value (see --help)",
			    what, argv[optind - 1]);
		if (c < OPT_VAL || c >= OPT_VAL + OPT__MAX)
			return cmd_usage("%s: unknown option %s (see --help)",
			    what, argv[optind - 1]);
		o = c - OPT_VAL;
		if (option_defs[o].once && a.opt[o] != NULL)
			return cmd_usage("%s: --%s given twice", what,
			    option_defs[o].name);
		a.opt[o] = optarg != NULL ? optarg : "";
	}
	a.argv = argv + optind;
	a.argc = argc - optind;
	if (sub->operands != CMD_OPERANDS_ANY && a.argc > sub->operands)
		return cmd_usage("%s: unexpected argument '%s' (see --help)",
		    what, a.argv[sub->operands]);
	return sub->run(sub, &a);
}

int
cmd_dispatch(const struct cmd_group *g, int argc, char **argv)
{
	int	 i;

	if (g->bare != NULL && (argc < 2 || (argv[1][0] == '-' &&
	    strcmp(argv[1], "-h") != 0 && strcmp(argv[1], "--help") != 0)))
		return cmd_run(g, g->bare, argc, argv);
	if (argc < 2) {
		fputs(g->usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(g->usage, stdout);
		return EXIT_OK;
	}
	for (i = 0; i < g->nsubs; i++)
		if (strcmp(argv[1], g->subs[i].name) == 0)
			return cmd_run(g, &g->subs[i], argc - 1, argv + 1);
	cmd_usage("%s: unknown subcommand '%s'", g->name, argv[1]);
	fputs(g->usage, stderr);
	return EXIT_USAGE;
}

/*
 * Everything dingauth prints on stdout and stderr passes through an escaping
 * stream: names
 * come from DingTalk and from people's own nicknames, and a terminal
 * obeys the control characters in them (sequences that retitle,
 * recolour or rewrite what the operator sees). Every C0 control but
 * newline and tab, DEL, and the C1 controls (U+0080..U+009F, bytes C2
 * 80..9F in UTF-8) go out as "\u00XX", which JSON output reads back as
 * the same character. cmd_line escapes newline and tab too, for a value
 * inside a line.
 */
struct escaper {
	FILE	*to;
	int	 lead;		/* a C2 byte held back */
};

static struct escaper	 esc_out, esc_err;
static FILE		*raw_stderr;

static void
escape_byte(struct escaper *e, unsigned char c)
{
	if (e->lead) {
		e->lead = 0;
		if (c >= 0x80 && c <= 0x9f) {
			fprintf(e->to, "\\u%04x", c);
			return;
		}
		fputc(0xc2, e->to);
	}
	if (c == 0xc2)
		e->lead = 1;
	else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
		fprintf(e->to, "\\u%04x", c);
	else
		fputc(c, e->to);
}

static ssize_t
escape_write(void *cookie, const char *buf, size_t size)
{
	struct escaper	*e = cookie;
	size_t		 i;

	for (i = 0; i < size; i++)
		escape_byte(e, (unsigned char)buf[i]);
	fflush(e->to);
	return (ssize_t)size;
}

static int
escape_close(void *cookie)
{
	struct escaper	*e = cookie;

	if (e->lead)
		fputc(0xc2, e->to);
	e->lead = 0;
	return fflush(e->to);
}

/*
 * stdout and stderr through the escaper; each unchanged if that fails.
 * The sync's progress line, our own control sequences, goes to the raw
 * stderr (cmd_progress_stream).
 */
static void
escape_output(void)
{
	cookie_io_functions_t	 io = { NULL, escape_write, NULL,
				    escape_close };
	FILE			*f;

	esc_out.to = stdout;
	if ((f = fopencookie(&esc_out, "w", io)) != NULL)
		stdout = f;
	raw_stderr = stderr;
	esc_err.to = stderr;
	if ((f = fopencookie(&esc_err, "w", io)) != NULL) {
		setvbuf(f, NULL, _IONBF, 0);
		stderr = f;
	}
}

FILE *
cmd_progress_stream(void)
{
	return raw_stderr != NULL ? raw_stderr : stderr;
}

const char *
cmd_line(const char *s, char *buf, size_t size)
{
	size_t		 n = 0;
	const char	*p;
	int		 w;

	for (p = s; *p != '\0' && n + 1 < size; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r') {
			w = snprintf(buf + n, size - n, "\\u%04x",
			    (unsigned)*p);
			if (w < 0 || (size_t)w >= size - n)
				break;
			n += (size_t)w;
		} else
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return buf;
}

void
cmd_print_json(const json *doc)
{
	char	*text = json_print(doc);

	printf("%s\n", text);
	free(text);
}

void
cmd_list_begin(struct cmd_list *l, int as_json)
{
	memset(l, 0, sizeof(*l));
	l->as_json = as_json;
	if (as_json)
		printf("[");
}

void
cmd_list_item(const struct cmd_list *l, json *item)
{
	char	*text = json_print(item);

	printf("%s%s", l->n ? ",\n" : "\n", text);
	free(text);
	json_free(item);
}

void
cmd_list_end(const struct cmd_list *l)
{
	if (l->as_json)
		printf("%s]\n", l->n ? "\n" : "");
	else if (l->table.ncols > 0)
		cmd_table_end((struct cmd_table *)&l->table);
}

const char *
cmd_time(long long t, char *buf, size_t size)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

void
cmd_json_time(json *obj, const char *key, long long t)
{
	char	 buf[32];

	if (t <= 0)
		json_add_null(obj, key);
	else
		json_add_str(obj, key, cmd_time(t, buf, sizeof(buf)));
}

/* The terminal columns of UTF-8 text s: wide East Asian characters 2. */
static size_t
text_width(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	unsigned long		 c;
	size_t			 w = 0;

	while (*p != '\0') {
		c = *p;
		if (c >= 0xf0 && p[1] && p[2] && p[3]) {
			c = (c & 0x07) << 18 | (p[1] & 0x3ful) << 12 |
			    (p[2] & 0x3ful) << 6 | (p[3] & 0x3ful);
			p += 4;
		} else if (c >= 0xe0 && p[1] && p[2]) {
			c = (c & 0x0f) << 12 | (p[1] & 0x3ful) << 6 |
			    (p[2] & 0x3ful);
			p += 3;
		} else if (c >= 0xc0 && p[1]) {
			c = (c & 0x1f) << 6 | (p[1] & 0x3ful);
			p += 2;
		} else
			p++;
		w += (c >= 0x1100 && c <= 0x115f) ||
		    (c >= 0x2e80 && c <= 0xa4cf) ||
		    (c >= 0xac00 && c <= 0xd7a3) ||
		    (c >= 0xf900 && c <= 0xfaff) ||
		    (c >= 0xfe30 && c <= 0xfe4f) ||
		    (c >= 0xff00 && c <= 0xff60) ||
		    (c >= 0xffe0 && c <= 0xffe6) ||
		    (c >= 0x20000 && c <= 0x3fffd) ? 2 : 1;
	}
	return w;
}

/* Keep a copy of s with control characters as '?'. */
static char *
cell_copy(const char *s)
{
	char	*c = xstrdup(s != NULL ? s : ""), *p;

	for (p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

static void
table_add(struct cmd_table *t, va_list ap)
{
	size_t	 i;

	if ((t->nrows + 1) * t->ncols > t->cap) {
		t->cap = t->cap ? t->cap * 2 : t->ncols * 16;
		t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] =
		    cell_copy(va_arg(ap, const char *));
	t->nrows++;
}

void
cmd_table_begin(struct cmd_table *t, size_t ncols, ...)
{
	va_list	 ap;

	memset(t, 0, sizeof(*t));
	t->ncols = ncols < CMD_TABLE_COLS ? ncols : CMD_TABLE_COLS;
	va_start(ap, ncols);
	table_add(t, ap);
	va_end(ap);
}

void
cmd_table_row(struct cmd_table *t, ...)
{
	va_list	 ap;

	va_start(ap, t);
	table_add(t, ap);
	va_end(ap);
}

void
cmd_table_end(struct cmd_table *t)
{
	size_t	 width[CMD_TABLE_COLS] = { 0 }, r, i, w;
	char	*cell;

	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++)
			if ((w = text_width(t->cells[r * t->ncols + i])) >
			    width[i])
				width[i] = w;
	for (r = 0; t->nrows > 1 && r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			cell = t->cells[r * t->ncols + i];
			if (i + 1 == t->ncols)
				printf("%s\n", cell);
			else
				printf("%s%*s", cell, (int)(width[i] -
				    text_width(cell) + 2), "");
		}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

int
main(int argc, char **argv)
{
	size_t	 i;
	int	 rc;

	version_option(argc, argv, "dingauth");
	/* What it creates (the WAL, the SHM, the worker's lock) is private. */
	umask(PROG_UMASK);
	escape_output();
	log_init("dingauth");
	log_set_level(LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		rc = commands[i].run(argc - 1, argv + 1);
		http_cleanup();
		return rc;
	}
	fprintf(stderr, "dingauth: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
