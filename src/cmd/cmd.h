#ifndef DINGAUTH_CMD_H
#define DINGAUTH_CMD_H

#include <stddef.h>

#include "err.h"
#include "json.h"

/*
 * bin/dingauth: one file per command group (cmd_crypto.c, cmd_token.c,
 * ...), each exporting one entry point listed in main.c's table.
 * An entry point gets argv starting at the group name
 * (argv[0] = "crypto", argv[1] = "decrypt", ...) and returns the exit
 * status: 0 success, 1 failure, 2 usage error. Every group and
 * subcommand answers --help on stdout with status 0.
 *
 * A group describes itself with a table of subcommands, each naming the
 * options it takes from enum cmd_opt; cmd_dispatch and cmd_run do the
 * parsing, the help and the usage errors, so a subcommand only ever sees
 * clean values.
 */

#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

/*
 * Every option of every command, one table in main.c: a subcommand takes
 * those in its mask, and an option means the same wherever it is taken.
 */
enum cmd_opt {
	OPT_JSON,		/* --json: print JSON */
	OPT_ALL,		/* --all */
	OPT_ACTIVE,		/* --active */
	OPT_USER,		/* --user USERID */
	OPT_PENDING,		/* --pending */
	OPT_LIMIT,		/* --limit N */
	OPT_DRY_RUN,		/* --dry-run */
	OPT_FORCE,		/* --force */
	OPT_URL,		/* --url URL */
	OPT_TAGS,		/* --tags TAG,... */
	OPT_APPLY,		/* --apply */
	OPT_TOKEN,		/* crypto: --token T, and so on */
	OPT_AES_KEY,
	OPT_RECEIVER,
	OPT_SIGNATURE,		/* the four values signed, in this order */
	OPT_TIMESTAMP,
	OPT_NONCE,
	OPT_ENCRYPT,
	OPT_QUERY,
	OPT_BODY,
	OPT_RANDOM,
	OPT_CONFIG,		/* init: --config FILE */
	OPT_DB,			/* init: --db FILE */
	OPT_GROUP,		/* init: --group GROUP */
	OPT_OWNER,		/* init: --owner USER */
	OPT_ONCE,		/* worker: --once */
	OPT_FAILED,		/* events: --failed */
	OPT_SINCE,		/* audit: --since WHEN */
	OPT__MAX
};

#define CMD_OPT(o)	(1ul << (o))	/* the bit of option o in a mask */
#define CMD_OPERANDS_ANY (-1)		/* the subcommand counts them */

struct db;

/* What the command line gave a subcommand. */
struct cmd_args {
	const char	*opt[OPT__MAX];	/* value of option o, "" for a flag
					   given, NULL if absent */
	char		**argv;		/* the operands, in order */
	int		 argc;
};

struct cmd_sub;
typedef int	(*cmd_fn)(const struct cmd_sub *, const struct cmd_args *);

struct cmd_sub {
	const char	*name;		/* NULL: a command alone, no group */
	cmd_fn		 run;
	unsigned long	 opts;		/* CMD_OPT()s of the options taken */
	int		 operands;	/* at most, or CMD_OPERANDS_ANY */
	unsigned	 needs;		/* CFG_NEED_* run opens with */
	int		 arg;		/* passed on to run through sub */
	const char	*usage;		/* --help text; NULL: the group's */
};

struct cmd_group {
	const char		*name;		/* "events" */
	const char		*usage;		/* the group's --help text */
	const struct cmd_sub	*subs;
	int			 nsubs;
	const struct cmd_sub	*bare;		/* run without a subcommand
						   ("dingauth events"), or
						   NULL: usage */
};

int	cmd_crypto(int argc, char **argv);
int	cmd_token(int argc, char **argv);
int	cmd_doctor(int argc, char **argv);
int	cmd_sync(int argc, char **argv);
int	cmd_users(int argc, char **argv);
int	cmd_requests(int argc, char **argv);
int	cmd_sessions(int argc, char **argv);
int	cmd_callback(int argc, char **argv);
int	cmd_events(int argc, char **argv);
int	cmd_worker(int argc, char **argv);
int	cmd_init(int argc, char **argv);
int	cmd_audit(int argc, char **argv);

