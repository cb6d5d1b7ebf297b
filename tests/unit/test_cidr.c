/*
 * Address lists (cidr.c): DINGAUTH_METRICS_ALLOW's parser and matcher.
 */
#include <stdio.h>

#include "cidr.h"
#include "unit.h"

static const struct {
	const char	*list;
	int		 ok;
} lists[] = {
	{ "127.0.0.1/32,::1/128", 1 },
	{ "10.0.0.0/8, 192.168.0.0/16 , fd00::/8", 1 },
	{ "0.0.0.0/0", 1 },
	{ "::/0", 1 },
	{ "192.0.2.7", 1 },
	{ "2001:db8::1", 1 },
	{ "", 0 },
	{ ",", 0 },
	{ "10.0.0.0/8,", 0 },
	{ "10.0.0.0/33", 0 },
	{ "::1/129", 0 },
	{ "10.0.0.0/", 0 },
	{ "10.0.0.0/-1", 0 },
	{ "10.0.0.0/8x", 0 },
	{ "10.0.0/8", 0 },
	{ "example.com", 0 },
	{ "10.0.0.0/8 192.168.0.0/16", 0 },
};

static const struct {
	const char	*list;
	const char	*addr;
	int		 in;
} matches[] = {
	{ "127.0.0.1/32,::1/128", "127.0.0.1", 1 },
	{ "127.0.0.1/32,::1/128", "127.0.0.2", 0 },
	{ "127.0.0.1/32,::1/128", "::1", 1 },
	{ "127.0.0.1/32,::1/128", "::ffff:127.0.0.1", 1 },
	{ "127.0.0.1/32,::1/128", "::2", 0 },
	{ "10.0.0.0/8", "10.255.255.255", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "192.0.2.0/25", "192.0.2.127", 1 },
	{ "192.0.2.0/25", "192.0.2.128", 0 },
	{ "192.0.2.0/27", "192.0.2.31", 1 },
	{ "192.0.2.0/27", "192.0.2.32", 0 },
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "2001:db8::1", 0 },
	{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", "2001:db9::1", 0 },
	{ "::/0", "2001:db8::1", 1 },
	{ "10.0.0.0/8", "", 0 },
	{ "10.0.0.0/8", "not an address", 0 },
	{ "10.0.0.0/8", NULL, 0 },
	{ "bad/99", "10.0.0.1", 0 },
};

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		CHECK((cidr_list_check(lists[i].list) == 0) == lists[i].ok,
		    "cidr_list_check '%s' is %s", lists[i].list,
		    lists[i].ok ? "valid" : "refused");
	for (i = 0; i < sizeof(matches) / sizeof(matches[0]); i++)
		CHECK(cidr_list_match(matches[i].list, matches[i].addr) ==
		    matches[i].in, "%s %s %s", matches[i].addr != NULL ?
		    matches[i].addr : "(null)", matches[i].in ? "in" :
		    "not in", matches[i].list);
	return unit_done();
}
