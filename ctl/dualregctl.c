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

#include "ctl.h"
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
		"  key create --admin [--name TEXT]\n"
		"  key create --school URN [--name TEXT]\n"
		"                                  create an API key; the token is printed once\n"
		"  key list [--json]               list keys (never their tokens)\n"
		"  key revoke ID                   revoke a key at once\n"
		"  seed --demo                     add a small demo (idempotent) and print\n"
		"                                  fresh demo keys as shell assignments\n"
		"  school add --urn URN --name NAME --kind mainstream|pru|ap|special\n"
		"             [--laestab NNNNNNN]  add a school\n"
		"  school list [--json]            list schools\n"
		"  school show URN [--json]        one school\n"
		"  pupil import FILE.csv [--skip-bad]\n"
		"                                  import pupils (upn,given_name,family_name,\n"
		"                                  date_of_birth); all or nothing unless --skip-bad\n"
		"  registration add --upn UPN --urn URN --role main|subsidiary --start DATE\n"
		"             [--end DATE] [--schedule 'mon=AM,PM;tue=AM']\n"
		"  registration end ID --date DATE\n"
		"  registration schedule ID --from DATE --schedule SCHED\n"
		"                                  registrations, with the API's rules\n"
		"  deliveries list [--status S] [--subscription ID] [--limit N] [--json]\n"
		"  deliveries retry ID             send a webhook delivery again now\n"
		"  sync status [--json]            webhook deliveries and school pulls\n"
		"  purge --before YYYY-MM-DD [--force]\n"
		"                                  delete marks, history, events and audit records\n"
		"                                  older than the date (six years kept unless --force)\n"
		"\n"
		"  -c FILE  configuration file (default " CFG_DEFAULT_PATH ")\n"
		"The migrations directory defaults to $DUALREG_SQL_DIR, else " DUALREG_SQLDIR ".\n");
}

PGconn *ctl_connect(const struct config *cfg)
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
	PGconn *conn = ctl_connect(cfg);
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

static int key_create(PGconn *conn, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"admin", no_argument, NULL, 'a'},
	    {"school", required_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool admin = false;
	const char *urn = NULL, *name = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "as:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			admin = true;
			break;
		case 's':
			urn = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			printf("usage: dualregctl key create (--admin | --school URN) [--name TEXT]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (admin == (urn != NULL)) {
		fprintf(stderr, "dualregctl: key create needs exactly one of --admin or --school URN\n");
		return 2;
	}
	char defname[64];
	if (name == NULL) {
		snprintf(defname, sizeof defname, admin ? "admin" : "school %s", urn);
		name = defname;
	}
	if (name[0] == '\0' || strlen(name) > 100) {
		fprintf(stderr, "dualregctl: --name must be 1 to 100 characters\n");
		return 2;
	}
	char token[AUTH_TOKEN_LEN + 1];
	long long id;
	if (ctl_key_insert(conn, name, urn, token, sizeof token, &id) != 0)
		return 1;
	fprintf(stderr, "created key %lld (%s); the token is shown only now:\n", id, name);
	printf("%s\n", token);
	return 0;
}

int ctl_key_insert(PGconn *conn, const char *name, const char *urn, char *token, size_t len,
		   long long *id)
{
	char hash[AUTH_HASH_HEX], prefix[16];
	if (auth_token_new(token, len) != 0) {
		fprintf(stderr, "dualregctl: no randomness available\n");
		return 1;
	}
	auth_token_hash(token, hash);
	snprintf(prefix, sizeof prefix, "%.10s", token);
	const char *params[] = {name, urn == NULL ? "admin" : "school", urn, hash, prefix};
	PGresult *r = PQexecParams(conn,
				   "INSERT INTO api_keys (name, role, urn, token_hash, prefix) "
				   "VALUES ($1, $2, $3, $4, $5) RETURNING id",
				   5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "23503") == 0)
			fprintf(stderr, "dualregctl: no school with URN %s\n", urn);
		else if (state != NULL && strcmp(state, "23514") == 0 && urn != NULL)
			fprintf(stderr, "dualregctl: \"%s\" is not a URN (6 digits)\n", urn);
		else
			fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

static int key_list(PGconn *conn, bool json)
{
	PGresult *r = PQexec(conn,
			     json ? "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, "
				    "'role', role, 'urn', urn, 'prefix', prefix, 'created_at', created_at, "
				    "'revoked_at', revoked_at) ORDER BY id), '[]') FROM api_keys"
				  : "SELECT id, role, coalesce(urn, '-'), prefix, "
				    "to_char(created_at, 'YYYY-MM-DD HH24:MI'), "
				    "CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END, name "
				    "FROM api_keys ORDER BY id");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
	} else {
		printf("%-6s %-7s %-7s %-11s %-17s %-8s %s\n", "ID", "ROLE", "URN", "PREFIX",
		       "CREATED", "STATE", "NAME");
		for (int i = 0; i < PQntuples(r); i++)
			printf("%-6s %-7s %-7s %-11s %-17s %-8s %s\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			       PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
	}
	PQclear(r);
	return 0;
}

static int key_revoke(PGconn *conn, const char *id)
{
	char *end;
	strtoll(id, &end, 10);
	if (id[0] == '\0' || *end != '\0') {
		fprintf(stderr, "dualregctl: key revoke needs a numeric key id\n");
		return 2;
	}
	const char *params[] = {id};
	PGresult *r = PQexecParams(conn,
				   "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
				   "WHERE id = $1::bigint RETURNING name",
				   1, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "dualregctl: no key with id %s\n", id);
		rc = 1;
	} else {
		printf("revoked key %s (%s)\n", id, PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return rc;
}

static int cmd_key(const struct config *cfg, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		printf("usage: dualregctl key create|list|revoke ...\n");
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0) {
		fprintf(stderr, "dualregctl: unknown key command \"%s\"\n", sub);
		return 2;
	}
	if (strcmp(sub, "revoke") == 0 && argc != 3) {
		fprintf(stderr, "usage: dualregctl key revoke ID\n");
		return 2;
	}
	if (strcmp(sub, "list") == 0 && (argc > 3 || (argc == 3 && strcmp(argv[2], "--json") != 0))) {
		fprintf(stderr, "usage: dualregctl key list [--json]\n");
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc;
	if (strcmp(sub, "create") == 0)
		rc = key_create(conn, argc - 1, argv + 1);
	else if (strcmp(sub, "list") == 0)
		rc = key_list(conn, argc > 2 && strcmp(argv[2], "--json") == 0);
	else
		rc = key_revoke(conn, argv[2]);
	PQfinish(conn);
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
	} else if (strcmp(cmd, "registration") == 0) {
		rc = ctl_cmd_registration(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "deliveries") == 0) {
		rc = ctl_cmd_deliveries(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "key") == 0) {
		rc = cmd_key(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "seed") == 0) {
		rc = ctl_cmd_seed(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "school") == 0) {
		rc = ctl_cmd_school(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "pupil") == 0) {
		rc = ctl_cmd_pupil(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "sync") == 0) {
		rc = ctl_cmd_sync(&cfg, argc - i, argv + i);
	} else if (strcmp(cmd, "purge") == 0) {
		rc = ctl_cmd_purge(&cfg, argc - i, argv + i);
	} else {
		fprintf(stderr, "dualregctl: unknown command \"%s\"\n", cmd);
		usage(stderr);
		rc = 2;
	}
	cfg_free(&cfg);
	return rc;
}
