/*
 * pointread_ceiling: the database figure `make bench` compares uncached status reads
 * against: for each pupil-day, the point reads a status answer needs at the least (the
 * pupil's registrations in force that day, and that day's marks), as prepared
 * statements on C connections in parallel, each from its own thread (blocking libpq is
 * fine in this measuring tool). Pupil-days are taken in turn from the file, cycling,
 * until the time is up.
 *   pointread_ceiling CONNINFO CONNECTIONS SECONDS PAIRS_FILE
 * PAIRS_FILE: one "UPN YYYY-MM-DD" per line.
 * Prints: reads=N errors=E seconds=S rps=R p50_ms=X p99_ms=Y
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 4000000u

static char (*pairs)[2][16];
static size_t npairs, next_pair;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *conninfo;
static double stop_at;
static unsigned long reads, errors;
static double *lat;
static size_t nlat;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool prepare(PGconn *c, const char *name, const char *sql)
{
	PGresult *r = PQprepare(c, name, sql, 2, NULL);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static bool run(PGconn *c, const char *name, const char *const *params)
{
	PGresult *r = PQexecPrepared(c, name, 2, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	return ok;
}

static void *worker(void *arg)
{
	(void)arg;
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "%s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	if (!prepare(c, "roll",
		     "SELECT urn, role, id FROM registration_records WHERE upn = $1 "
		     "AND state = 'in_force' AND $2::date BETWEEN start_date "
		     "AND coalesce(end_date, 'infinity')") ||
	    !prepare(c, "marks",
		     "SELECT urn, session, code, minutes_late, source, recorded_at FROM marks "
		     "WHERE upn = $1 AND date = $2::date")) {
		PQfinish(c);
		return NULL;
	}
	while (now_s() < stop_at) {
		pthread_mutex_lock(&mu);
		size_t i = next_pair++ % npairs;
		pthread_mutex_unlock(&mu);
		const char *params[] = {pairs[i][0], pairs[i][1]};
		double t0 = now_s();
		bool ok = run(c, "roll", params) && run(c, "marks", params);
		double t = now_s() - t0;
		pthread_mutex_lock(&mu);
		if (ok)
			reads++;
		else
			errors++;
		if (nlat < MAX_SAMPLES)
			lat[nlat++] = t;
		pthread_mutex_unlock(&mu);
	}
	PQfinish(c);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: pointread_ceiling CONNINFO CONNECTIONS SECONDS PAIRS_FILE\n");
		return 2;
	}
	conninfo = argv[1];
	int nconn = atoi(argv[2]);
	double secs = atof(argv[3]);
	FILE *f = fopen(argv[4], "r");
	if (f == NULL || nconn < 1 || nconn > 1000 || secs <= 0)
		return 2;
	size_t cap = 0;
	char upn[32], date[32];
	while (fscanf(f, "%31s %31s", upn, date) == 2) {
		if (npairs == cap) {
			cap = cap ? cap * 2 : 4096;
			pairs = realloc(pairs, cap * sizeof *pairs);
			if (pairs == NULL)
				return 1;
		}
		snprintf(pairs[npairs][0], sizeof pairs[npairs][0], "%.15s", upn);
		snprintf(pairs[npairs][1], sizeof pairs[npairs][1], "%.15s", date);
		npairs++;
	}
	fclose(f);
	if (npairs == 0)
		return 2;
	lat = malloc(MAX_SAMPLES * sizeof *lat);
	if (lat == NULL)
		return 1;
	double t0 = now_s();
	stop_at = t0 + secs;
	pthread_t *th = calloc((size_t)nconn, sizeof *th);
	for (int i = 0; i < nconn; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < nconn; i++)
		pthread_join(th[i], NULL);
	double took = now_s() - t0;
	qsort(lat, nlat, sizeof *lat, cmp_double);
	double p50 = nlat ? lat[nlat / 2] * 1000 : 0;
	double p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] * 1000 : 0;
	printf("reads=%lu errors=%lu seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f\n", reads, errors,
	       took, (double)reads / took, p50, p99);
	free(th);
	free(lat);
	free(pairs);
	return errors == 0 ? 0 : 1;
}
