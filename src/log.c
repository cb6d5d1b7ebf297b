#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char	*log_prog = "dingauth";
static enum log_level	 log_level = LOG_INFO;
const char *const log_level_names[LOG__MAX] = {
	[LOG_ERR] = "error", [LOG_WARN] = "warn",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void
log_init(const char *progname)
{
	const char	*slash;

	if (progname == NULL)
		return;
	slash = strrchr(progname, '/');
	log_prog = slash != NULL ? slash + 1 : progname;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_level_parse(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++)
		if (strcmp(name, log_level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char	 line[2048];
	va_list	 ap;
	size_t	 i;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One message, one line: a log line is never split by input. */
	for (i = 0; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	fprintf(stderr, "dingauth[%s %ld]: %s: %s\n", log_prog,
	    (long)getpid(), log_level_names[level], line);
}
