/*
 * Unit tests of events.c without DingTalk: parsing both payload
 * spellings and every refusal, storing with dedupe, listing, and applying
 * the events that need no DingTalk call (user_leave_org, org_dept_remove)
 * or fail for want of one (the run stops, the error is kept).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "session.h"
#include "unit.h"

static void
remove_dir(const char *dir)
{
	static const char *const files[] = {
		"t.db", "t.db-wal", "t.db-shm", "t.db.events-lock",
		"t2.db", "t2.db-wal", "t2.db-shm", NULL
	};
	char	 path[160];
	size_t	 i;

	for (i = 0; files[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	if (rmdir(dir) == -1)
		printf("# could not remove %s\n", dir);
}

static int
parses(const char *text, struct event *ev)
{
	struct da_error	 err;

	da_error_clear(&err);
	return events_parse(text, strlen(text), ev, &err) == DA_OK;
}

/* Refused with a message that mentions want. */
static int
refused(const char *text, size_t len, const char *want)
{
	struct da_error	 err;
	struct event	 ev;
	int		 ok;

	da_error_clear(&err);
	ok = events_parse(text, len, &ev, &err) == DA_EINPUT &&
	    err.code == DA_EINPUT && strstr(err.msg, want) != NULL &&
	    ev.userids == NULL && ev.dept_ids == NULL;
	if (!ok)
		printf("#   %s -> %s\n", text, err.msg);
	return ok;
}

static int
store(struct db *db, const char *text, const char *key, int *stored)
{
	struct da_error	 err;
	struct event	 ev;
	int		 rc;

	da_error_clear(&err);
	if (events_parse(text, strlen(text), &ev, &err) != DA_OK)
		return -1;
	rc = events_store(db, &ev, text, strlen(text), key, stored, NULL,
	    &err) == DA_OK ? 0 : -1;
	event_clear(&ev);
	return rc;
}

static int
list_counter(const struct event_row *row, void *arg)
{
	int	*n = arg;

	(*n)++;
	return 0;
}

static int
list_first(const struct event_row *row, void *arg)
{
	long long	*id = arg;

	*id = row->id;
	return 1;
}

/* Parsing: both spellings of every key. */
static void
test_parse(void)
{
	struct event		 ev;

	CHECK(parses("{\"EventType\":\"user_add_org\",\"TimeStamp\":"
	    "\"1645077203219\",\"UserId\":[\"a\",\"b\"],\"CorpId\":\"ding1\"}",
	    &ev) && ev.kind == EVENT_USER_ADD && ev.nuser == 2 &&
	    strcmp(ev.userids[1], "b") == 0 && ev.time_ms == 1645077203219LL &&
	    ev.event_id[0] == '\0', "legacy user event");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"user_modify_org\",\"timeStamp\":"
	    "1685501863357,\"userId\":[\"015x\"],\"eventId\":\"c7c7\","
	    "\"BizId\":\"b1\"}", &ev) && ev.kind == EVENT_USER_MODIFY &&
	    ev.nuser == 1 && ev.time_ms == 1685501863357LL &&
	    strcmp(ev.event_id, "c7c7") == 0,
	    "console user event (eventId wins)");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"org_admin_add\",\"BizId\":12345,"
	    "\"UserId\":\"solo\"}", &ev) && ev.nuser == 1 &&
	    strcmp(ev.userids[0], "solo") == 0 &&
	    strcmp(ev.event_id, "12345") == 0, "one userid as a string, "
	    "numeric BizId");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"org_dept_create\",\"DeptId\":"
	    "[600582447]}", &ev) && ev.kind == EVENT_DEPT_CREATE &&
	    ev.ndept == 1 && ev.dept_ids[0] == 600582447, "legacy dept event");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"org_dept_remove\",\"deptId\":"
	    "[\"7\",8]}", &ev) && ev.kind == EVENT_DEPT_REMOVE &&
	    ev.ndept == 2 && ev.dept_ids[0] == 7 && ev.dept_ids[1] == 8,
	    "console dept event, ids as strings and numbers");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"check_url\"}", &ev) &&
	    ev.kind == EVENT_CHECK_URL, "check_url");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"bpms_task_change\",\"corpId\":\"x\","
	    "\"title\":\"\xe8\xaf\xb7\xe5\x81\x87\"}", &ev) &&
	    ev.kind == EVENT_OTHER && strcmp(ev.type, "bpms_task_change") == 0,
	    "another type, UTF-8 text");
	event_clear(&ev);
	CHECK(strcmp(event_kind_name(EVENT_USER_LEAVE), "user_leave_org") ==
	    0 && strcmp(event_kind_name(EVENT__MAX), "") == 0, "kind names");
}

