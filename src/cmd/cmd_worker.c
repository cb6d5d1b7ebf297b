/*
 * dingauth worker [--once]: the background process (worker.h does the
 * work; this file takes the lock, handles signals and runs the daily
 * sync as a `dingauth sync` process of its own).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "worker.h"

extern char	**environ;

static int	worker_command(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub worker_sub = {
	.run = worker_command,
	.opts = CMD_OPT(OPT_ONCE),
	.needs = CFG_NEED_DIRECTORY,
};

static const struct cmd_group group = {
	.name = "worker",
	.usage = "usage: dingauth worker [--once]\n\n"
	    "The background process: applies the pending callback events "
	    "that are due\n(each failure is retried later on its own "
	    "schedule), runs the daily full\nsync at DINGAUTH_SYNC_AT (HH:MM "
	    "local time, or off), prunes expired\nsessions and login states "
	    "and, after DINGAUTH_RETENTION_DAYS, finished\nevents and decided "
	    "login requests, and writes a heartbeat that doctor\nreads. With "
	    "DINGAUTH_EVENT_MODE=stream it holds DingTalk's Stream\nlink and "
	    "stores the events it carries. One worker per database. One log line per action on stderr.\n"
	    "SIGTERM or SIGINT: finish the current step and exit 0.\n\n"
	    "  --once  one pass, then exit (for cron): 1 if a step failed\n\n"
	    "Exit status: 0 stopped or pass done, 1 failure (another worker "
	    "runs\non this database, configuration), 2 usage.\n",
	.subs = &worker_sub,
	.nsubs = 1,
};

static void
on_signal(int sig)
{
	(void)sig;
	worker_stop();
}

/*
 * The daily sync: this program again as `dingauth sync`, its output on
 * our stderr. Asked to stop, we pass SIGTERM on: a sync that has not
 * committed changes nothing.
 */
static int
run_sync(void *arg)
{
	posix_spawn_file_actions_t	 fa;
	char				*argv[] = { "dingauth", "sync", NULL };
	const char			*path = "/proc/self/exe";
	pid_t				 pid, done;
	int				 status = -1, passed = 0;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0) {
		log_msg(LOG_ERR, "sync: cannot start %s", path);
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	while ((done = waitpid(pid, &status, WNOHANG)) == 0) {
		if (worker_stopping() && !passed) {
			log_msg(LOG_INFO, "sync: stopping it (pid %ld)",
			    (long)pid);
			kill(pid, SIGTERM);
			passed = 1;
		}
		worker_wait(50);	/* the Stream link is served meanwhile */
	}
	if (done == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int
worker_command(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct worker_options	 opt;
	struct worker_beat	 beat;
	struct sigaction	 sa;
	struct da_error		 err;
	struct db		*db = NULL;
	int			 rc, fd = -1, minutes;

	da_error_clear(&err);
	memset(&opt, 0, sizeof(opt));
	opt.once = a->opt[OPT_ONCE] != NULL;
	opt.run_sync = run_sync;
	/* The worker, not the web programs, migrates a server's schema. */
	if ((rc = cmd_open(sub->needs, NULL)) != EXIT_OK)
		goto out;
	if (db_open_migrating(config_str(CFG_DB), &db, &err) != DA_OK) {
		rc = cmd_fail("database: %s", err.msg);
		goto out;
	}
	log_init("worker");
	if (worker_parse_sync_at(config_str(CFG_SYNC_AT), &minutes, &err) !=
	    DA_OK) {
		rc = cmd_fail("configuration: %s", err.msg);
		goto out;
	}
	if (worker_lock(db, &fd, &err) != DA_OK) {
		if (err.code == DA_EBUSY && worker_heartbeat(db, &beat,
		    NULL) == DA_OK && beat.present)
			rc = cmd_fail("%s (pid %lld): one worker per database",
			    err.msg, beat.pid);
		else
			rc = cmd_fail("%s", err.msg);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (worker_run(db, &opt, &err) != DA_OK) {
		rc = cmd_fail("worker: %s", err.msg);
		goto out;
	}
	rc = EXIT_OK;
out:
	db_close(db);
	if (fd != -1)
		close(fd);
	return rc;
}

int
cmd_worker(int argc, char **argv)
{
	return cmd_run(&group, &worker_sub, argc, argv);
}
