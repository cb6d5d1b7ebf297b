#ifndef DINGAUTH_MEM_H
#define DINGAUTH_MEM_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Allocation that never returns NULL: on out-of-memory the process logs
 * and aborts (a FastCGI worker is restarted by its server) instead of
 * growing untested error branches.
 */
void	*xmalloc(size_t n);
void	*xcalloc(size_t count, size_t n);
void	*xrealloc(void *p, size_t n);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A growable byte buffer with a declared maximum. data is always
 * NUL-terminated. Appends past max fail with -1 and set overflow.
 * max == 0 means the default cap (16 MiB).
 */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
	int	 overflow;
};

void	 buf_init(struct buf *b, size_t max);
int	 buf_append(struct buf *b, const void *p, size_t n);
int	 buf_puts(struct buf *b, const char *s);
int	 buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	 buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void	 buf_reset(struct buf *b);
/* Returns the data (caller frees) and leaves b empty. */
char	*buf_take(struct buf *b);
void	 buf_free(struct buf *b);

#endif
