#ifndef DINGAUTH_CMD_H
#define DINGAUTH_CMD_H

/*
 * bin/dingauth: one file per command group (cmd_crypto.c, cmd_token.c,
 * ...), each exporting one entry point listed in main.c's table.
 * An entry point gets argv starting at the group name
 * (argv[0] = "crypto", argv[1] = "decrypt", ...) and returns the exit
 * status: 0 success, 1 failure, 2 usage error. Every group and
 * subcommand answers --help on stdout with status 0.
 */

#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

struct db;

int	cmd_crypto(int argc, char **argv);
int	cmd_token(int argc, char **argv);
int	cmd_doctor(int argc, char **argv);
int	cmd_sync(int argc, char **argv);
int	cmd_users(int argc, char **argv);
int	cmd_requests(int argc, char **argv);
int	cmd_sessions(int argc, char **argv);
int	cmd_callback(int argc, char **argv);
int	cmd_events(int argc, char **argv);

/* Print "dingauth: message" to stderr and return EXIT_USAGE. */
int	cmd_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "dingauth: message" to stderr and return EXIT_FAIL. */
int	cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1 if argv[i] is -h or --help for any i >= 1. */
int	cmd_wants_help(int argc, char **argv);
/*
 * Load the configuration for needs (CFG_NEED_*), then open the database
 * (creating and migrating it). Prints the error and returns EXIT_FAIL,
 * or EXIT_OK with *db set.
 */
int	cmd_open(unsigned needs, struct db **db);

#endif