/*
 * Run the subcommand argv[1] of g (argv[0] is the group's name). No
 * subcommand (nothing, or an option first) runs g->bare when the group
 * has one, else prints the group's usage on stderr (EXIT_USAGE); -h,
 * --help or help prints it on stdout (EXIT_OK); an unknown one is a
 * usage error. Otherwise as cmd_run with argv + 1.
 */
int	cmd_dispatch(const struct cmd_group *g, int argc, char **argv);
/*
 * Run sub of g with argv[0] its name (or the command's): -h or --help
 * anywhere before "--" prints its usage on stdout (EXIT_OK); then the
 * options it takes are parsed with getopt_long, and an option it does
 * not take, one without its value, one of crypto's given twice or an
 * operand too many is a usage error naming the subcommand (EXIT_USAGE).
 * Returns what sub->run returns.
 */
int	cmd_run(const struct cmd_group *g, const struct cmd_sub *sub,
	    int argc, char **argv);

/* Print "dingauth: message" to stderr and return EXIT_USAGE. */
int	cmd_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "dingauth: message" to stderr and return EXIT_FAIL. */
int	cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1 if argv[i] is -h or --help for any i >= 1 before "--". */
int	cmd_wants_help(int argc, char **argv);
/*
 * Load the configuration for needs (CFG_NEED_*), then open the database
 * (creating and migrating it) unless db is NULL. Prints the error and
 * returns EXIT_FAIL, or EXIT_OK with *db set (the caller closes it).
 */
int	cmd_open(unsigned needs, struct db **db);

/*
 * An operator's action, audited (audit.h: source "operator NAME", NAME
 * from SUDO_USER or the user running the command) inside the caller's
 * transaction (cmd_audit_record); cmd_audit_log prints its line once
 * committed.
 */
enum da_err cmd_audit_record(struct db *db, int event, const char *userid,
	    const char *detail, struct da_error *err);
void	cmd_audit_log(int event, const char *userid, const char *detail);

/* "json" for OPT_JSON. */
const char *cmd_option_name(enum cmd_opt o);

/* doc as one line of compact JSON on stdout. */
void	cmd_print_json(const json *doc);
/*
 * Text output in aligned columns: every row is kept until cmd_table_end,
 * which sizes each column to its widest cell (in terminal columns: a
 * CJK character takes two) and prints the header and the rows. The last
 * column is not padded. Control characters in cells print as '?'.
 */
#define CMD_TABLE_COLS	12

struct cmd_table {
	size_t		 ncols;
	char		**cells;	/* rows * ncols, the header first */
	size_t		 nrows;
	size_t		 cap;
};

void	cmd_table_begin(struct cmd_table *t, size_t ncols, ...);
/* One row of t->ncols strings (copied). */
void	cmd_table_row(struct cmd_table *t, ...);
/* Print the header and rows (nothing without rows) and free them. */
void	cmd_table_end(struct cmd_table *t);

/*
 * s for one line of text output: newline, tab and CR as "\u00XX" (the
 * output stream escapes every other control character). Returns buf.
 */
const char *cmd_line(const char *s, char *buf, size_t size);
/* The terminal's own stderr, unescaped: only for our control sequences. */
FILE	*cmd_progress_stream(void);
/*
 * A list on stdout, as text rows or, with as_json, as a JSON array
 * written one object at a time so a long list is never whole in memory:
 * cmd_list_begin, then per row cmd_list_item (JSON) or the caller's
 * printf (text) and n++, then cmd_list_end.
 */
struct cmd_list {
	int		 as_json;
	long long	 n;		/* rows so far */
	struct cmd_table table;		/* text: cmd_table_begin at the first
					   row, printed by cmd_list_end */
};

void	cmd_list_begin(struct cmd_list *l, int as_json);
/* Print item as the next element (it is freed); the caller counts it. */
void	cmd_list_item(const struct cmd_list *l, json *item);
void	cmd_list_end(const struct cmd_list *l);
/* t as ISO 8601 UTC in buf (returned), or "-" for 0 and before. */
const char *cmd_time(long long t, char *buf, size_t size);
/* Member key of obj: t as ISO 8601 UTC, the text's form; null for 0. */
void	cmd_json_time(json *obj, const char *key, long long t);


#endif
