#ifndef DINGAUTH_MONO_H
#define DINGAUTH_MONO_H

/*
 * The monotonic clock (CLOCK_MONOTONIC): for deadlines, budgets, pacing
 * and backoff, never for times stored or shown (those are db_now()).
 */
long long	 mono_ms(void);
long long	 mono_us(void);

#endif
