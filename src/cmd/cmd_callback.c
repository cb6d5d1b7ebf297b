/*
 * dingauth callback register|update|show|delete|failed: the legacy
 * callback registration (docs/dingtalk.md §g).
 *
 * register/update send DINGTALK_TOKEN, DINGTALK_AES_TOKEN, the public
 * callback URL (DINGAUTH_CALLBACK_URL, by default DINGAUTH_PUBLIC_URL +
 * DINGAUTH_BASE_PATH + "/callback") and the address-book tags. DingTalk
 * answers only after it has posted check_url to that URL and got the
 * encrypted "success" back, so callback.fcgi must already be deployed
 * there with the same token and key. show never prints the token or the
 * key DingTalk holds: it says whether they match ours. failed turns
 * DingTalk's list of pushes it could not deliver into pending events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "events.h"
#include "json.h"
#include "mem.h"

#define FAILED_PAGES_MAX	100	/* 200 entries each */
#define TAGS_MAX		64

enum sub {
	SUB_REGISTER,
	SUB_UPDATE,
	SUB_SHOW,
	SUB_DELETE,
	SUB_FAILED,
	SUB__MAX
};

static int	callback_register(const struct cmd_sub *,
		    const struct cmd_args *);
static int	callback_show(const struct cmd_sub *, const struct cmd_args *);
static int	callback_delete(const struct cmd_sub *,
		    const struct cmd_args *);
static int	callback_failed(const struct cmd_sub *,
		    const struct cmd_args *);

/* arg: 1 for update_call_back. */
static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_REGISTER] = { "register", callback_register,
	    CMD_OPT(OPT_URL) | CMD_OPT(OPT_TAGS), 0,
	    CFG_NEED_DIRECTORY | CFG_NEED_CALLBACK, 0,
	    "usage: dingauth callback register [--url URL] [--tags TAG,...]\n\n"
	    "Registers the callback with DingTalk (register_call_back): the\n"
	    "configured DINGTALK_TOKEN and DINGTALK_AES_TOKEN, the URL (default\n"
	    "DINGAUTH_CALLBACK_URL, else DINGAUTH_PUBLIC_URL + "
	    "DINGAUTH_BASE_PATH +\n\"/callback\") and the address-book tags "
	    "(default: all nine). DingTalk\nposts check_url to the URL "
	    "first, so callback.fcgi must already answer\nthere with this "
	    "configuration. Only one URL per app: use 'update' to\nchange "
	    "it.\n" },
	[SUB_UPDATE] = { "update", callback_register,
	    CMD_OPT(OPT_URL) | CMD_OPT(OPT_TAGS), 0,
	    CFG_NEED_DIRECTORY | CFG_NEED_CALLBACK, 1,
	    "usage: dingauth callback update [--url URL] [--tags TAG,...]\n\n"
	    "Replaces the registration (update_call_back) with the same "
	    "values\nas 'register': token, key, URL and tags. DingTalk "
	    "posts check_url\nto the URL first.\n" },
	[SUB_SHOW] = { "show", callback_show, CMD_OPT(OPT_JSON), 0,
	    CFG_NEED_DIRECTORY, 0,
	    "usage: dingauth callback show [--json]\n\n"
	    "Shows what DingTalk has registered (get_call_back): the URL, the\n"
	    "tags, and whether its token and key match DINGTALK_TOKEN and\n"
	    "DINGTALK_AES_TOKEN (neither is printed). Exit 1 when nothing is\n"
	    "registered.\n" },
	[SUB_DELETE] = { "delete", callback_delete, 0, 0, CFG_NEED_DIRECTORY,
	    0,
	    "usage: dingauth callback delete\n\n"
	    "Removes the registration (delete_call_back): DingTalk stops "
	    "pushing.\n" },
	[SUB_FAILED] = { "failed", callback_failed,
	    CMD_OPT(OPT_JSON) | CMD_OPT(OPT_APPLY), 0,
	    CFG_NEED_DIRECTORY | CFG_NEED_DB, 0,
	    "usage: dingauth callback failed [--apply] [--json]\n\n"
	    "Fetches the pushes DingTalk could not deliver "
	    "(get_call_back_failed_result,\nall pages). Entries carrying user "
	    "or department ids become pending\nevents ('dingauth events "
	    "list --pending'; --apply applies them now,\nlike 'dingauth "
	    "events retry'). For entries without ids it says that a\nfull "
	    "sync ('dingauth sync') is needed. DingTalk hands each entry out\n"
	    "once.\n" },
};

