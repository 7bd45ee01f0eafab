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

static int cmp_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
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

/* True for NNN_name.sql, with the number in *version. */
static bool parse_name(const char *name, int *version)
{
	size_t len = strlen(name);
	if (len < 9 || len >= MIGRATE_NAME_MAX || strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (int i = 0; i < 3; i++)
		if (!isdigit((unsigned char)name[i]))
			return false;
	if (name[3] != '_')
		return false;
	*version = (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
	return *version > 0;
}

int migrate_scan(const char *dir, struct migration_set *out, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	size_t cap = 16;
	out->items = xcalloc(cap, sizeof *out->items);
	out->n = 0;
	if (d == NULL) {
		snprintf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		int v;
		if (!parse_name(e->d_name, &v))
			continue;
		if (out->n == cap) {
			cap *= 2;
			out->items = xrealloc(out->items, cap * sizeof *out->items);
		}
		struct migration *m = &out->items[out->n];
		memset(m, 0, sizeof *m);
		m->version = v;
		memcpy(m->name, e->d_name, strlen(e->d_name) + 1); /* parse_name bounded it */
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		size_t len;
		m->sql = read_file(path, &len, err, errlen);
		if (m->sql == NULL) {
			rc = -1;
			break;
		}
		sha256_hex(m->sql, len, m->checksum);
		out->n++;
	}
	closedir(d);
	if (rc != 0)
		return rc;
	qsort(out->items, out->n, sizeof *out->items, cmp_version);
	for (size_t i = 1; i < out->n; i++) {
		if (out->items[i].version == out->items[i - 1].version) {
			snprintf(err, errlen, "two migrations numbered %03d: %s and %s",
				 out->items[i].version, out->items[i - 1].name, out->items[i].name);
			return -1;
		}
	}
	return 0;
}

void migrate_set_free(struct migration_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->items[i].sql);
	free(set->items);
	set->items = NULL;
	set->n = 0;
}

/* Runs a statement expected to succeed; false with the server's message in err. */
static bool exec_ok(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *err, size_t errlen)
{
	PGresult *r = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
				  : PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
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

static int apply_locked(PGconn *conn, const struct migration_set *set, FILE *log, int *applied,
			char *err, size_t errlen)
{
	if (!exec_ok(conn,
		     "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     " version integer PRIMARY KEY,"
		     " name text NOT NULL,"
		     " checksum text NOT NULL,"
		     " applied_at timestamptz NOT NULL DEFAULT now())",
		     0, NULL, "creating schema_migrations", err, errlen))
		return -1;
	PGresult *r = PQexec(conn, "SELECT version, checksum, name FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "reading schema_migrations: %s", PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < set->n && rc == 0; i++) {
		const struct migration *m = &set->items[i];
		bool done = false;
		for (int row = 0; row < PQntuples(r); row++) {
			if (atoi(PQgetvalue(r, row, 0)) != m->version)
				continue;
			done = true;
			if (strcmp(PQgetvalue(r, row, 1), m->checksum) != 0) {
				snprintf(err, errlen,
					 "%s was changed after it was applied (as %s); add a new "
					 "migration instead of editing an applied one",
					 m->name, PQgetvalue(r, row, 2));
				rc = -1;
			}
		}
		if (done || rc != 0)
			continue;
		char version[16];
		snprintf(version, sizeof version, "%d", m->version);
		const char *params[] = {version, m->name, m->checksum};
		char what[MIGRATE_NAME_MAX + 16];
		snprintf(what, sizeof what, "%s", m->name);
		if (!exec_ok(conn, "BEGIN", 0, NULL, what, err, errlen) ||
		    !exec_ok(conn, m->sql, 0, NULL, what, err, errlen) ||
		    !exec_ok(conn,
			     "INSERT INTO schema_migrations (version, name, checksum) "
			     "VALUES ($1::integer, $2, $3)",
			     3, params, what, err, errlen) ||
		    !exec_ok(conn, "COMMIT", 0, NULL, what, err, errlen)) {
			PQclear(PQexec(conn, "ROLLBACK"));
			rc = -1;
			break;
		}
		(*applied)++;
		if (log != NULL)
			fprintf(log, "applied %s\n", m->name);
	}
	PQclear(r);
	return rc;
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
