#ifndef DINGAUTH_CIDR_H
#define DINGAUTH_CIDR_H

/*
 * Address lists: "127.0.0.1/32, ::1/128, 10.0.0.0/8" (a bare address is
 * a whole-length prefix), IPv4 and IPv6 (DINGAUTH_METRICS_ALLOW). An
 * IPv4 client seen as ::ffff:a.b.c.d is matched as IPv4.
 */

/* 0 when list is a valid non-empty list, -1 otherwise. */
int	cidr_list_check(const char *list);

/* 1 when addr (textual) is inside a network of list; else 0. */
int	cidr_list_match(const char *list, const char *addr);

#endif
