#ifndef DINGAUTH_UNIT_H
#define DINGAUTH_UNIT_H

/*
 * The smallest test harness: every check prints "ok - name" or
 * "not ok - name" (with the file and line), and unit_done() returns the
 * process exit status. tests/run counts the lines for the whole suite.
 */
#include <stdio.h>
#include <string.h>

static int unit_failed;
static int unit_passed;

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		unit_passed++;						\
		printf("ok - ");					\
	} else {							\
		unit_failed++;						\
		printf("not ok - %s:%d: (%s) ", __FILE__, __LINE__,	\
		    #cond);						\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

#define CHECK_STR(got, want, ...) do {					\
	const char *g_ = (got), *w_ = (want);				\
	int eq_ = g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0;	\
	CHECK(eq_, __VA_ARGS__);					\
	if (!eq_)							\
		printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", \
		    w_ ? w_ : "(null)");				\
} while (0)

/* A string literal and its length without the NUL: f(LIT("abc")). */
#define LIT(s)	(s), (sizeof(s) - 1)

static inline int
unit_done(void)
{
	return unit_failed ? 1 : 0;
}

#endif