static const struct cmd_group group = {
	.name = "callback",
	.usage = "usage: dingauth callback register|update|show|delete|failed "
	    "[options]\n\n"
	    "  register  register this site's callback URL with DingTalk\n"
	    "  update    replace the registration (URL, tags, token, key)\n"
	    "  show      what DingTalk has registered\n"
	    "  delete    remove the registration\n"
	    "  failed    turn pushes DingTalk could not deliver into pending "
	    "events\n\n"
	    "'dingauth callback SUBCOMMAND --help' describes each one.\n",
	.subs = subs,
	.nsubs = SUB__MAX,
};

/* What an error from DingTalk's callback calls means for an operator. */
static int
callback_error(const char *what, const struct da_error *err)
{
	const char	*hint = "";

	switch (err->api_code) {
	case 71006:
		hint = "\nA callback is already registered for this app: use "
		    "'dingauth callback update'.";
		break;
	case 71007:
		hint = "\nNo callback is registered for this app.";
		break;
	case 71008:
		hint = "\nDingTalk does not allow one of the tags.";
		break;
	case 71009:
	case 71011:
	case 71012:
	case 71013:
		hint = "\nDingTalk posted check_url to the URL and did not get "
		    "the encrypted\n\"success\" back: callback.fcgi must "
		    "answer at that URL, reachable from\nthe internet, with "
		    "this DINGTALK_TOKEN, DINGTALK_AES_TOKEN and\n"
		    "DINGAUTH_CALLBACK_RECEIVER (the CorpId).";
		break;
	}
	return cmd_fail("%s: %s%s", what, err->msg, hint);
}

/* Split a comma-separated tag list into tags[] (pointers into copy). */
static int
split_tags(char *copy, const char **tags, size_t max)
{
	char	*p = copy, *t;
	size_t	 n = 0;

	while ((t = strsep(&p, ",")) != NULL) {
		if (*t == '\0')
			continue;
		if (n + 1 >= max)
			return -1;
		tags[n++] = t;
	}
	tags[n] = NULL;
	return n > 0 ? 0 : -1;
}

static int
callback_register(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err;
	struct db	*db = NULL;
	const char	*tags[TAGS_MAX], *url;
	const char *const *use = dt_addressbook_tags;
	char		*copy = NULL;
	int		 rc, update = sub->arg;

	da_error_clear(&err);
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	url = a->opt[OPT_URL] != NULL ? a->opt[OPT_URL] :
	    cfg()->str[CFG_CALLBACK_URL];
	if (*url == '\0') {
		rc = cmd_usage("no callback URL: give --url or set %s (or %s)",
		    config_name(CFG_CALLBACK_URL), config_name(CFG_PUBLIC_URL));
		goto out;
	}
	if (a->opt[OPT_URL] != NULL &&
	    config_check(CFG_CALLBACK_URL, url, &err) != DA_OK) {
		rc = cmd_usage("--url: %s", err.msg);
		goto out;
	}
	if (a->opt[OPT_TAGS] != NULL) {
		copy = xstrdup(a->opt[OPT_TAGS]);
		if (split_tags(copy, tags, TAGS_MAX) == -1) {
			rc = cmd_usage("--tags: give 1 to %d comma-separated "
			    "tags", TAGS_MAX - 1);
			goto out;
		}
		use = tags;
	}
	if (strcmp(cfg()->str[CFG_CALLBACK_RECEIVER],
	    cfg()->str[CFG_CORP_ID]) != 0)
		fprintf(stderr, "dingauth: warning: %s is not the CorpId, but "
		    "register_call_back pushes\ncarry the CorpId as receiver "
		    "id: callback.fcgi will refuse them.\n",
		    config_name(CFG_CALLBACK_RECEIVER));
	if (dt_callback_register(db, update, use, cfg()->str[CFG_TOKEN],
	    cfg()->str[CFG_AES_TOKEN], url, &err) != DA_OK) {
		rc = callback_error(update ? "update_call_back" :
		    "register_call_back", &err);
		goto out;
	}
	printf("callback %s: %s\n", update ? "updated" : "registered", url);
	rc = EXIT_OK;
out:
	free(copy);
	db_close(db);
	return rc;
}

