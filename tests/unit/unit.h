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

#if defined(SQLITE_VERSION) && defined(DINGAUTH_DB_H)
/* A test looking into the database: the first column of sql, -1. */
static inline long long
unit_count(struct db *db, const char *sql)
{
	sqlite3_stmt	*st;
	long long	 n = -1;

	if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}
#endif

static inline int
unit_done(void)
{
	return unit_failed ? 1 : 0;
}

#endif
