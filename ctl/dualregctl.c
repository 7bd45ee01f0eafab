/*
 * dualregctl: the operator's command line. Reads the same configuration file and
 * environment as dualregd (-c FILE, DUALREG_DATABASE_URL, ...), talks to PostgreSQL
 * directly with ordinary blocking libpq calls, and exits 0 on success, 1 on failure,
 * 2 on a usage or configuration error.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/migrate.h"
#include "dualreg/version.h"

#ifndef DUALREG_SQLDIR
#define DUALREG_SQLDIR "/usr/local/share/dualreg/sql"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dualregctl [-c FILE] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  migrate [--dir DIR] [--status]  apply pending schema migrations\n"
		"  version                         print the version and schema version\n"
		"\n"
		"  -c FILE  configuration file (default " CFG_DEFAULT_PATH ")\n"
		"The migrations directory defaults to $DUALREG_SQL_DIR, else " DUALREG_SQLDIR ".\n");
}

static PGconn *connect_db(const struct config *cfg)
{
	char timeout[16];
	snprintf(timeout, sizeof timeout, "%u", (cfg->connect_timeout_ms + 999) / 1000);
	const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
	const char *vals[] = {cfg->database_url, "dualregctl", timeout, NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "dualregctl: cannot connect to the database: %s",
			PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	return conn;
}

static int cmd_migrate(const struct config *cfg, int argc, char **argv)
{
	const char *dir = getenv("DUALREG_SQL_DIR");
	bool status_only = false;
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"status", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "d:sh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			status_only = true;
			break;
		case 'h':
			printf("usage: dualregctl migrate [--dir DIR] [--status]\n"
			       "Applies every sql/NNN_*.sql not yet recorded in schema_migrations,\n"
			       "each in its own transaction. --status only reports versions.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (dir == NULL || dir[0] == '\0')
		dir = DUALREG_SQLDIR;

	char err[1024];
	struct migration_set set;
	if (migrate_scan(dir, &set, err, sizeof err) != 0) {
		fprintf(stderr, "dualregctl: %s\n", err);
		migrate_set_free(&set);
		return 1;
	}
	PGconn *conn = connect_db(cfg);
	if (conn == NULL) {
		migrate_set_free(&set);
		return 1;
	}
	int rc = 0;
	int latest = set.n ? set.items[set.n - 1].version : 0;
	if (status_only) {
		int cur = migrate_current_version(conn, err, sizeof err);
		if (cur < 0) {
			fprintf(stderr, "dualregctl: %s\n", err);
			rc = 1;
		} else {
			printf("database schema version %d, newest migration %d%s\n", cur, latest,
			       cur < latest ? " (pending)" : "");
		}
	} else {
		int applied = 0;
		if (migrate_apply(conn, &set, stdout, &applied, err, sizeof err) != 0) {
			fprintf(stderr, "dualregctl: migration failed: %s\n", err);
			rc = 1;
		} else {
			printf("schema at version %d (%d applied now)\n", latest, applied);
		}
	}
	PQfinish(conn);
	migrate_set_free(&set);
	return rc;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i];
	if (strcmp(cmd, "version") == 0) {
		printf("dualregctl %s (schema %d)\n", DUALREG_VERSION, DUALREG_SCHEMA_VERSION);
		return 0;
	}
	struct config cfg;
	char err[600];
	if (cfg_load(&cfg, config_path, err, sizeof err) != 0) {
		fprintf(stderr, "dualregctl: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	int rc;
	if (strcmp(cmd, "migrate") == 0) {
		rc = cmd_migrate(&cfg, argc - i, argv + i);
	} else {
		fprintf(stderr, "dualregctl: unknown command \"%s\"\n", cmd);
		usage(stderr);
		rc = 2;
	}
	cfg_free(&cfg);
	return rc;
}
