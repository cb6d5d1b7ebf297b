/*
 * fsync_gate.so: an LD_PRELOAD shim for tests and benchmarks that need a
 * disk with a known fsync. It wraps fsync(2) and fdatasync(2) (what
 * SQLite calls to make a commit durable) and then makes the real system
 * call, so nothing it lets through is less durable than without it.
 *
 * Environment, read at each call:
 *   FSYNC_DELAY_US   sleep this long first: a slow disk (an HDD's few ms)
 *   FSYNC_GATE_DIR   a directory: each call appends one line "<pid>\n"
 *                    to FSYNC_GATE_DIR/calls (count them), and while a
 *                    file FSYNC_GATE_DIR/hold exists the call waits
 *                    (polling every millisecond) before it syncs: a
 *                    disk that has not finished, for as long as a test
 *                    wants to look at what was answered meanwhile.
 * Never part of the product: built into $(BUILD)/preload, never installed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void
gate(void)
{
	struct timespec	 ts;
	const char	*dir, *us;
	char		 path[4096], line[32];
	long		 n;
	int		 fd, len;

	if ((us = getenv("FSYNC_DELAY_US")) != NULL &&
	    (n = strtol(us, NULL, 10)) > 0) {
		ts.tv_sec = n / 1000000;
		ts.tv_nsec = (n % 1000000) * 1000;
		while (nanosleep(&ts, &ts) == -1)
			;
	}
	if ((dir = getenv("FSYNC_GATE_DIR")) == NULL || *dir == '\0')
		return;
	snprintf(path, sizeof(path), "%s/calls", dir);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) != -1) {
		len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
		if (write(fd, line, (size_t)len) != len)
			(void)0;	/* a count short by one: the test says so */
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/hold", dir);
	ts.tv_sec = 0;
	ts.tv_nsec = 1000000;
	while (access(path, F_OK) == 0)
		nanosleep(&ts, NULL);
}

int
fsync(int fd)
{
	gate();
	return (int)syscall(SYS_fsync, fd);
}

int
fdatasync(int fd)
{
	gate();
	return (int)syscall(SYS_fdatasync, fd);
}
