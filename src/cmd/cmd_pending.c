/*
 * Command groups whose work is still open (issues 3 and 4): they say so
 * plainly instead of pretending. Each moves to its own file when built.
 */
#include "cmd.h"

static int
pending(const char *what)
{
	return cmd_fail("'%s' is not available in this build yet", what);
}

int cmd_sync(int argc, char **argv) { return pending("sync"); }
int cmd_users(int argc, char **argv) { return pending("users"); }
int cmd_requests(int argc, char **argv) { return pending("requests"); }
int cmd_sessions(int argc, char **argv) { return pending("sessions"); }
int cmd_callback(int argc, char **argv) { return pending("callback"); }
int cmd_events(int argc, char **argv) { return pending("events"); }
