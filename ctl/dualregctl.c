/*
 * dualregctl: the operator's command line. Reads the same configuration file and
 * environment as dualregd (-c FILE, DUALREG_DATABASE_URL, ...), talks to PostgreSQL
 * directly with ordinary blocking libpq calls, and exits 0 on success, 1 on failure,
 * 2 on a usage or configuration error.
 *
 * The commands are a tree of struct ctl_command (ctl.h): this file holds the root's
 * table, the commands that have no module of their own (migrate, version, key), and
 * the dispatcher, which walks the tree by the arguments and answers --help for any
 * command from its node, before loading the configuration.
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

static const char migrate_usage[] =
    "usage: dualregctl migrate [--dir DIR] [--status]\n"
    "Applies every DIR/schema/NNN_*.sql not yet recorded in schema_migrations, then\n"
    "installs every DIR/functions/NN_*.sql (the functions and triggers, on every run), all\n"
    "in one transaction. --status only reports the schema version and whether the\n"
    "installed functions are these files'. DIR defaults to $DUALREG_SQL_DIR, else\n"
    DUALREG_SQLDIR ".\n";

/* --status: the schema version and the functions, each against the files. */
static int migrate_status(PGconn *conn, const struct migration_set *set)
{
	char err[1024], installed[65];
	int latest = set->n ? set->items[set->n - 1].version : 0;
	int cur = migrate_current_version(conn, err, sizeof err);
	int have = cur < 0 ? -1 : migrate_installed_functions(conn, installed, err, sizeof err);
	if (cur < 0 || have < 0) {
		fprintf(stderr, "dualregctl: %s\n", err);
		return 1;
	}
	printf("database schema version %d, newest migration %d%s\n", cur, latest,
	       cur < latest ? " (pending)" : "");
	if (have == 0)
		printf("functions: none installed; these files' are %.12s (pending)\n",
		       set->functions_checksum);
	else if (strcmp(installed, set->functions_checksum) != 0)
		printf("functions: installed %.12s, these files' are %.12s (pending)\n", installed,
		       set->functions_checksum);
	else
		printf("functions: installed %.12s, the same as these files' (%zu files)\n",
		       installed, set->nfunctions);
	return 0;
}

static int cmd_migrate(const struct config *cfg, int argc, char **argv)
{
	const char *dir = getenv("DUALREG_SQL_DIR");
	bool status_only = false;
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"status", no_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "d:s", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			status_only = true;
			break;
		default:
			fputs(migrate_usage, stderr);
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
		rc = migrate_status(conn, &set);
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

static const char key_create_usage[] =
    "usage: dualregctl key create (--admin | --school URN) [--name TEXT]\n"
    "Creates an API key for the HTTP API: an admin key, or a key for one school. The token\n"
    "is printed once on stdout; only its SHA-256 is stored. The name defaults to \"admin\"\n"
    "or \"school URN\".\n";

static int key_create(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"admin", no_argument, NULL, 'a'},
	    {"school", required_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	bool admin = false;
	const char *urn = NULL, *name = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "as:n:", opts, NULL)) != -1) {
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
		default:
			fputs(key_create_usage, stderr);
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
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	char token[AUTH_TOKEN_LEN + 1];
	long long id;
	int rc = ctl_key_insert(conn, name, urn, token, sizeof token, &id);
	PQfinish(conn);
	if (rc != 0)
		return rc;
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

static const char key_list_usage[] =
    "usage: dualregctl key list [--json]\n"
    "Lists the API keys: id, role, school, token prefix, creation time, state and name\n"
    "(never their tokens).\n";

static int key_list(const struct config *cfg, int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0)) {
		fputs(key_list_usage, stderr);
		return 2;
	}
	bool json = argc == 2;
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	PGresult *r = PQexec(conn,
			     json ? "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, "
				    "'role', role, 'urn', urn, 'prefix', prefix, 'created_at', created_at, "
				    "'revoked_at', revoked_at) ORDER BY id), '[]') FROM api_keys"
				  : "SELECT id, role, coalesce(urn, '-'), prefix, "
				    "to_char(created_at, 'YYYY-MM-DD HH24:MI'), "
				    "CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END, name "
				    "FROM api_keys ORDER BY id");
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (json) {
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
	PQfinish(conn);
	return rc;
}