/* Parsing: every refusal leaves nothing allocated. */
static void
test_refuse(void)
{
	struct event		 ev;
	char			 big[1200];

	CHECK(refused(LIT(""), "empty"), "empty");
	CHECK(refused(LIT("{\"EventType\":\"x\xff\"}"), "UTF-8"), "not UTF-8");
	CHECK(refused(LIT("{\"EventType\":\"\xc0\xaf\"}"), "UTF-8"),
	    "overlong UTF-8");
	CHECK(refused(LIT("{\"EventType\":\"\xed\xa0\x80\"}"), "UTF-8"),
	    "UTF-16 surrogate in UTF-8");
	CHECK(refused(LIT("{\"EventType\":\"a\"}\0{}"), "UTF-8"), "NUL byte");
	CHECK(refused(LIT("nope"), "JSON object"), "not JSON");
	CHECK(refused(LIT("[1]"), "JSON object"), "an array");
	CHECK(refused(LIT("{\"UserId\":[\"a\"]}"), "EventType"),
	    "no EventType");
	CHECK(refused(LIT("{\"EventType\":\"a b\"}"), "EventType"),
	    "EventType with a space");
	CHECK(refused(LIT("{\"EventType\":\"user_add_org\"}"), "UserId"),
	    "user event without ids");
	CHECK(refused(LIT("{\"EventType\":\"user_add_org\",\"UserId\":[]}"),
	    "empty"), "empty id list");
	CHECK(parses("{\"EventType\":\"user_add_org\",\"UserId\":[\"a\",3,"
	    "\"b c\",\"d\"]}", &ev) && ev.nuser == 2 && ev.ninvalid == 2 &&
	    strstr(ev.invalid, "UserId[1] (not a string)") != NULL &&
	    strstr(ev.invalid, "UserId[2] (not a usable userid") != NULL,
	    "invalid userids among valid ones are noted and left out (%s)",
	    ev.invalid);
	event_clear(&ev);
	CHECK(refused(LIT("{\"EventType\":\"user_add_org\","
	    "\"UserId\":[3,\"b c\"]}"), "UserId[0]"),
	    "no usable userid at all is refused");
	CHECK(parses("{\"EventType\":\"org_dept_remove\",\"DeptId\":[0,7]}",
	    &ev) && ev.ndept == 1 && ev.dept_ids[0] == 7 &&
	    strstr(ev.invalid, "DeptId[0]") != NULL,
	    "an invalid dept id among valid ones is left out");
	event_clear(&ev);
	CHECK(refused(LIT("{\"EventType\":\"user_add_org\",\"UserId\":{}}"),
	    "neither"), "ids as an object");
	CHECK(refused(LIT("{\"EventType\":\"org_dept_remove\","
	    "\"DeptId\":[-1]}"), "DeptId[0]"), "negative dept id");
	CHECK(refused(LIT("{\"EventType\":\"org_dept_remove\","
	    "\"DeptId\":[1.5]}"), "DeptId[0]"), "fractional dept id");
	CHECK(refused(LIT("{\"EventType\":\"org_dept_remove\"}"), "DeptId"),
	    "dept event without ids");
	CHECK(refused(LIT("{\"EventType\":\"org_change\",\"TimeStamp\":true}"),
	    "TimeStamp"), "TimeStamp a boolean");
	memset(big, 'x', sizeof(big));
	memcpy(big, LIT("{\"EventType\":\"a\",\"eventId\":\""));
	memcpy(big + 28 + 300, "\"}", sizeof("\"}"));	/* with the NUL */
	CHECK(refused(big, strlen(big), "eventId"), "eventId too long");
	CHECK(parses("{\"EventType\":\"org_dept_remove\",\"DeptId\":7}", &ev) &&
	    ev.ndept == 1, "one dept id as a number");
	event_clear(&ev);
}

