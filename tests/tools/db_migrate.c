/*
 * db_migrate DINGAUTH_DB: open the database and bring its schema to the
 * latest version, as dingauth init does (for PostgreSQL, the tests'
 * template database). Prints the schema version.
 */
#include <stdio.h>

#include "db.h"

int
main(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	int		 rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: db_migrate DINGAUTH_DB\n");
		return 2;
	}
	if (db_create(argv[1], 0600, &db, &err) != DA_OK)
		fprintf(stderr, "db_migrate: %s\n", err.msg);
	else {
		printf("schema version %d\n", db_schema_version(db));
		rc = 0;
	}
	db_close(db);
	return rc;
}
