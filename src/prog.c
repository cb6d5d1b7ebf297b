#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "page.h"
#include "prog.h"
#include "version.h"

/* One program per process: its start-up state. */
static struct {
	unsigned	 needs;
	int		 broken;	/* configuration or start-up failed */
	struct da_error	 err;
	struct db	*db;
} prog;

enum da_err
prog_start(const char *name, unsigned needs, int argc, char *argv[])
{
	enum da_err	 rc;

	version_option(argc, argv, name);
	log_init(name);
	memset(&prog, 0, sizeof(prog));
	prog.needs = needs;
	if ((rc = config_start(needs, &prog.err)) != DA_OK) {
		prog.broken = 1;
		log_msg(LOG_ERR, "configuration: %s", prog.err.msg);
		return rc;
	}
	if ((needs & CFG_NEED_DB) &&
	    db_open(cfg()->str[CFG_DB], &prog.db, &prog.err) != DA_OK)
		log_msg(LOG_ERR, "database: %s", prog.err.msg);
	return DA_OK;
}

void
prog_fail(const struct da_error *err)
{
	prog.broken = 1;
	prog.err = *err;
	log_msg(LOG_ERR, "start-up: %s", err->msg);
}

struct db *
prog_db(void)
{
	return prog.db;
}

/* Every request first: a program that cannot serve answers here. */
static int
front(struct req *r, void *arg)
{
	struct da_error	 err;

	if (prog.broken) {
		page_config_error(r, &prog.err);
		return 1;
	}
	if ((prog.needs & CFG_NEED_DB) && prog.db == NULL &&
	    db_open(cfg()->str[CFG_DB], &prog.db, &err) != DA_OK) {
		page_config_error(r, &err);
		return 1;
	}
	return 0;
}

int
prog_serve(const struct req_route *routes, size_t nroutes, size_t body_max,
    void *arg)
{
	int	 rc;

	rc = req_serve(routes, nroutes, front, arg, body_max);
	db_close(prog.db);
	prog.db = NULL;
	return rc;
}