/* Storing: once per dedupe key, never check_url, never without a key. */
static void
test_store(struct db *db)
{
	struct da_error		 err;
	struct event		 ev;
	long long		 n, id;
	int			 stored;

	da_error_clear(&err);
	CHECK(store(db, "{\"EventType\":\"user_leave_org\",\"UserId\":"
	    "[\"u1\"]}", "sig:aaa", &stored) == 0 && stored == 1,
	    "a new event is stored");
	CHECK(store(db, "{\"EventType\":\"user_leave_org\",\"UserId\":"
	    "[\"u1\"]}", "sig:aaa", &stored) == 0 && stored == 0,
	    "the same key is not stored twice");
	CHECK(store(db, "{\"EventType\":\"org_change\",\"eventId\":\"e1\"}",
	    "sig:bbb", &stored) == 0 && stored == 1 &&
	    unit_count(db, "SELECT count(*) FROM events WHERE dedupe_key = "
	    "'event:e1' AND state = 'ignored'") == 1,
	    "eventId is the key; another type is ignored");
	CHECK(store(db, "{\"EventType\":\"org_change\",\"eventId\":\"e1\"}",
	    "sig:ccc", &stored) == 0 && stored == 0,
	    "the same eventId under another signature is a duplicate");
	CHECK(parses("{\"EventType\":\"check_url\"}", &ev) &&
	    events_store(db, &ev, "{}", 2, "sig:ddd", &stored, &id, &err) ==
	    DA_EINPUT && stored == 0, "check_url is not stored");
	event_clear(&ev);
	CHECK(parses("{\"EventType\":\"org_change\"}", &ev) &&
	    events_store(db, &ev, "{}", 2, NULL, &stored, &id, &err) ==
	    DA_EINPUT, "no key at all is refused");
	event_clear(&ev);
	CHECK(unit_count(db, "SELECT count(*) FROM events") == 2, "two rows");
	CHECK(events_count_pending(db, &n, &err) == DA_OK && n == 1,
	    "one pending");
}

/* One push for events_store_batch / events_store_seen under key. */
static void
push_of(struct event_store *s, const struct event *ev, const char *text,
    const char *key, struct events_seen *seen)
{
	memset(s, 0, sizeof(*s));
	s->ev = ev;
	s->payload = text;
	s->len = strlen(text);
	s->fallback = key;
	s->seen = seen;
}

/*
 * The memory of seen keys: a key committed is known without a read (the
 * row is deleted behind its back to prove that no read was made), only
 * for the file it was learnt on, and a key too long to keep is read.
 */
static void
test_seen(struct db *db, const char *dir)
{
	static const char	 text[] = "{\"EventType\":\"user_leave_org\","
	    "\"UserId\":[\"seen1\"]}";
	static const char	 longkey[] = "sig:0123456789012345678901234567"
	    "890123456789012345678901234567890123456789";
	struct events_seen	*seen = events_seen_new();
	struct event_store	 s, *sp = &s;
	struct da_error		 err;
	struct event		 ev;
	struct db		*db2 = NULL;
	char			 path[160], sql[128];
	long long		 id;

	da_error_clear(&err);
	if (!parses(text, &ev)) {
		CHECK(0, "the seen push parses");
		return;
	}
	push_of(&s, &ev, text, "sig:seen1", seen);
	CHECK(events_store_batch(db, &sp, 1) == DA_OK && s.stored && s.id > 0,
	    "a push is stored with a memory");
	id = s.id;
	snprintf(sql, sizeof(sql), "DELETE FROM events WHERE id = %lld", id);
	CHECK(db_exec(db, sql, &err) == DA_OK, "its row deleted (%s)",
	    err.msg);
	push_of(&s, &ev, text, "sig:seen1", seen);
	CHECK(events_store_seen(db, &s) == 1 && s.rc == DA_OK && s.id == id &&
	    !s.write, "the key committed is known: no read, the same id");
	push_of(&s, &ev, text, "sig:seen1", NULL);
	CHECK(events_store_seen(db, &s) == 0 && s.write,
	    "without the memory the same key is read and found new");
	snprintf(path, sizeof(path), "%s/t2.db", dir);
	CHECK(db_create(path, 0600, &db2, &err) == DA_OK, "a second "
	    "database (%s)", err.msg);
	if (db2 != NULL) {
		push_of(&s, &ev, text, "sig:seen1", seen);
		CHECK(events_store_seen(db2, &s) == 0 && s.write,
		    "another database file does not trust what was learnt "
		    "on the first");
		db_close(db2);
	}
	push_of(&s, &ev, text, longkey, seen);
	CHECK(events_store_batch(db, &sp, 1) == DA_OK && s.stored,
	    "a push under a long key is stored");
	snprintf(sql, sizeof(sql), "DELETE FROM events WHERE id = %lld", s.id);
	CHECK(db_exec(db, sql, &err) == DA_OK, "its row deleted");
	push_of(&s, &ev, text, longkey, seen);
	CHECK(events_store_seen(db, &s) == 0 && s.write,
	    "a key too long to keep is read every time");
	event_clear(&ev);
	events_seen_free(seen);
}

