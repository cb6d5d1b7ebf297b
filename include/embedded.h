#ifndef DINGAUTH_EMBEDDED_H
#define DINGAUTH_EMBEDDED_H

/*
 * Files compiled into the library by scripts/embed.sh: the SQL migrations
 * from sql/ (in file-name order, each "NNN-name.sql" moving the schema to
 * user_version NNN) and the page templates from static/ (*.html).
 * Both arrays end with a { NULL, NULL } row.
 */
struct embedded_file {
	const char	*name;
	const char	*text;
};

extern const struct embedded_file embedded_migrations[];
/* PostgreSQL's schema and migrations, from sql/pg/, numbered on their own. */
extern const struct embedded_file embedded_pg_migrations[];
extern const struct embedded_file embedded_templates[];

/* The template called name ("login.html"), or NULL. */
const char	*embedded_template(const char *name);

#endif
