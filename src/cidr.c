/*
 * Address lists: see cidr.h.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

#define ITEM_MAX	64		/* "ffff:...:ffff/128" fits */

struct net {
	int		 len;		/* 4 or 16 bytes */
	unsigned char	 a[16];
	int		 bits;		/* prefix length */
};

/* text (an address) into n; a v4-mapped IPv6 address becomes IPv4. */
static int
parse_addr(const char *text, struct net *n)
{
	static const unsigned char	 mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};

	if (inet_pton(AF_INET, text, n->a) == 1) {
		n->len = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, n->a) != 1)
		return -1;
	n->len = 16;
	if (memcmp(n->a, mapped, sizeof(mapped)) == 0) {
		memmove(n->a, n->a + 12, 4);
		n->len = 4;
	}
	return 0;
}

/* One item "addr[/bits]" of at most ITEM_MAX - 1 bytes. */
static int
parse_net(const char *item, size_t size, struct net *n)
{
	char	 text[ITEM_MAX], *slash, *end;
	long	 bits;

	if (size == 0 || size >= sizeof(text))
		return -1;
	memcpy(text, item, size);
	text[size] = '\0';
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	if (parse_addr(text, n) == -1)
		return -1;
	n->bits = n->len * 8;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 ||
		    bits > n->len * 8)
			return -1;
		n->bits = (int)bits;
	}
	return 0;
}

static int
inside(const struct net *addr, const struct net *net)
{
	int		 full = net->bits / 8, rest = net->bits % 8;
	unsigned char	 mask;

	if (addr->len != net->len || memcmp(addr->a, net->a, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (addr->a[full] & mask) == (net->a[full] & mask);
}

/*
 * Walk list: for each item, fn(net, arg) (stop on non-zero, returned).
 * -1 when an item is not a network; an empty list is -1.
 */
static int
each(const char *list, int (*fn)(const struct net *, const void *),
    const void *arg)
{
	const char	*p = list, *start;
	struct net	 n;
	size_t		 len;
	int		 items = 0, rc;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		start = p;
		while (*p != '\0' && *p != ',' && *p != ' ')
			p++;
		len = (size_t)(p - start);
		while (*p == ' ')
			p++;
		if (*p == ',') {
			if (*++p == '\0')
				return -1;
		} else if (*p != '\0')
			return -1;
		if (parse_net(start, len, &n) == -1)
			return -1;
		items++;
		if (fn != NULL && (rc = fn(&n, arg)) != 0)
			return rc;
	}
	return items > 0 ? 0 : -1;
}

int
cidr_list_check(const char *list)
{
	return each(list, NULL, NULL);
}

static int
match_one(const struct net *net, const void *arg)
{
	return inside(arg, net);
}

int
cidr_list_match(const char *list, const char *addr)
{
	struct net	 a;

	if (addr == NULL || parse_addr(addr, &a) == -1)
		return 0;
	return each(list, match_one, &a) == 1;
}
