#ifndef DINGAUTH_LOG_H
#define DINGAUTH_LOG_H

/*
 * Logging to stderr (the web server's error log under FastCGI), one line
 * per message: "dingauth[prog pid]: level: text". Never pass secrets:
 * URLs go through http_redact() first.
 */
enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG__MAX };

/* "error", "warn", "info", "debug": DINGAUTH_LOG_LEVEL's values. */
extern const char *const log_level_names[LOG__MAX];

void	log_init(const char *progname);
void	log_set_level(enum log_level level);
/* "error", "warn", "info", "debug"; -1 when not one of those. */
int	log_level_parse(const char *name);
void	log_msg(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
