/* Unit tests of config.c: file, environment, validation, defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char	path[64];

static void
write_conf(const char *text)
{
	FILE	*f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	setenv("DINGAUTH_CONFIG", path, 1);
}

static void
clear_env(void)
{
	int	 i;

	for (i = 0; i < CFG__MAX; i++)
		unsetenv(config_name((enum cfg_key)i));
}

int
main(void)
{
	struct da_error	 err;
	int		 fd;

	snprintf(path, sizeof(path), "/tmp/dingauth-conf-XXXXXX");
	fd = mkstemp(path);
	close(fd);
	clear_env();

	write_conf("# comment\n\nDINGTALK_CORP_ID = dingcorp1\n"
	    "DINGAUTH_DB=/tmp/x.db\nDINGTALK_OAPI_URL = http://127.0.0.1:9/\n"
	    "DINGAUTH_SESSION_TTL = \"7200\"\n");
	memset(&err, 0, sizeof(err));
	CHECK(config_load(0, &err) == DA_OK, "a valid file loads (%s)",
	    err.msg);
	CHECK_STR(config_str(CFG_CORP_ID), "dingcorp1", "value read");
	CHECK_STR(config_str(CFG_DB), "/tmp/x.db", "value without spaces");
	CHECK_STR(config_str(CFG_OAPI_URL), "http://127.0.0.1:9",
	    "trailing slash of a URL dropped");
	CHECK(config_int(CFG_SESSION_TTL) == 7200, "quoted integer");
	CHECK(config_int(CFG_SESSION_IDLE) == 3600, "default integer");
	CHECK_STR(config_str(CFG_LOGIN_FLOW), "oauth2", "default flow");
	CHECK_STR(config_str(CFG_CALLBACK_RECEIVER), "dingcorp1",
	    "receiver defaults to the CorpId");
	CHECK_STR(config_source(CFG_CORP_ID), "file", "source file");
	CHECK_STR(config_source(CFG_SESSION_IDLE), "default", "source default");
	CHECK(strstr(config_str(CFG_DDLOGIN_JS), "h5-dingtalk-login") != NULL,
	    "the default (oauth2) flow uses the DTFrameLogin script");
	setenv("DINGAUTH_LOGIN_FLOW", "sns", 1);
	CHECK(config_load(0, &err) == DA_OK, "sns flow loads");
	CHECK(strstr(config_str(CFG_DDLOGIN_JS), "dinglogin/0.0.5/ddLogin.js")
	    != NULL, "sns flow uses the ddLogin.js script");
	unsetenv("DINGAUTH_LOGIN_FLOW");

	setenv("DINGTALK_CORP_ID", "dingenv", 1);
	setenv("DINGAUTH_LOGIN_FLOW", "oauth2", 1);
	CHECK(config_load(0, &err) == DA_OK, "environment loads");
	CHECK_STR(config_str(CFG_CORP_ID), "dingenv",
	    "environment overrides the file");
	CHECK_STR(config_source(CFG_CORP_ID), "env", "source env");
	CHECK(strstr(config_str(CFG_DDLOGIN_JS), "h5-dingtalk-login") != NULL,
	    "oauth2 flow uses the DTFrameLogin script");
	setenv("DINGAUTH_CALLBACK_RECEIVER", "dingappkey", 1);
	CHECK(config_load(0, &err) == DA_OK &&
	    strcmp(config_str(CFG_CALLBACK_RECEIVER), "dingappkey") == 0,
	    "receiver may be set to the AppKey");
	clear_env();

	write_conf("DINGTALK_CORP_ID = x\nDINGAUTH_NO_SUCH = 1\n");
	memset(&err, 0, sizeof(err));
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_NO_SUCH") != NULL &&
	    strstr(err.msg, ":2:") != NULL,
	    "unknown key named with its line (%s)", err.msg);

	write_conf("DINGAUTH_SESSION_TTL = 10\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_SESSION_TTL") != NULL,
	    "out-of-range integer named (%s)", err.msg);
	write_conf("DINGAUTH_COOKIE_SECURE = yes\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_COOKIE_SECURE") != NULL,
	    "bad boolean named (%s)", err.msg);
	write_conf("DINGAUTH_LOGIN_FLOW = saml\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_LOGIN_FLOW") != NULL,
	    "bad enum named (%s)", err.msg);
	write_conf("DINGTALK_AES_TOKEN = tooshort\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGTALK_AES_TOKEN") != NULL &&
	    strstr(err.msg, "tooshort") == NULL,
	    "bad AES key named, value not echoed (%s)", err.msg);
	write_conf("DINGTALK_AES_TOKEN = abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+\n");
	CHECK(config_load(0, &err) == DA_ECONFIG, "AES key with '+' refused");
	write_conf("DINGTALK_OAPI_URL = ftp://x\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGTALK_OAPI_URL") != NULL, "bad URL named");
	write_conf("DINGAUTH_DB = relative.db\n");
	CHECK(config_load(0, &err) == DA_ECONFIG, "relative DB path refused");
	write_conf("DINGAUTH_REQUIRE_DEPTS = 1, 23,456\n");
	CHECK(config_load(0, &err) == DA_OK, "department list accepted");
	CHECK(cfg()->nrequire_depts == 3 && cfg()->require_depts[0] == 1 &&
	    cfg()->require_depts[1] == 23 && cfg()->require_depts[2] == 456,
	    "department list parsed once, into ids");
	CHECK(cfg()->nrequire_users == 0 &&
	    cfg()->login_flow == CFG_FLOW_OAUTH2 && cfg()->unknown_user == CFG_UNKNOWN_REVIEW &&
	    cfg()->log_level == LOG_INFO, "enum defaults as indexes");
	write_conf("DINGAUTH_REQUIRE_USERS = u1 , manager2\n"
	    "DINGAUTH_LOGIN_FLOW = oauth2\nDINGAUTH_UNKNOWN_USER = admit\n"
	    "DINGAUTH_LOG_LEVEL = debug\n");
	CHECK(config_load(0, &err) == DA_OK && cfg()->nrequire_users == 2 &&
	    strcmp(cfg()->require_users[0], "u1") == 0 &&
	    strcmp(cfg()->require_users[1], "manager2") == 0,
	    "user list parsed once, spaces around items dropped");
	CHECK(cfg()->login_flow == CFG_FLOW_OAUTH2 &&
	    cfg()->unknown_user == CFG_UNKNOWN_ADMIT &&
	    cfg()->log_level == LOG_DEBUG &&
	    config_int(CFG_LOGIN_FLOW) == CFG_FLOW_OAUTH2,
	    "enums kept as their index");
	CHECK_STR(config_choice(CFG_LOGIN_FLOW, cfg()->login_flow), "oauth2",
	    "an index names its value");
	CHECK_STR(config_choice(CFG_LOGIN_FLOW, 7), "?", "no such index");
	{
		char	 big[CFG_LIST_MAX * 5 + 64];
		size_t	 n = 0;
		int	 i;

		n += (size_t)snprintf(big, sizeof(big),
		    "DINGAUTH_REQUIRE_DEPTS = ");
		for (i = 1; i <= CFG_LIST_MAX; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n,
			    "%s%d", i > 1 ? "," : "", i);
		snprintf(big + n, sizeof(big) - n, "\n");
		write_conf(big);
		CHECK(config_load(0, &err) == DA_OK &&
		    cfg()->nrequire_depts == CFG_LIST_MAX,
		    "a list of CFG_LIST_MAX ids accepted");
		snprintf(big + n, sizeof(big) - n, ",999\n");
		write_conf(big);
		CHECK(config_load(0, &err) == DA_ECONFIG &&
		    strstr(err.msg, "DINGAUTH_REQUIRE_DEPTS") != NULL,
		    "one id more refused at load, naming the key (%s)",
		    err.msg);
	}
	write_conf("DINGAUTH_REQUIRE_DEPTS = 1,,2\n");
	CHECK(config_load(0, &err) == DA_ECONFIG, "empty list item refused");
	write_conf("DINGAUTH_REQUIRE_DEPTS = 1,x\n");
	CHECK(config_load(0, &err) == DA_ECONFIG, "non-numeric id refused");
	write_conf("DINGAUTH_SESSION_TTL = 600\nDINGAUTH_SESSION_IDLE = 900\n");
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_SESSION_IDLE") != NULL,
	    "idle longer than absolute lifetime refused");
	write_conf("just words\n");
	CHECK(config_load(0, &err) == DA_ECONFIG, "line without '=' refused");

	write_conf("DINGTALK_CORP_SECRET = s3cr3t-value\n");
	CHECK(config_load(CFG_NEED_DIRECTORY, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGTALK_CORP_ID") != NULL &&
	    strstr(err.msg, "s3cr3t") == NULL,
	    "missing required key named (%s)", err.msg);
	write_conf("DINGTALK_CORP_ID = c\nDINGTALK_APP_KEY = k\n"
	    "DINGTALK_CORP_SECRET = s\n");
	CHECK(config_load(CFG_NEED_DIRECTORY, &err) == DA_OK,
	    "directory needs met");
	setenv("DINGAUTH_LOGIN_FLOW", "oauth2", 1);
	CHECK(config_load(CFG_NEED_EXCHANGE, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_PUBLIC_URL") != NULL,
	    "exchange needs the public URL (%s)", err.msg);
	setenv("DINGAUTH_LOGIN_FLOW", "sns", 1);
	write_conf("DINGTALK_CORP_ID = c\nDINGTALK_APP_KEY = k\n"
	    "DINGTALK_CORP_SECRET = s\nDINGAUTH_PUBLIC_URL = https://e.x\n");
	CHECK(config_load(CFG_NEED_EXCHANGE, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGTALK_APP_ID") != NULL,
	    "the sns flow needs the QR app's id (%s)", err.msg);
	setenv("DINGAUTH_LOGIN_FLOW", "oauth2", 1);
	CHECK(config_load(CFG_NEED_EXCHANGE, &err) == DA_OK,
	    "the oauth2 flow does not (%s)", err.msg);
	write_conf("DINGAUTH_PUBLIC_URL = https://e.x\n");
	CHECK(config_load(CFG_NEED_LOGIN, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGTALK_APP_KEY") != NULL,
	    "the oauth2 login page needs the app key (%s)", err.msg);
	write_conf("DINGTALK_CORP_ID = c\nDINGTALK_APP_KEY = k\n"
	    "DINGTALK_CORP_SECRET = s\nDINGAUTH_PUBLIC_URL = https://e.x\n");
	CHECK_STR(config_str(CFG_CALLBACK_URL), "https://e.x/dingauth/callback",
	    "callback URL derived from the public URL");
	clear_env();

	setenv("DINGAUTH_CONFIG", "/nonexistent/dingauth.conf", 1);
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_CONFIG") != NULL,
	    "a named config file that is missing is an error");
	setenv("DINGAUTH_CONFIG", path, 1);
	write_conf("");
	setenv("DINGAUTH_HTTP_TIMEOUT", "abc", 1);
	CHECK(config_load(0, &err) == DA_ECONFIG &&
	    strstr(err.msg, "DINGAUTH_HTTP_TIMEOUT") != NULL,
	    "a bad environment value is named");
	unsetenv("DINGAUTH_HTTP_TIMEOUT");
	CHECK(config_lookup("DINGTALK_TOKEN") == CFG_TOKEN &&
	    config_type(CFG_TOKEN) == CFG_T_SECRET &&
	    config_type(CFG_CORP_SECRET) == CFG_T_SECRET &&
	    config_type(CFG_APP_SECRET) == CFG_T_SECRET,
	    "secrets are typed as secrets");
	unlink(path);
	return unit_done();
}
