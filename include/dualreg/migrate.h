/*
 * migrate: brings a database's schema and code up to date from a sql directory:
 *   DIR/schema/NNN_name.sql   schema steps: tables, types, indexes, constraints, data.
 *                             Each is applied once, in number order, and recorded in
 *                             schema_migrations (version, name, SHA-256 checksum,
 *                             applied_at). An applied step whose checksum changed is an
 *                             error: history is not rewritten, a new step is added.
 *   DIR/functions/NN_area.sql the functions and triggers (CREATE OR REPLACE), run in
 *                             name order on every migrate, after the pending steps, so
 *                             that the database always has exactly these files' code.
 *                             The SHA-256 of their texts, concatenated in that order, is
 *                             recorded in schema_functions (one row).
 * One run is one transaction: the pending steps, every function file and the records
 * commit together or not at all, so no one ever sees a schema without its functions.
 * A session advisory lock serialises concurrent migrators; the second one waits, then
 * finds no step left to apply (and installs the same functions again).
 * Files must not contain transaction control (BEGIN/COMMIT).
 *
 * This runs in dualregctl, where blocking libpq calls are fine; the daemon never migrates.
 */
#ifndef DUALREG_MIGRATE_H
#define DUALREG_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

#define MIGRATE_NAME_MAX 128

struct migration {
	int version;                 /* schema steps: NNN; function files: NN */
	char name[MIGRATE_NAME_MAX]; /* the file name */
	char checksum[65];           /* hex SHA-256 of the file */
	char *sql;                   /* the file's text; owned */
};

struct migration_set {
	struct migration *items; /* schema steps, sorted by version */
	size_t n;
	struct migration *functions; /* function files, sorted by name */
	size_t nfunctions;
	char functions_checksum[65]; /* hex SHA-256 of the function files' texts, in order */
};

/*
 * Reads every DIR/schema/NNN_name.sql (duplicate numbers are an error) and every
 * .sql file of DIR/functions, which must all be named NN_name.sql. Both directories
 * must exist.
 */
int migrate_scan(const char *dir, struct migration_set *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void migrate_set_free(struct migration_set *set);

/*
 * Brings the database up to date in one transaction. Progress lines go to log (may be
 * NULL); *applied is the number of schema steps applied now. Returns 0, or -1 with why
 * in err (and nothing changed).
 */
int migrate_apply(PGconn *conn, const struct migration_set *set, FILE *log, int *applied,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

/* The highest applied version (0 when none), or -1 with why in err. */
int migrate_current_version(PGconn *conn, char *err, size_t errlen);

/*
 * The checksum of the functions installed, into out: 1, or 0 when none were ever
 * installed (no schema_functions), or -1 with why in err.
 */
int migrate_installed_functions(PGconn *conn, char out[65], char *err, size_t errlen);

#endif