/* Applying: locally, or stopping when DingTalk is needed and missing. */
static void
test_apply(struct db *db)
{
	struct da_error		 err;
	struct events_run	 run;
	struct dir_user		 u;
	struct dir_dept		 d;
	char			 sid[SESSION_ID_LEN + 1];
	int			 stored;

	da_error_clear(&err);
	/* Applying what needs no DingTalk: a leaver, a removed department. */
	memset(&u, 0, sizeof(u));
	snprintf(u.userid, sizeof(u.userid), "u1");
	snprintf(u.name, sizeof(u.name), "One");
	u.dept_ids = calloc(2, sizeof(long long));
	u.dept_ids[0] = 5;
	u.dept_ids[1] = 6;
	u.ndept = 2;
	u.active = 1;
	memset(&d, 0, sizeof(d));
	d.dept_id = 5;
	d.parent_id = 1;
	snprintf(d.name, sizeof(d.name), "Five");
	CHECK(directory_upsert_user(db, &u, "sync", NULL, &err) == DA_OK &&
	    directory_upsert_dept(db, &d, &err) == DA_OK &&
	    session_open(db, "u1", "127.0.0.1", "ua", sid, &err) == DA_OK,
	    "a user with a session");
	dir_user_clear(&u);
	CHECK(events_apply_pending(db, 0, 0, 1, &run, &err) == DA_OK &&
	    run.applied == 1 && run.failed == 0 && run.pending == 0,
	    "user_leave_org applied (%d applied, %d failed)", run.applied,
	    run.failed);
	CHECK(unit_count(db, "SELECT active FROM users WHERE userid = 'u1'") ==
	    0 && unit_count(db, "SELECT count(*) FROM sessions") == 0,
	    "the leaver is inactive and signed out");
	CHECK(unit_count(db, "SELECT attempts FROM events WHERE dedupe_key = "
	    "'sig:aaa' AND state = 'applied' AND applied_at > 0 AND "
	    "last_error IS NULL") == 1, "bookkeeping of an applied event");
	CHECK(store(db, "{\"EventType\":\"org_dept_remove\",\"DeptId\":[5]}",
	    "sig:eee", &stored) == 0 &&
	    events_apply_pending(db, 0, 0, 1, &run, &err) == DA_OK &&
	    run.applied == 1 &&
	    unit_count(db, "SELECT count(*) FROM departments") == 0 &&
	    unit_count(db, "SELECT count(*) FROM user_depts") == 1,
	    "org_dept_remove removes the department and its memberships");

	/* Applying what needs DingTalk, with no app configured: stops. */
	CHECK(store(db, "{\"EventType\":\"user_add_org\",\"UserId\":[\"u2\"]}",
	    "sig:fff", &stored) == 0 &&
	    store(db, "{\"EventType\":\"user_leave_org\",\"UserId\":[\"u1\"]}",
	    "sig:ggg", &stored) == 0, "two more events");
	CHECK(events_apply_pending(db, 0, 0, 1, &run, &err) == DA_OK &&
	    run.applied == 0 && run.failed == 1 && run.pending == 2 &&
	    run.first_error.code == DA_ECONFIG,
	    "a configuration error stops the run (%s)", run.first_error.msg);
	CHECK(unit_count(db, "SELECT count(*) FROM events"
	    " WHERE state = 'pending' AND attempts = 1"
	    " AND last_error LIKE 'ECONFIG: user u2: %'") == 1 &&
	    unit_count(db, "SELECT count(*) FROM events"
	    " WHERE state = 'pending' AND attempts = 0") == 1,
	    "the first keeps its error, the second was not tried");
	CHECK(unit_count(db, "SELECT count(*) FROM events WHERE state ="
	    " 'pending' AND attempts = 1 AND next_attempt_at >= strftime('%s',"
	    " 'now') + 25 AND claimed_until = 0") == 1,
	    "the failed one waits about 30 s for its next attempt");
	CHECK(events_apply_pending(db, 0, 0, 0, &run, &err) == DA_OK &&
	    run.applied == 1 && run.failed == 0 && run.pending == 1 &&
	    unit_count(db, "SELECT max(attempts) FROM events"
	    " WHERE state = 'pending'") == 1,
	    "the next one is applied past it; it is not tried before its time");

	/* A payload that is not an event (not written by us) is set aside. */
	sqlite3_exec(db_handle(db), "DELETE FROM events WHERE state = "
	    "'pending'; INSERT INTO events (dedupe_key, event_type, payload, "
	    "received_at) VALUES ('x', 'user_add_org', 'garbage', 1)", NULL,
	    NULL, NULL);
	CHECK(events_apply_pending(db, 0, 0, 0, &run, &err) == DA_OK &&
	    run.pending == 0 && unit_count(db, "SELECT count(*) FROM events"
	    " WHERE dedupe_key = 'x' AND state = 'ignored'"
	    " AND last_error LIKE 'EINPUT%'") == 1,
	    "an unparsable stored event is ignored");
}

