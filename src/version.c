#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"

#ifndef DINGAUTH_VERSION
#error "DINGAUTH_VERSION comes from the Makefile's VERSION"
#endif

const char *
version_string(void)
{
	return DINGAUTH_VERSION;
}

void
version_option(int argc, char *argv[], const char *prog)
{
	if (argc < 2 || strcmp(argv[1], "--version") != 0)
		return;
	printf("%s %s\n", prog, DINGAUTH_VERSION);
	exit(fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