/* Does DingTalk's copy of a secret match ours? Never prints either. */
static const char *
secret_match(const json *answer, const char *key, enum cfg_key ours)
{
	const char	*theirs;

	if (!config_is_set(ours))
		return "unknown";
	if (json_get_str(answer, key, &theirs) != JSON_OK)
		return "missing";
	return crypto_str_equal(theirs, config_str(ours)) ? "match" :
	    "differ";
}

static int
callback_show(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err;
	struct db	*db = NULL;
	json		*answer = NULL, *tags = NULL, *out = NULL, *list;
	const char	*url = "", *s;
	size_t		 i;
	int		 rc;

	da_error_clear(&err);
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	if (dt_callback_get(db, &answer, &err) != DA_OK) {
		if (err.api_code == 71007) {
			if (a->opt[OPT_JSON] != NULL)
				puts("{\"registered\":false}");
			rc = cmd_fail("no callback is registered with "
			    "DingTalk");
		} else
			rc = callback_error("get_call_back", &err);
		goto out;
	}
	json_get_str(answer, "url", &url);
	json_get_array(answer, "call_back_tag", &tags);
	if (a->opt[OPT_JSON] != NULL) {
		out = json_new_object();
		json_add_bool(out, "registered", 1);
		json_add_str(out, "url", url);
		list = json_new_array();
		for (i = 0; i < json_array_size(tags); i++)
			if ((s = json_as_str(json_array_item(tags, i))) != NULL)
				json_append_str(list, s);
		json_add(out, "tags", list);
		json_add_str(out, "token", secret_match(answer, "token",
		    CFG_TOKEN));
		json_add_str(out, "aes_key", secret_match(answer, "aes_key",
		    CFG_AES_TOKEN));
		json_add_bool(out, "url_matches",
		    strcmp(url, cfg()->str[CFG_CALLBACK_URL]) == 0);
		cmd_print_json(out);
	} else {
		printf("url:     %s%s\n", url,
		    strcmp(url, cfg()->str[CFG_CALLBACK_URL]) == 0 ? "" :
		    "  (not DINGAUTH_CALLBACK_URL)");
		printf("tags:   ");
		for (i = 0; i < json_array_size(tags); i++)
			if ((s = json_as_str(json_array_item(tags, i))) != NULL)
				printf(" %s", s);
		printf("\ntoken:   %s DINGTALK_TOKEN\n", secret_match(answer,
		    "token", CFG_TOKEN));
		printf("aes_key: %s DINGTALK_AES_TOKEN\n", secret_match(answer,
		    "aes_key", CFG_AES_TOKEN));
	}
	rc = EXIT_OK;
out:
	json_free(out);
	json_free(answer);
	db_close(db);
	return rc;
}

static int
callback_delete(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err;
	struct db	*db = NULL;
	int		 rc;

	da_error_clear(&err);
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	if (dt_callback_delete(db, &err) != DA_OK) {
		rc = callback_error("delete_call_back", &err);
		goto out;
	}
	printf("callback registration deleted\n");
	rc = EXIT_OK;
out:
	db_close(db);
	return rc;
}

/* What `callback failed` found. */
struct failed_count {
	int	 fetched;
	int	 added;
	int	 duplicates;
	int	 without_ids;	/* address-book entries without ids */
	int	 ignored;	/* entries of other tags */
	json	*tags_without_ids;	/* array of strings, each once */
	json	*tags_ignored;
};