/* Listing: all, the newest few, the pending ones. */
static void
test_list(struct db *db)
{
	struct da_error		 err;
	long long		 id;
	int			 listed;

	da_error_clear(&err);
	listed = 0;
	CHECK(events_each(db, 0, 0, list_counter, &listed, &err) == DA_OK &&
	    listed == (int)unit_count(db, "SELECT count(*) FROM events"),
	    "list all (%d)", listed);
	listed = 0;
	CHECK(events_each(db, 0, 2, list_counter, &listed, &err) == DA_OK &&
	    listed == 2, "list with a limit");
	id = 0;
	CHECK(events_each(db, 0, 2, list_first, &id, &err) == DA_OK &&
	    id == unit_count(db, "SELECT max(id) - 1 FROM events"),
	    "the newest events, oldest first");
	listed = 0;
	CHECK(events_each(db, EVENTS_PENDING, 0, list_counter, &listed,
	    &err) == DA_OK && listed == 0, "list pending: none");
	sqlite3_exec(db_handle(db), "UPDATE events SET state = 'failed'"
	    " WHERE dedupe_key = 'x'", NULL, NULL, NULL);
	listed = 0;
	CHECK(events_each(db, EVENTS_FAILED, 0, list_counter, &listed,
	    &err) == DA_OK && listed == 1, "list failed: one");
}

int
main(void)
{
	struct da_error		 err;
	struct db		*db = NULL;
	char			 dir[] = "/tmp/dingauth-events-XXXXXX";
	char			 path[128];

	da_error_clear(&err);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/t.db", dir);
	setenv("DINGAUTH_CONFIG", "/dev/null", 1);
	config_load(0, &err);

	test_parse();
	test_refuse();
	CHECK(db_create(path, 0600, &db, &err) == DA_OK, "open (%s)",
	    err.msg);
	if (db != NULL) {
		test_store(db);
		test_apply(db);
		test_list(db);
		test_seen(db, dir);
	}
	db_close(db);
	remove_dir(dir);
	return unit_done();
}
