/* migrate: the schema migration runner (see migrate.h). */
#include "dualreg/migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/xalloc.h"

/* Arbitrary constant naming the "schema migration" advisory lock. */
#define MIGRATE_LOCK_KEY "7306999432"
#define MIGRATE_MAX_FILE (16u << 20)

/*
 * The schema steps whose text changed when the schema and the functions were split,
 * with the checksum a database migrated before the split recorded for each and the
 * checksum of the step as it is now. Until then each sql/NNN_*.sql held its functions
 * too; the split kept every step's number and name and moved its functions to
 * sql/functions/, which changed its text but nothing a database migrated with the old
 * file lacks (the functions are installed again on every migrate anyway). So a step
 * recorded with its old checksum counts as applied, if the file is still exactly the
 * one the split left, and is recorded with its new checksum the first time such a
 * database is migrated. 001, 011 and 012 held no functions and did not change. The
 * list never grows: steps written after the split are checksummed as they are.
 */
static const struct {
	int version;
	const char *before; /* as recorded by the migrations of before the split */
	const char *after;  /* the step in sql/schema */
} split[] = {
    {2, "96fd9f8ed214dcf69b59e2e086b5cd1b2efbc8f4e66e1865aaab53d6430c2a1c",
     "2ca725774dd3a2498661950576e4c96977280523fd45ae375f9004080d8f8da7"},
    {3, "584aea15711e72afd6911c89ab5a81ba24535fa7c375c712e53ed5b2dfb5d584",
     "e5e52b9825d1193d4fef55a3668c537d1f3cad0185053c7fab20ca701ec9f47e"},
    {4, "13fe35ce108449c2020a2a73283392782cd5f6fcaa53ae7712ffd2a631b7d22e",
     "3ad52ced5ceabf1163b687dad7c0648cec0977e2b9c5b41db5822430761a1dc2"},
    {5, "8e86349f1959fc2ddc9130087b875ecd5b0aca5ed87ee5275c0319abc2b791e8",
     "65336433c2c8442fe7f727466192548856550eb0dc753c2651431345609e9274"},
    {6, "5436c29b9d12a064beb9d740690478810343ee57f1b9a0c763bb7d9580020402",
     "4899bb5805a0ce06d75f05eeb516cd4d930afbd6d0dc6bc93a9bbf1b07d4d335"},
    {7, "00e2af75c2c8c9e0de983148ec7bb9f89b3ba2c804ffc09971b1f45d9591f921",
     "9f5aee00eb45b733f52ac4d04e1d27aa73d9944a8aa6d5c40914e431febc180c"},
    {8, "e471b7752e9f7a28d49fe5ec0997c6aaaf58357fb201e907e914ab6e1e7ffba1",
     "f17e4e74349634e2412a25ae9354c71ca88cdbef74a97bdd6c4d428d059b589c"},
    {9, "1b7fbb2824277482ee46a8ae4e0346056bab193d5c5ca4fdefdbcf80632af9af",
     "7e77da632c4fbb92899b5a5fdae65ed070a9f08dfc26ab3e4b56d00fb529e629"},
    {10, "44ed8a03a72e75a40d36e1ee95a44dc6b1830f82621849ef3620ede546819c0c",
     "4e113c9738204664fb104f6203f6e3e009782ba9b3400b5d7d15a8d4f87c7b6b"},
    {13, "4715ea83f03b2069baca13020a76b292e4223d843dd1a4874f994bc1b166d2fa",
     "e3d0cd261f3f33e3e4b67faab13f30ddbae6663d850772c8b3f938d213a6a235"},
};

/* True if a step recorded as `recorded` is this file, as it was before the split. */
static bool split_step(const struct migration *m, const char *recorded)
{
	for (size_t i = 0; i < sizeof split / sizeof split[0]; i++)
		if (split[i].version == m->version && strcmp(split[i].before, recorded) == 0 &&
		    strcmp(split[i].after, m->checksum) == 0)
			return true;
	return false;
}

