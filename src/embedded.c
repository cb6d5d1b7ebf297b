#include <stddef.h>
#include <string.h>

#include "embedded.h"

const char *
embedded_template(const char *name)
{
	const struct embedded_file	*t;

	for (t = embedded_templates; t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t->text;
	return NULL;
}
