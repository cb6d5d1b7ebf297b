#ifndef DINGAUTH_JSON_H
#define DINGAUTH_JSON_H

#include <stddef.h>

/*
 * A small facade over cJSON. Getters tell "missing" from "wrong type",
 * and accept the shapes DingTalk is known to mix: numbers sent as strings
 * ("TimeStamp":"1645077203219", "sub_code":"40014") and ids sent as
 * numbers where text is expected.
 */
struct cJSON;
typedef struct cJSON json;

enum json_rc {
	JSON_OK = 0,
	JSON_MISSING,		/* key absent or null */
	JSON_WRONG_TYPE,	/* present with an unusable type */
	JSON_TOO_LONG,		/* text that does not fit the buffer */
};

/* Parse len bytes (need not be NUL-terminated); NULL if not JSON. */
json		*json_parse(const char *text, size_t len);
void		 json_free(json *j);
/* Compact text, caller frees. */
char		*json_print(const json *j);

int		 json_is_object(const json *j);
int		 json_is_array(const json *j);

/* Member of an object, NULL if absent (case-sensitive). */
json		*json_get(const json *obj, const char *key);
/* First present member of several spellings ("UserId", "userId"). */
json		*json_get_any(const json *obj, const char *const *keys);

/*
 * A string member: *out points into obj (valid while obj lives). Any
 * other type, a number too, is JSON_WRONG_TYPE (json_get_text takes
 * numbers).
 */
enum json_rc	 json_get_str(const json *obj, const char *key,
		    const char **out);
/*
 * Text of a member copied into buf: strings as is, numbers formatted as
 * integers when whole. Never cut: text that does not fit in size - 1
 * bytes is JSON_TOO_LONG, with buf "".
 */
enum json_rc	 json_get_text(const json *obj, const char *key,
		    char *buf, size_t size);
/* Integer from a number or a string of digits (optional '-'). */
enum json_rc	 json_get_int(const json *obj, const char *key,
		    long long *out);
/* true/false, 0/1, "true"/"false". */
enum json_rc	 json_get_bool(const json *obj, const char *key, int *out);
enum json_rc	 json_get_array(const json *obj, const char *key,
		    json **out);
enum json_rc	 json_get_object(const json *obj, const char *key,
		    json **out);

/* The value itself (for array items). */
enum json_rc	 json_as_int(const json *j, long long *out);
const char	*json_as_str(const json *j);	/* NULL unless a string */
/* As json_get_text, for the value itself. */
enum json_rc	 json_as_text(const json *j, char *buf, size_t size);

size_t		 json_array_size(const json *arr);
json		*json_array_item(const json *arr, size_t i);

/* Builders (abort on out-of-memory). */
json		*json_new_object(void);
json		*json_new_array(void);
void		 json_add_str(json *obj, const char *key, const char *v);
void		 json_add_int(json *obj, const char *key, long long v);
void		 json_add_bool(json *obj, const char *key, int v);
void		 json_add_null(json *obj, const char *key);
/* Takes ownership of child. */
void		 json_add(json *obj, const char *key, json *child);
void		 json_append(json *arr, json *child);
void		 json_append_str(json *arr, const char *v);
void		 json_append_int(json *arr, long long v);

#endif