static int cmp_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static int cmp_name(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return strcmp(x->name, y->name);
}

static void hex(const unsigned char *md, unsigned int mdlen, char out[65])
{
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	hex(md, mdlen, out);
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = xmalloc(MIGRATE_MAX_FILE + 1);
	size_t n = fread(buf, 1, MIGRATE_MAX_FILE + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n > MIGRATE_MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "file too large");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* True for D..D_name.sql with `digits` digits, with the number in *version. */
static bool parse_name(const char *name, int digits, int *version)
{
	size_t len = strlen(name);
	if (len < (size_t)digits + 6 || len >= MIGRATE_NAME_MAX ||
	    strcmp(name + len - 4, ".sql") != 0)
		return false;
	int v = 0;
	for (int i = 0; i < digits; i++) {
		if (!isdigit((unsigned char)name[i]))
			return false;
		v = v * 10 + (name[i] - '0');
	}
	if (name[digits] != '_')
		return false;
	*version = v;
	return true;
}

static bool ends_with_sql(const char *name)
{
	size_t len = strlen(name);
	return len > 4 && strcmp(name + len - 4, ".sql") == 0;
}

/*
 * Reads the files of dir/sub named with `digits` digits into *items (*n of them). With
 * strict, any other .sql file there is an error rather than ignored.
 */
static int scan_dir(const char *dir, const char *sub, int digits, bool strict,
		    struct migration **items, size_t *n, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	size_t cap = 16;
	*items = xcalloc(cap, sizeof **items);
	*n = 0;
	DIR *d = opendir(path);
	if (d == NULL) {
		snprintf(err, errlen, "cannot open %s directory %s: %s", sub, path,
			 strerror(errno));
		return -1;
	}
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		int v;
		if (!parse_name(e->d_name, digits, &v) || (digits == 3 && v == 0)) {
			if (strict && ends_with_sql(e->d_name)) {
				snprintf(err, errlen, "%s/%s: files in %s/ are named %s_name.sql",
					 sub, e->d_name, sub, digits == 3 ? "NNN" : "NN");
				rc = -1;
				break;
			}
			continue;
		}
		if (*n == cap) {
			cap *= 2;
			*items = xrealloc(*items, cap * sizeof **items);
		}
		struct migration *m = &(*items)[*n];
		memset(m, 0, sizeof *m);
		m->version = v;
		memcpy(m->name, e->d_name, strlen(e->d_name) + 1); /* parse_name bounded it */
		char file[4096 + 256 + 2];
		snprintf(file, sizeof file, "%s/%s", path, e->d_name);
		size_t len;
		m->sql = read_file(file, &len, err, errlen);
		if (m->sql == NULL) {
			rc = -1;
			break;
		}
		sha256_hex(m->sql, len, m->checksum);
		(*n)++;
	}
	closedir(d);
	return rc;
}

int migrate_scan(const char *dir, struct migration_set *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (scan_dir(dir, "schema", 3, false, &out->items, &out->n, err, errlen) != 0)
		return -1;
	qsort(out->items, out->n, sizeof *out->items, cmp_version);
	for (size_t i = 1; i < out->n; i++) {
		if (out->items[i].version == out->items[i - 1].version) {
			snprintf(err, errlen, "two migrations numbered %03d: %s and %s",
				 out->items[i].version, out->items[i - 1].name, out->items[i].name);
			return -1;
		}
	}
	if (scan_dir(dir, "functions", 2, true, &out->functions, &out->nfunctions, err,
		     errlen) != 0)
		return -1;
	/* Name order is the order they run in; the Makefile sorts them the same way when it
	 * computes the checksum this build expects (DUALREG_FUNCTIONS_CHECKSUM). */
	qsort(out->functions, out->nfunctions, sizeof *out->functions, cmp_name);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; i < out->nfunctions; i++)
		EVP_DigestUpdate(ctx, out->functions[i].sql, strlen(out->functions[i].sql));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	hex(md, mdlen, out->functions_checksum);
	return 0;
}

