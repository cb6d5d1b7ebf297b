#ifndef DINGAUTH_VERSION_H
#define DINGAUTH_VERSION_H

/*
 * The release, set in one place: VERSION in the Makefile (passed to
 * src/version.c as DINGAUTH_VERSION).
 */

/* "0.1.0". */
const char	*version_string(void);

/*
 * Front-line check for every program: with argv[1] "--version", print
 * "PROG VERSION" on stdout and exit 0; otherwise return.
 */
void		 version_option(int argc, char *argv[], const char *prog);

#endif