static const char key_revoke_usage[] =
    "usage: dualregctl key revoke ID\n"
    "Revokes a key at once: the database notifies every running daemon, which\n"
    "refuses it from its next request on (should a daemon's notifications be\n"
    "interrupted, within [limits] key_cache_ttl). Revoking a revoked key keeps its\n"
    "first revocation time.\n";

static int key_revoke(const struct config *cfg, int argc, char **argv)
{
	if (argc != 2) {
		fputs(key_revoke_usage, stderr);
		return 2;
	}
	const char *id = argv[1];
	char *end;
	strtoll(id, &end, 10);
	if (id[0] == '\0' || *end != '\0') {
		fprintf(stderr, "dualregctl: key revoke needs a numeric key id\n");
		fputs(key_revoke_usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
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
	PQfinish(conn);
	return rc;
}

static const char version_usage[] =
    "usage: dualregctl version\n"
    "Prints dualregctl's version, and the schema version and functions it expects.\n";

static int cmd_version(const struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argv;
	if (argc != 1) {
		fputs(version_usage, stderr);
		return 2;
	}
	printf("dualregctl %s (schema %d, functions %.12s)\n", DUALREG_VERSION,
	       DUALREG_SCHEMA_VERSION, DUALREG_FUNCTIONS_CHECKSUM);
	return 0;
}

static int print_path(const struct ctl_command *cmd, const char *path, void *arg)
{
	(void)cmd;
	(void)arg;
	printf("%s\n", path);
	return 0;
}

static const char commands_usage[] =
    "usage: dualregctl commands\n"
    "Prints the path of every command and subcommand, one per line, hidden ones\n"
    "included (\"key\", \"key create\", ...): for scripts, shell completion and tests.\n";

/* Every command path, hidden ones too, for the tests and for shell completion. */
static int cmd_commands(const struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argv;
	if (argc != 1) {
		fputs(commands_usage, stderr);
		return 2;
	}
	return ctl_commands_walk(&ctl_root, true, print_path, NULL);
}

static const struct ctl_command migrate_command = {
    .name = "migrate",
    .summary = "apply pending schema migrations and install the functions",
    .usage = migrate_usage,
    .run = cmd_migrate,
};

static const struct ctl_command version_command = {
    .name = "version",
    .summary = "print the version and schema version",
    .usage = version_usage,
    .run = cmd_version,
    .flags = CTL_NO_CONFIG,
};

static const struct ctl_command key_create_command = {
    .name = "create",
    .summary = "create an API key; the token is printed once",
    .usage = key_create_usage,
    .run = key_create,
};

static const struct ctl_command key_list_command = {
    .name = "list",
    .summary = "list keys (never their tokens)",
    .usage = key_list_usage,
    .run = key_list,
};

static const struct ctl_command key_revoke_command = {
    .name = "revoke",
    .summary = "revoke a key at once",
    .usage = key_revoke_usage,
    .run = key_revoke,
};

static const struct ctl_command *const key_commands[] = {
    &key_create_command, &key_list_command, &key_revoke_command, NULL,
};

static const struct ctl_command key_command = {
    .name = "key",
    .summary = "API keys",
    .usage = "usage: dualregctl key COMMAND [ARGS]\n"
	     "API keys for the HTTP API, stored only as SHA-256 hashes.\n",
    .subs = key_commands,
};

static const struct ctl_command commands_command = {
    .name = "commands",
    .summary = "print every command path, one per line",
    .usage = commands_usage,
    .run = cmd_commands,
    .flags = CTL_HIDDEN | CTL_NO_CONFIG,
};

/* In the order --help lists them. */
static const struct ctl_command *const root_commands[] = {
    &migrate_command,
    &version_command,
    &key_command,
    &ctl_seed_command,
    &ctl_school_command,
    &ctl_pupil_command,
    &ctl_registration_command,
    &ctl_deliveries_command,
    &ctl_sync_command,
    &ctl_purge_command,
    &ctl_secrets_command,
    &ctl_user_command,
    &commands_command,
    NULL,
};

const struct ctl_command ctl_root = {
    .name = "dualregctl",
    .summary = "manage a dualreg installation",
    .usage = "usage: dualregctl [-c FILE] COMMAND [ARGS]\n"
	     "Works on dualregd's database directly, with the same configuration file and\n"
	     "environment. Exit status: 0 success, 1 failure, 2 usage or configuration error.\n"
	     "\n"
	     "  -c FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
	     "  -h, --help  this text; after a command, that command's usage\n",
    .subs = root_commands,
};

/* Walks the commands below cmd; path holds cmd's path (used bytes of len). */
static int walk(const struct ctl_command *cmd, bool hidden, char *path, size_t len, size_t used,
		int (*fn)(const struct ctl_command *cmd, const char *path, void *arg), void *arg)
{
	for (const struct ctl_command *const *sub = cmd->subs; sub != NULL && *sub != NULL; sub++) {
		if (((*sub)->flags & CTL_HIDDEN) && !hidden)
			continue;
		int n = snprintf(path + used, len - used, "%s%s", used ? " " : "", (*sub)->name);
		size_t end = n < 0 || (size_t)n >= len - used ? len - 1 : used + (size_t)n;
		int rc = fn(*sub, path, arg);
		if (rc == 0)
			rc = walk(*sub, hidden, path, len, end, fn, arg);
		path[used] = '\0';
		if (rc != 0)
			return rc;
	}
	return 0;
}

int ctl_commands_walk(const struct ctl_command *root, bool hidden,
		      int (*fn)(const struct ctl_command *cmd, const char *path, void *arg),
		      void *arg)
{
	char path[256] = "";
	return walk(root, hidden, path, sizeof path, 0, fn, arg);
}

static int list_line(const struct ctl_command *cmd, const char *path, void *arg)
{
	if (cmd->subs == NULL)
		fprintf(arg, "  %-22s %s\n", path, cmd->summary);
	return 0;
}

/*
 * cmd's --help text: its usage and, for a command with subcommands, each command below
 * it with its summary, so the lists cannot miss a command that the table has.
 */
static void help(const struct ctl_command *cmd, const char *path, FILE *out)
{
	fputs(cmd->usage, out);
	if (cmd->subs == NULL)
		return;
	fputs("\ncommands:\n", out);
	ctl_commands_walk(cmd, false, list_line, out);
	fprintf(out, "\n`dualregctl %s%sCOMMAND --help` shows a command's usage.\n", path,
		path[0] ? " " : "");
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/*
 * True if --help or -h is among a command's arguments. Anywhere, so that an operator
 * can add it to a command line being written; but not after "--", where it would be an
 * operand. An option's value that reads "--help" is taken as a request for help too:
 * help costs nothing, and a command run by mistake may.
 */
static bool help_asked(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (is_help(argv[i]))
			return true;
	return false;
}

static const struct ctl_command *find_sub(const struct ctl_command *cmd, const char *name)
{
	for (const struct ctl_command *const *sub = cmd->subs; sub != NULL && *sub != NULL; sub++)
		if (strcmp((*sub)->name, name) == 0)
			return *sub;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	int i = 1;
	xalloc_json_hooks();
	while (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		config_path = argv[i + 1];
		i += 2;
	}
	/* Down the tree as far as the arguments name commands. */
	const struct ctl_command *cmd = &ctl_root;
	char path[256] = "";
	for (const struct ctl_command *sub; i < argc && (sub = find_sub(cmd, argv[i])) != NULL;
	     i++) {
		size_t used = strlen(path);
		snprintf(path + used, sizeof path - used, "%s%s", used ? " " : "", sub->name);
		cmd = sub;
	}
	/* Help before anything that could fail: no configuration, no database. */
	if (help_asked(argc - i, argv + i)) {
		help(cmd, path, stdout);
		return 0;
	}
	if (cmd->subs != NULL) {
		if (cmd == &ctl_root && i + 1 == argc && strcmp(argv[i], "-c") == 0)
			fprintf(stderr, "dualregctl: -c needs a FILE\n");
		else if (i < argc)
			fprintf(stderr, "dualregctl: unknown %s%s%s \"%s\"\n", path, path[0] ? " " : "",
				argv[i][0] == '-' ? "option" : "command", argv[i]);
		help(cmd, path, stderr);
		return 2;
	}
	struct config cfg;
	if (!(cmd->flags & CTL_NO_CONFIG)) {
		char err[600];
		if (cfg_load(&cfg, config_path, err, sizeof err) != 0) {
			fprintf(stderr, "dualregctl: %s\n", err);
			return 2;
		}
		log_set_level(cfg.log_level);
	}
	/* The handler's argv starts at its own name, argv[i - 1]. */
	int rc = cmd->run(cmd->flags & CTL_NO_CONFIG ? NULL : &cfg, argc - i + 1, argv + i - 1);
	if (!(cmd->flags & CTL_NO_CONFIG))
		cfg_free(&cfg);
	return rc;
}