static void free_items(struct migration *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].sql);
	free(items);
}

void migrate_set_free(struct migration_set *set)
{
	free_items(set->items, set->n);
	free_items(set->functions, set->nfunctions);
	set->items = set->functions = NULL;
	set->n = set->nfunctions = 0;
}

/* Runs a statement expected to succeed; false with the server's message in err. A file
 * of nothing but comments (a step whose functions all moved) is an empty query: fine. */
static bool exec_ok(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *err, size_t errlen)
{
	PGresult *r = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
				  : PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
	if (!ok) {
		const char *m = PQresultErrorMessage(r);
		if (m == NULL || m[0] == '\0')
			m = PQerrorMessage(conn);
		snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
	}
	PQclear(r);
	return ok;
}

int migrate_current_version(PGconn *conn, char *err, size_t errlen)
{
	PGresult *r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	int v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		v = atoi(PQgetvalue(r, 0, 0));
	} else {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0)
			v = 0;
		else
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	}
	PQclear(r);
	return v;
}

int migrate_installed_functions(PGconn *conn, char out[65], char *err, size_t errlen)
{
	out[0] = '\0';
	PGresult *r = PQexec(conn, "SELECT checksum FROM schema_functions");
	int rc = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		rc = PQntuples(r) > 0;
		if (rc)
			snprintf(out, 65, "%s", PQgetvalue(r, 0, 0));
	} else {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0)
			rc = 0;
		else
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	}
	PQclear(r);
	return rc;
}

/* Checks the recorded steps against the files. On success, *rerecord lists (by index
 * into set->items, -1 terminated) the steps recorded as they were before the split. */
static int check_history(PGconn *conn, const struct migration_set *set, bool *done,
			 int *rerecord, char *err, size_t errlen)
{
	PGresult *r = PQexec(conn, "SELECT version, checksum, name FROM schema_migrations "
				   "ORDER BY version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "reading schema_migrations: %s", PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	int rc = 0, nre = 0;
	int newest = set->n ? set->items[set->n - 1].version : 0;
	for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
		int version = atoi(PQgetvalue(r, row, 0));
		const char *checksum = PQgetvalue(r, row, 1);
		if (version > newest) {
			/* Its functions would be replaced by these older ones. */
			snprintf(err, errlen,
				 "the database has schema step %s (version %d), newer than these "
				 "files (newest %d): migrate with that release's dualregctl and "
				 "sql/",
				 PQgetvalue(r, row, 2), version, newest);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < set->n; i++) {
			const struct migration *m = &set->items[i];
			if (m->version != version)
				continue;
			done[i] = true;
			if (strcmp(checksum, m->checksum) == 0)
				break;
			if (split_step(m, checksum)) {
				rerecord[nre++] = (int)i;
				break;
			}
			snprintf(err, errlen,
				 "%s was changed after it was applied (as %s); add a new "
				 "migration instead of editing an applied one",
				 m->name, PQgetvalue(r, row, 2));
			rc = -1;
			break;
		}
	}
	rerecord[nre] = -1;
	PQclear(r);
	return rc;
}

