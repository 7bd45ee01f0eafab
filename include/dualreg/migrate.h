/*
 * migrate: applies the numbered schema migrations (DIR/NNN_name.sql) in order.
 * Each file runs in its own transaction together with its row in schema_migrations
 * (version, name, SHA-256 checksum, applied_at). A session advisory lock serialises
 * concurrent migrators; the second one waits, then finds nothing left to do.
 * An applied file whose checksum changed is an error: history is not rewritten.
 * Migration files must not contain transaction control (BEGIN/COMMIT).
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
	int version;
	char name[MIGRATE_NAME_MAX]; /* the file name */
	char checksum[65];           /* hex SHA-256 of the file */
	char *sql;                   /* the file's text; owned */
};

struct migration_set {
	struct migration *items; /* sorted by version */
	size_t n;
};

/* Reads every NNN_name.sql in dir. Duplicate numbers are an error. */
int migrate_scan(const char *dir, struct migration_set *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void migrate_set_free(struct migration_set *set);

/*
 * Brings the database up to date. Progress lines go to log (may be NULL); *applied is
 * the number of files applied now. Returns 0, or -1 with why in err (the failing file's
 * transaction is rolled back; earlier files stay applied).
 */
int migrate_apply(PGconn *conn, const struct migration_set *set, FILE *log, int *applied,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

/* The highest applied version (0 when none), or -1 with why in err. */
int migrate_current_version(PGconn *conn, char *err, size_t errlen);

#endif
