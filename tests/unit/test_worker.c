/*
 * worker.c: DINGAUTH_SYNC_AT, the daily slot, the lock; events.c: how
 * long dedupe keys are kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "events.h"
#include "unit.h"
#include "worker.h"

int
main(void)
{
	struct da_error	 err;
	char		 dir[] = "/tmp/dingauth-unit-XXXXXX", path[64];
	long long	 now, midnight;
	struct db	*db = NULL;
	int		 m, fd = -1, fd2 = -1;

	memset(&err, 0, sizeof(err));
	CHECK(worker_parse_sync_at("03:30", &m, &err) == DA_OK && m == 210,
	    "03:30 is 210 minutes");
	CHECK(worker_parse_sync_at("00:00", &m, &err) == DA_OK && m == 0,
	    "00:00");
	CHECK(worker_parse_sync_at("23:59", &m, &err) == DA_OK &&
	    m == 23 * 60 + 59, "23:59");
	CHECK(worker_parse_sync_at("off", &m, &err) == DA_OK && m == -1,
	    "off");
	CHECK(worker_parse_sync_at("24:00", &m, &err) == DA_EINPUT &&
	    strstr(err.msg, "DINGAUTH_SYNC_AT") != NULL, "24:00 refused");
	CHECK(worker_parse_sync_at("3:30", &m, &err) == DA_EINPUT,
	    "3:30 refused");
	CHECK(worker_parse_sync_at("12:60", &m, &err) == DA_EINPUT,
	    "12:60 refused");
	CHECK(worker_parse_sync_at("", &m, &err) == DA_EINPUT, "empty refused");
	CHECK(worker_parse_sync_at("03:30 ", &m, &err) == DA_EINPUT,
	    "trailing space refused");

	setenv("TZ", "UTC", 1);
	tzset();
	midnight = 1796428800LL;	/* 2026-12-05 00:00 UTC */
	now = midnight + 8 * 3600;
	CHECK(worker_sync_slot(now, 210) == midnight + 210 * 60,
	    "03:30 today, at 08:00");
	CHECK(worker_sync_slot(now, 9 * 60) == midnight - 15 * 3600,
	    "09:00 yesterday, at 08:00");
	CHECK(worker_sync_slot(now, 8 * 60) == now, "08:00 at 08:00");
	setenv("TZ", "Asia/Shanghai", 1);
	tzset();
	CHECK(worker_sync_slot(now, 210) == midnight - 16200,
	    "03:30 in UTC+8 is 19:30 UTC the day before");

	CHECK(events_keep_seconds(3600, 30) == 30 * 86400LL,
	    "retention when it is longer than the window");
	CHECK(events_keep_seconds(7 * 86400, 7) == 8 * 86400LL,
	    "never less than the window and a day");
	CHECK(events_keep_seconds(0, 30) == 0, "no window: kept for ever");

	CHECK(mkdtemp(dir) != NULL, "temp dir");
	snprintf(path, sizeof(path), "%s/db", dir);
	CHECK(db_create(path, 0600, &db, &err) == DA_OK, "database (%s)",
	    err.msg);
	CHECK(worker_lock(db, &fd, &err) == DA_OK && fd >= 0, "lock taken");
	CHECK(worker_lock(db, &fd2, &err) == DA_EBUSY && fd2 == -1 &&
	    strstr(err.msg, "another worker") != NULL, "lock held: EBUSY");
	close(fd);
	CHECK(worker_lock(db, &fd2, &err) == DA_OK, "lock taken again");
	close(fd2);
	db_close(db);
	snprintf(path, sizeof(path), "%s/db.worker-lock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/db-shm", dir);
	unlink(path);
	rmdir(dir);
	return unit_done();
}