static int apply_locked(PGconn *conn, const struct migration_set *set, FILE *log, int *applied,
			char *err, size_t errlen)
{
	if (!exec_ok(conn, "BEGIN", 0, NULL, "starting the migration", err, errlen))
		return -1;
	/* DROP ... IF EXISTS of a function never installed is worth no message. */
	bool ok = exec_ok(conn, "SET LOCAL client_min_messages = warning", 0, NULL,
			  "starting the migration", err, errlen) &&
		  exec_ok(conn,
			  "CREATE TABLE IF NOT EXISTS schema_migrations ("
			  " version integer PRIMARY KEY,"
			  " name text NOT NULL,"
			  " checksum text NOT NULL,"
			  " applied_at timestamptz NOT NULL DEFAULT now())",
			  0, NULL, "creating schema_migrations", err, errlen) &&
		  exec_ok(conn,
			  "CREATE TABLE IF NOT EXISTS schema_functions ("
			  " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
			  " checksum text NOT NULL,"
			  " files integer NOT NULL,"
			  " installed_at timestamptz NOT NULL DEFAULT now())",
			  0, NULL, "creating schema_functions", err, errlen);
	bool *done = xcalloc(set->n + 1, sizeof *done);
	int *rerecord = xcalloc(set->n + 1, sizeof *rerecord);
	int *applied_now = xcalloc(set->n + 1, sizeof *applied_now);
	int pending = 0;
	rerecord[0] = -1;
	ok = ok && check_history(conn, set, done, rerecord, err, errlen) == 0;
	for (size_t i = 0; ok && i < set->n; i++) {
		const struct migration *m = &set->items[i];
		if (done[i])
			continue;
		char version[16];
		snprintf(version, sizeof version, "%d", m->version);
		const char *params[] = {version, m->name, m->checksum};
		ok = exec_ok(conn, m->sql, 0, NULL, m->name, err, errlen) &&
		     exec_ok(conn,
			     "INSERT INTO schema_migrations (version, name, checksum) "
			     "VALUES ($1::integer, $2, $3)",
			     3, params, m->name, err, errlen);
		if (ok)
			applied_now[pending++] = (int)i;
	}
	for (int k = 0; ok && rerecord[k] >= 0; k++) {
		const struct migration *m = &set->items[rerecord[k]];
		char version[16];
		snprintf(version, sizeof version, "%d", m->version);
		const char *params[] = {version, m->checksum};
		ok = exec_ok(conn,
			     "UPDATE schema_migrations SET checksum = $2 "
			     "WHERE version = $1::integer",
			     2, params, m->name, err, errlen);
	}
	for (size_t i = 0; ok && i < set->nfunctions; i++) {
		char what[MIGRATE_NAME_MAX + 16];
		snprintf(what, sizeof what, "functions/%s", set->functions[i].name);
		ok = exec_ok(conn, set->functions[i].sql, 0, NULL, what, err, errlen);
	}
	if (ok) {
		char files[16];
		snprintf(files, sizeof files, "%zu", set->nfunctions);
		const char *params[] = {set->functions_checksum, files};
		ok = exec_ok(conn,
			     "INSERT INTO schema_functions (checksum, files) "
			     "VALUES ($1, $2::integer) "
			     "ON CONFLICT (one) DO UPDATE SET checksum = EXCLUDED.checksum, "
			     "files = EXCLUDED.files, installed_at = EXCLUDED.installed_at",
			     2, params, "recording the functions", err, errlen);
	}
	ok = ok && exec_ok(conn, "COMMIT", 0, NULL, "committing the migration", err, errlen);
	if (!ok) {
		PQclear(PQexec(conn, "ROLLBACK"));
	} else if (log != NULL) {
		/* Told only once it is true: a failure anywhere commits nothing. */
		for (int k = 0; k < pending; k++)
			fprintf(log, "applied %s\n", set->items[applied_now[k]].name);
		for (int k = 0; rerecord[k] >= 0; k++)
			fprintf(log, "recorded %s under its new checksum (its functions moved to "
				     "functions/)\n",
				set->items[rerecord[k]].name);
		fprintf(log, "installed the functions of %zu files (%.12s)\n", set->nfunctions,
			set->functions_checksum);
	}
	free(done);
	free(rerecord);
	free(applied_now);
	if (!ok)
		return -1;
	*applied = pending;
	return 0;
}

int migrate_apply(PGconn *conn, const struct migration_set *set, FILE *log, int *applied,
		  char *err, size_t errlen)
{
	*applied = 0;
	if (!exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL,
		     "taking the migration lock", err, errlen))
		return -1;
	int rc = apply_locked(conn, set, log, applied, err, errlen);
	char ignore[64];
	(void)exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, "unlock",
		      ignore, sizeof ignore);
	return rc;
}
