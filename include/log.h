#ifndef DINGAUTH_LOG_H
#define DINGAUTH_LOG_H

#include <stddef.h>

/*
 * Logging to stderr (the process's standard error: the journal under
 * systemd), one line per message: "dingauth[prog pid]: level: text", or
 * with DINGAUTH_LOG_FORMAT=json one JSON object per line,
 * {"time","prog","pid","level","msg"}. Never pass secrets: URLs go
 * through http_redact() first.
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

/* DINGAUTH_LOG_FORMAT. */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON, LOG_FORMAT__MAX };
extern const char *const log_format_names[LOG_FORMAT__MAX];
void	log_set_format(enum log_format format);

/* A named value of an event's line; a NULL value is left out. */
struct log_field {
	const char	*name;
	const char	*value;
};

/*
 * One line for an event with its fields: "event name=value ..." (values
 * with spaces or quotes quoted, empty ones left out), or in JSON every
 * field as a member beside "event".
 */
void	log_fields(enum log_level level, const char *event,
	    const struct log_field *fields, size_t n);
/*
 * The error reference of the request being served, for a helpdesk to
 * find the log lines behind a page: "20261205-131500-a1b2c3", the UTC
 * time and six random hex digits, made when first needed. Once
 * log_ref_begin has been called (a request starts), every line logged
 * ends with " [ref REFERENCE]" and error pages show the same one.
 * log_ref: the reference (made now if there is none yet).
 */
#define LOG_REF_LEN	22
void		 log_ref_begin(void);
const char	*log_ref(void);

#endif