static const char *const keys_users[] = { "userid", "UserId", "userId",
	NULL };
static const char *const keys_depts[] = { "deptid", "DeptId", "deptId",
	NULL };

/* A deep copy of j (json.h has no duplicate: print and parse). */
static json *
json_copy(const json *j)
{
	char	*text = json_print(j);
	json	*copy;

	copy = json_parse(text, strlen(text));
	free(text);
	if (copy == NULL)
		abort();	/* we printed it: cannot happen */
	return copy;
}

/* Append tag to list unless it is there already. */
static void
add_tag(json *list, const char *tag)
{
	size_t	 i;

	for (i = 0; i < json_array_size(list); i++)
		if (strcmp(json_as_str(json_array_item(list, i)), tag) == 0)
			return;
	json_append_str(list, tag);
}

static int
addressbook_tag(const char *tag)
{
	const char *const	*t;

	for (t = dt_addressbook_tags; *t != NULL; t++)
		if (strcmp(*t, tag) == 0)
			return 1;
	return 0;
}

/*
 * An entry that does not become an event: an address-book one without
 * ids means our directory may have missed a change only a full sync
 * finds; any other tag is not ours to apply.
 */
static void
note_unused(struct failed_count *c, const char *tag)
{
	if (addressbook_tag(tag)) {
		c->without_ids++;
		add_tag(c->tags_without_ids, tag);
	} else {
		c->ignored++;
		add_tag(c->tags_ignored, tag);
	}
}

/*
 * One entry of failed_list, either shape of §g: the ids in an object
 * named after the tag (2020+), or flat in the entry (2016). An entry
 * with ids becomes the legacy push it stands for and is stored.
 */
static int
failed_entry(struct db *db, const json *item, struct failed_count *c)
{
	struct da_error	 err;
	struct event	 ev;
	const json	*data = item, *users, *depts;
	json		*push = NULL, *nested;
	const char	*tag;
	char		*text = NULL, key[EVENT_KEY_MAX], hex[65], *basis;
	char		 ts[32];
	long long	 when = 0, id = 0;
	int		 rc = EXIT_OK, stored = 0;

	memset(&ev, 0, sizeof(ev));
	da_error_clear(&err);
	c->fetched++;
	if ((tag = json_as_str(json_get(item, "call_back_tag"))) == NULL ||
	    *tag == '\0') {
		note_unused(c, "(no tag)");
		goto out;
	}
	if (json_get_object(item, tag, &nested) == JSON_OK)
		data = nested;
	users = json_get_any(data, keys_users);
	depts = json_get_any(data, keys_depts);
	json_get_int(item, "event_time", &when);
	push = json_new_object();
	json_add_str(push, "EventType", tag);
	if (users != NULL)
		json_add(push, "UserId", json_copy(users));
	if (depts != NULL)
		json_add(push, "DeptId", json_copy(depts));
	if (when > 0) {
		snprintf(ts, sizeof(ts), "%lld", when);
		json_add_str(push, "TimeStamp", ts);
	}
	json_add_str(push, "source", "get_call_back_failed_result");
	text = json_print(push);
	if ((users == NULL && depts == NULL) ||
	    events_parse(text, strlen(text), &ev, &err) != DA_OK ||
	    ev.kind == EVENT_OTHER || ev.kind == EVENT_CHECK_URL) {
		note_unused(c, tag);
		goto out;
	}
	/* The same entry fetched twice is stored once. */
	basis = json_print(item);
	crypto_sha256_hex(basis, strlen(basis), hex);
	free(basis);
	snprintf(key, sizeof(key), "failed:%s", hex);
	if (events_store(db, &ev, text, strlen(text), key, &stored, &id,
	    &err) != DA_OK) {
		rc = cmd_fail("storing a failed %s push: %s", tag, err.msg);
		goto out;
	}
	if (stored)
		c->added++;
	else
		c->duplicates++;
out:
	event_clear(&ev);
	free(text);
	json_free(push);
	return rc;
}

