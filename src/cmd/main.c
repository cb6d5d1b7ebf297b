/*
 * dingauth COMMAND [options]: the operator's command.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"

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
	{ "token", cmd_token, "show|refresh cached DingTalk access tokens" },
	{ "crypto", cmd_crypto, "decrypt|encrypt|sign callback envelopes" },
	{ "doctor", cmd_doctor, "check configuration, database, DingTalk, clock" },
};

static void
usage(FILE *f)
{
	size_t	 i;

	fprintf(f, "usage: dingauth COMMAND [options]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
		    commands[i].summary);
	fprintf(f, "\n'dingauth COMMAND --help' describes each command.\n"
	    "Configuration: the file named by DINGAUTH_CONFIG "
	    "(default /etc/dingauth.conf) and environment variables.\n");
}

int
cmd_usage(const char *fmt, ...)
{
	va_list	 ap;

	fputs("dingauth: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return EXIT_USAGE;
}

int
cmd_fail(const char *fmt, ...)
{
	va_list	 ap;

	fputs("dingauth: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
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
	int		 lvl;

	if (config_load(needs, &err) != DA_OK)
		return cmd_fail("configuration: %s", err.msg);
	if ((lvl = log_level_parse(config_str(CFG_LOG_LEVEL))) >= 0)
		log_set_level((enum log_level)lvl);
	if (db == NULL)
		return EXIT_OK;
	if (db_open(config_str(CFG_DB), db, &err) != DA_OK)
		return cmd_fail("database %s: %s", config_str(CFG_DB),
		    err.msg);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	size_t	 i;
	int	 rc;

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
