/* Unit tests of the JSON facade: DingTalk's mixed types. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "unit.h"

int
main(void)
{
	const char	*text = "{\"errcode\":\"0\",\"n\":42,\"s\":\"x\","
	    "\"ts\":1645077203219,\"tss\":\"1645077203219\",\"f\":1.5,"
	    "\"b\":true,\"bs\":\"false\",\"b1\":1,\"nul\":null,"
	    "\"arr\":[1,\"2\",3],\"o\":{\"k\":\"v\"},\"UserId\":[\"u1\"]}";
	const char	*s = NULL;
	const char	*spellings[] = { "userId", "UserId", NULL };
	json		*j, *a = NULL, *o = NULL, *built;
	long long	 n = 0;
	char		 buf[32], *out;
	int		 b = -1;

	j = json_parse(text, strlen(text));
	CHECK(j != NULL && json_is_object(j), "parses");
	CHECK(json_get_int(j, "errcode", &n) == JSON_OK && n == 0,
	    "number sent as a string");
	CHECK(json_get_int(j, "n", &n) == JSON_OK && n == 42, "number");
	CHECK(json_get_int(j, "ts", &n) == JSON_OK && n == 1645077203219LL,
	    "13-digit timestamp as number");
	CHECK(json_get_int(j, "tss", &n) == JSON_OK && n == 1645077203219LL,
	    "13-digit timestamp as string");
	CHECK(json_get_int(j, "f", &n) == JSON_WRONG_TYPE, "fraction is not "
	    "an integer");
	CHECK(json_get_int(j, "s", &n) == JSON_WRONG_TYPE, "text is not an "
	    "integer");
	CHECK(json_get_int(j, "missing", &n) == JSON_MISSING, "missing");
	CHECK(json_get_int(j, "nul", &n) == JSON_MISSING, "null is missing");
	CHECK(json_get_str(j, "s", &s) == JSON_OK && strcmp(s, "x") == 0,
	    "string");
	CHECK(json_get_str(j, "n", &s) == JSON_WRONG_TYPE,
	    "number is not a string to json_get_str");
	CHECK(json_get_text(j, "n", buf, sizeof(buf)) == JSON_OK &&
	    strcmp(buf, "42") == 0, "number as text");
	CHECK(json_get_text(j, "ts", buf, sizeof(buf)) == JSON_OK &&
	    strcmp(buf, "1645077203219") == 0, "big number as text");
	{
		char	 small[4] = "zzz";

		CHECK(json_get_text(j, "ts", small, sizeof(small)) ==
		    JSON_TOO_LONG && small[0] == '\0',
		    "text that does not fit: TOO_LONG, never cut");
		CHECK(json_get_text(j, "s", small, 2) == JSON_OK &&
		    strcmp(small, "x") == 0, "text that just fits");
		CHECK(json_as_text(json_get(j, "o"), small, sizeof(small)) ==
		    JSON_WRONG_TYPE, "an object is not text");
	}
	CHECK(json_get_bool(j, "b", &b) == JSON_OK && b == 1, "bool");
	CHECK(json_get_bool(j, "bs", &b) == JSON_OK && b == 0, "bool string");
	CHECK(json_get_bool(j, "b1", &b) == JSON_OK && b == 1, "bool number");
	CHECK(json_get_bool(j, "s", &b) == JSON_WRONG_TYPE, "bad bool");
	CHECK(json_get_array(j, "arr", &a) == JSON_OK &&
	    json_array_size(a) == 3, "array");
	CHECK(json_as_int(json_array_item(a, 1), &n) == JSON_OK && n == 2,
	    "array item number-as-string");
	CHECK(json_get_array(j, "o", &a) == JSON_WRONG_TYPE,
	    "object is not an array");
	CHECK(json_get_object(j, "o", &o) == JSON_OK &&
	    json_get_str(o, "k", &s) == JSON_OK, "object");
	CHECK(json_get_any(j, spellings) == json_get(j, "UserId"),
	    "either spelling found");
	json_free(j);

	CHECK(json_parse("{\"a\":", 5) == NULL, "truncated JSON refused");
	CHECK(json_parse("{\"a\":1}garbage", 14) == NULL,
	    "trailing garbage refused");
	j = json_parse("{\"a\":1} \n", 9);
	CHECK(j != NULL, "trailing white space accepted");
	json_free(j);
	j = json_parse("[1,2]", 5);
	CHECK(j != NULL && !json_is_object(j) && json_is_array(j),
	    "array document");
	json_free(j);

	built = json_new_object();
	json_add_str(built, "name", "张三 \"q\" <x>");
	json_add_int(built, "n", 1645077203219LL);
	json_add_bool(built, "active", 0);
	a = json_new_array();
	json_append_int(a, 7);
	json_add(built, "dept_ids", a);
	out = json_print(built);
	CHECK_STR(out, "{\"name\":\"张三 \\\"q\\\" <x>\",\"n\":1645077203219,"
	    "\"active\":false,\"dept_ids\":[7]}", "builder output");
	free(out);
	json_free(built);
	return unit_done();
}
