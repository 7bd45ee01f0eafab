/*
 * upsert_ceiling: the "raw" database figure `make bench` compares mark ingest against:
 * the same marks upserted straight into a bare table (no rules, no history, no events),
 * 500 rows per statement, one statement per transaction, on C connections in parallel,
 * each from its own thread (blocking libpq is fine in this measuring tool).
 *   upsert_ceiling CONNINFO CONNECTIONS ROWS_FILE
 * ROWS_FILE: one batch per line, "upn,date,session,code;upn,date,session,code;..."
 * Prints: rows=N seconds=S rows_per_s=R
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char **batches;
static size_t nbatches, next_batch;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *conninfo;
static unsigned long rows_done;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one quoted array element, escaping \\ and " as array literals require. */
static void add_element(char *a, const char *p, size_t n, bool first)
{
	size_t o = strlen(a);
	if (!first)
		a[o++] = ',';
	a[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' || p[i] == '"')
			a[o++] = '\\';
		a[o++] = p[i];
	}
	a[o++] = '"';
	a[o] = '\0';
}

/* Splits one batch line into four PostgreSQL array literals. */
static void to_arrays(const char *line, char *a[4])
{
	size_t len = strlen(line) * 3 + 16;
	for (int i = 0; i < 4; i++) {
		a[i] = malloc(len);
		strcpy(a[i], "{");
	}
	const char *p = line;
	bool first = true;
	while (*p) {
		for (int f = 0; f < 4; f++) {
			size_t n = strcspn(p, f < 3 ? "," : ";");
			add_element(a[f], p, n, first);
			p += n;
			if (*p)
				p++;
		}
		first = false;
	}
	for (int i = 0; i < 4; i++)
		strcat(a[i], "}");
}

static void *worker(void *arg)
{
	(void)arg;
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "%s", PQerrorMessage(c));
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&mu);
		size_t i = next_batch++;
		pthread_mutex_unlock(&mu);
		if (i >= nbatches)
			break;
		char *a[4];
		to_arrays(batches[i], a);
		const char *params[] = {a[0], a[1], a[2], a[3]};
		PGresult *r = PQexecParams(
		    c,
		    "INSERT INTO bench_marks (upn, date, session, code) "
		    "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[]) "
		    "ON CONFLICT (upn, date, session) DO UPDATE SET code = excluded.code, "
		    "recorded_at = now()",
		    4, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fprintf(stderr, "%s", PQresultErrorMessage(r));
		else {
			pthread_mutex_lock(&mu);
			rows_done += strtoul(PQcmdTuples(r), NULL, 10);
			pthread_mutex_unlock(&mu);
		}
		PQclear(r);
		for (int k = 0; k < 4; k++)
			free(a[k]);
	}
	PQfinish(c);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	conninfo = argv[1];
	int nconn = atoi(argv[2]);
	FILE *f = fopen(argv[3], "r");
	if (f == NULL)
		return 2;
	char *buf = NULL;
	size_t cap = 0, capb = 0;
	ssize_t n;
	while ((n = getline(&buf, &cap, f)) > 0) {
		if (buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		if (nbatches == capb) {
			capb = capb ? capb * 2 : 256;
			batches = realloc(batches, capb * sizeof *batches);
		}
		batches[nbatches++] = strdup(buf);
	}
	fclose(f);
	PGconn *c = PQconnectdb(conninfo);
	PQclear(PQexec(c, "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_marks; CREATE TABLE bench_marks ("
			  "upn text, date date, session text, code text, "
			  "recorded_at timestamptz DEFAULT now(), PRIMARY KEY (upn, date, session))"));
	double t0 = now_s();
	pthread_t *th = calloc((size_t)nconn, sizeof *th);
	for (int i = 0; i < nconn; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < nconn; i++)
		pthread_join(th[i], NULL);
	double secs = now_s() - t0;
	PQclear(PQexec(c, "DROP TABLE bench_marks"));
	PQfinish(c);
	printf("rows=%lu seconds=%.2f rows_per_s=%.1f\n", rows_done, secs, (double)rows_done / secs);
	return 0;
}
