#ifndef DINGAUTH_VECTORS_H
#define DINGAUTH_VECTORS_H

/*
 * Loading tests/data/crypto-vectors.json (a copy of DingTalk's official
 * known-answer vectors) for the crypto and envelope unit tests.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#define VECTORS	"tests/data/crypto-vectors.json"

static cJSON *
load_vectors(void)
{
	const char	*root;
	char		 path[4096];
	FILE		*f = NULL;
	char		*text = NULL;
	long		 size;
	cJSON		*json = NULL;

	if ((root = getenv("DINGAUTH_ROOT")) != NULL && *root != '\0')
		snprintf(path, sizeof(path), "%s/%s", root, VECTORS);
	else
		snprintf(path, sizeof(path), "%s", VECTORS);
	if ((f = fopen(path, "rb")) == NULL)
		goto out;
	if (fseek(f, 0, SEEK_END) == -1 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) == -1)
		goto out;
	if ((text = malloc((size_t)size + 1)) == NULL)
		goto out;
	if (fread(text, 1, (size_t)size, f) != (size_t)size)
		goto out;
	text[size] = '\0';
	json = cJSON_Parse(text);
out:
	free(text);
	if (f != NULL)
		fclose(f);
	return json;
}

static const char *
str(const cJSON *obj, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A vector's name for the test output. */
static const char *
label(const cJSON *obj)
{
	const char	*s = str(obj, "name");

	return s != NULL ? s : "(unnamed)";
}

#endif
