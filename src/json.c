#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "json.h"
#include "log.h"

static json *
checked(json *j)
{
	if (j == NULL) {
		log_msg(LOG_ERR, "out of memory building JSON");
		abort();
	}
	return j;
}

json *
json_parse(const char *text, size_t len)
{
	const char	*end = NULL;
	json		*j;

	if (text == NULL)
		return NULL;
	if ((j = cJSON_ParseWithLengthOpts(text, len, &end, 0)) == NULL)
		return NULL;
	/* One document and nothing after it but white space. */
	for (; end != NULL && end < text + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' &&
		    *end != '\r' && *end != '\0') {
			cJSON_Delete(j);
			return NULL;
		}
	}
	return j;
}

void
json_free(json *j)
{
	cJSON_Delete(j);
}

char *
json_print(const json *j)
{
	char	*s = cJSON_PrintUnformatted(j);

	if (s == NULL) {
		log_msg(LOG_ERR, "out of memory printing JSON");
		abort();
	}
	return s;
}

int
json_is_object(const json *j)
{
	return cJSON_IsObject(j);
}

int
json_is_array(const json *j)
{
	return cJSON_IsArray(j);
}

json *
json_get(const json *obj, const char *key)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

json *
json_get_any(const json *obj, const char *const *keys)
{
	json	*j;

	for (; *keys != NULL; keys++)
		if ((j = json_get(obj, *keys)) != NULL && !cJSON_IsNull(j))
			return j;
	return NULL;
}

static int
whole(double d)
{
	return isfinite(d) && d == floor(d) && fabs(d) < 9.2e18;
}

enum json_rc
json_as_int(const json *j, long long *out)
{
	const char	*s;
	char		*end;
	long long	 v;

	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (cJSON_IsNumber(j)) {
		if (!whole(j->valuedouble))
			return JSON_WRONG_TYPE;
		*out = (long long)j->valuedouble;
		return JSON_OK;
	}
	if (cJSON_IsString(j)) {
		s = j->valuestring;
		if (*s == '\0')
			return JSON_WRONG_TYPE;
		errno = 0;
		v = strtoll(s, &end, 10);
		if (*end != '\0' || errno != 0)
			return JSON_WRONG_TYPE;
		*out = v;
		return JSON_OK;
	}
	return JSON_WRONG_TYPE;
}

const char *
json_as_str(const json *j)
{
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

enum json_rc
json_as_text(const json *j, char *buf, size_t size)
{
	enum json_rc	 rc = JSON_OK;
	int		 n;

	if (size > 0)
		buf[0] = '\0';
	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (cJSON_IsString(j))
		n = snprintf(buf, size, "%s", j->valuestring);
	else if (cJSON_IsNumber(j) && whole(j->valuedouble))
		n = snprintf(buf, size, "%lld", (long long)j->valuedouble);
	else
		return JSON_WRONG_TYPE;
	/* Never a silently shortened value: a cut userid is another key. */
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		rc = JSON_TOO_LONG;
	}
	return rc;
}

enum json_rc
json_get_str(const json *obj, const char *key, const char **out)
{
	json	*j = json_get(obj, key);

	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (!cJSON_IsString(j))
		return JSON_WRONG_TYPE;
	*out = j->valuestring;
	return JSON_OK;
}

enum json_rc
json_get_text(const json *obj, const char *key, char *buf, size_t size)
{
	return json_as_text(json_get(obj, key), buf, size);
}

enum json_rc
json_get_int(const json *obj, const char *key, long long *out)
{
	return json_as_int(json_get(obj, key), out);
}

enum json_rc
json_get_bool(const json *obj, const char *key, int *out)
{
	json	*j = json_get(obj, key);

	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (cJSON_IsBool(j)) {
		*out = cJSON_IsTrue(j);
		return JSON_OK;
	}
	if (cJSON_IsNumber(j) && (j->valuedouble == 0 ||
	    j->valuedouble == 1)) {
		*out = j->valuedouble == 1;
		return JSON_OK;
	}
	if (cJSON_IsString(j)) {
		if (strcmp(j->valuestring, "true") == 0 ||
		    strcmp(j->valuestring, "1") == 0) {
			*out = 1;
			return JSON_OK;
		}
		if (strcmp(j->valuestring, "false") == 0 ||
		    strcmp(j->valuestring, "0") == 0) {
			*out = 0;
			return JSON_OK;
		}
	}
	return JSON_WRONG_TYPE;
}

enum json_rc
json_get_array(const json *obj, const char *key, json **out)
{
	json	*j = json_get(obj, key);

	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (!cJSON_IsArray(j))
		return JSON_WRONG_TYPE;
	*out = j;
	return JSON_OK;
}

enum json_rc
json_get_object(const json *obj, const char *key, json **out)
{
	json	*j = json_get(obj, key);

	if (j == NULL || cJSON_IsNull(j))
		return JSON_MISSING;
	if (!cJSON_IsObject(j))
		return JSON_WRONG_TYPE;
	*out = j;
	return JSON_OK;
}

size_t
json_array_size(const json *arr)
{
	int	 n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;

	return n > 0 ? (size_t)n : 0;
}

json *
json_array_item(const json *arr, size_t i)
{
	return cJSON_GetArrayItem(arr, (int)i);
}

json *
json_new_object(void)
{
	return checked(cJSON_CreateObject());
}

json *
json_new_array(void)
{
	return checked(cJSON_CreateArray());
}

void
json_add_str(json *obj, const char *key, const char *v)
{
	if (v == NULL)
		checked(cJSON_AddNullToObject(obj, key));
	else
		checked(cJSON_AddStringToObject(obj, key, v));
}

void
json_add_int(json *obj, const char *key, long long v)
{
	checked(cJSON_AddNumberToObject(obj, key, (double)v));
}

void
json_add_bool(json *obj, const char *key, int v)
{
	checked(cJSON_AddBoolToObject(obj, key, v ? 1 : 0));
}

void
json_add_null(json *obj, const char *key)
{
	checked(cJSON_AddNullToObject(obj, key));
}

void
json_add(json *obj, const char *key, json *child)
{
	if (!cJSON_AddItemToObject(obj, key, child))
		checked(NULL);
}

void
json_append(json *arr, json *child)
{
	if (!cJSON_AddItemToArray(arr, child))
		checked(NULL);
}

void
json_append_str(json *arr, const char *v)
{
	json_append(arr, checked(cJSON_CreateString(v)));
}

void
json_append_int(json *arr, long long v)
{
	json_append(arr, checked(cJSON_CreateNumber((double)v)));
}