static void
print_tags(const char *what, const json *tags)
{
	size_t	 i;

	printf("%s: ", what);
	for (i = 0; i < json_array_size(tags); i++)
		printf("%s%s", i ? ", " : "", json_as_str(json_array_item(tags,
		    i)));
	printf("\n");
}

/* The summary of `callback failed --json`; run is NULL without --apply. */
static void
failed_print_json(struct failed_count *c, const struct events_run *run)
{
	json	*out = json_new_object();

	json_add_int(out, "fetched", c->fetched);
	json_add_int(out, "added", c->added);
	json_add_int(out, "duplicates", c->duplicates);
	json_add_int(out, "without_ids", c->without_ids);
	json_add_bool(out, "sync_needed", c->without_ids > 0);
	json_add(out, "tags_without_ids", c->tags_without_ids);
	c->tags_without_ids = NULL;
	json_add_int(out, "ignored", c->ignored);
	json_add(out, "tags_ignored", c->tags_ignored);
	c->tags_ignored = NULL;
	if (run != NULL) {
		json_add_int(out, "applied", run->applied);
		json_add_int(out, "failed", run->failed);
		json_add_int(out, "pending", run->pending);
	}
	cmd_print_json(out);
	json_free(out);
}

/* The same summary as text. */
static void
failed_print(const struct failed_count *c, const struct events_run *run)
{
	printf("%d failed push(es) fetched: %d new pending event(s), "
	    "%d already stored, %d without ids, %d ignored\n",
	    c->fetched, c->added, c->duplicates, c->without_ids, c->ignored);
	if (c->without_ids > 0) {
		print_tags("address-book entries without user or "
		    "department ids", c->tags_without_ids);
		printf("a full sync is needed: run 'dingauth sync'\n");
	}
	if (c->ignored > 0)
		print_tags("not address-book events, ignored",
		    c->tags_ignored);
	if (run != NULL)
		printf("applied %d, failed %d, %lld pending\n",
		    run->applied, run->failed, run->pending);
	else if (c->added > 0)
		printf("run 'dingauth events retry' to apply them\n");
}

static int
callback_failed(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct failed_count	 c;
	struct events_run	 run;
	struct da_error		 err;
	struct db		*db = NULL;
	json			*answer = NULL, *list;
	size_t			 i;
	int			 rc, page, more = 1;

	memset(&c, 0, sizeof(c));
	memset(&run, 0, sizeof(run));
	da_error_clear(&err);
	c.tags_without_ids = json_new_array();
	c.tags_ignored = json_new_array();
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		goto out;
	for (page = 0; more && page < FAILED_PAGES_MAX; page++) {
		json_free(answer);
		answer = NULL;
		if (dt_callback_failed(db, &answer, &err) != DA_OK) {
			rc = callback_error("get_call_back_failed_result",
			    &err);
			goto out;
		}
		if (json_get_array(answer, "failed_list", &list) == JSON_OK)
			for (i = 0; i < json_array_size(list); i++)
				if ((rc = failed_entry(db, json_array_item(list,
				    i), &c)) != EXIT_OK)
					goto out;
		if (json_get_bool(answer, "has_more", &more) != JSON_OK)
			more = 0;
	}
	if (a->opt[OPT_APPLY] != NULL &&
	    events_apply_pending(db, 0, 0, 1, &run, &err) != DA_OK) {
		rc = cmd_fail("applying events: %s", err.msg);
		goto out;
	}
	if (a->opt[OPT_JSON] != NULL)
		failed_print_json(&c, a->opt[OPT_APPLY] != NULL ? &run : NULL);
	else
		failed_print(&c, a->opt[OPT_APPLY] != NULL ? &run : NULL);
	rc = run.failed > 0 ? EXIT_FAIL : EXIT_OK;
out:
	json_free(c.tags_without_ids);
	json_free(c.tags_ignored);
	json_free(answer);
	db_close(db);
	return rc;
}

int
cmd_callback(int argc, char **argv)
{
	return cmd_dispatch(&group, argc, argv);
}
