/*
 * user: `dualregctl user add|list|disable|reset`, the staff accounts of the web app
 * (sql/schema/022_staff.sql). An account is made, or reset, with a one-time set-up link,
 * <[web] public_url>/app/setup#<token>, printed here once and valid for [web] setup_ttl;
 * only the token's SHA-256 is stored. Passwords, TOTP secrets and recovery codes are
 * chosen through the link and never shown here; `user list` shows no hashes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dualreg/staff_auth.h"
#include "dualreg/utf8.h"

static const char user_add_usage[] =
    "usage: dualregctl user add --school URN --email EMAIL --name NAME [--role staff|lead]\n"
    "       dualregctl user add --admin --email EMAIL --name NAME\n"
    "Adds a staff account of the web app: a school's (role staff, the default, or lead)\n"
    "or an administrator's. Prints a one-time set-up link, valid for [web] setup_ttl,\n"
    "through which the user chooses a password and sets up an authenticator app. An\n"
    "e-mail address already on file (in any case) is refused (exit 1).\n";
static const char user_list_usage[] =
    "usage: dualregctl user list [--json]\n"
    "Lists the staff accounts: id, role, school, state (active, set-up pending, set-up\n"
    "expired, disabled), e-mail address and name. Never a password or secret.\n";
static const char user_disable_usage[] =
    "usage: dualregctl user disable ID|EMAIL\n"
    "Disables an account: it signs in no more, its sessions end at once and its set-up\n"
    "link stops working. `user reset` enables it again.\n";
static const char user_reset_usage[] =
    "usage: dualregctl user reset ID|EMAIL\n"
    "Clears an account's password, authenticator (TOTP) secret and recovery codes, ends\n"
    "its sessions, enables it if it was disabled, and prints a new one-time set-up link.\n";

void ctl_setup_link(const struct config *cfg, const char *token, char *out, size_t len)
{
	const char *base = cfg != NULL && cfg->web_public_url != NULL ? cfg->web_public_url
								       : "http://127.0.0.1:8080";
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	snprintf(out, len, "%.*s/app/setup#%s", (int)blen, base, token);
}

int ctl_user_new_setup(PGconn *conn, const struct config *cfg, long long id, char *link,
		       size_t link_len, char *expires, size_t expires_len)
{
	char token[STAFF_TOKEN_LEN + 1], hash[65], ids[24], ttl[32];
	if (staff_token_new(token) != 0) {
		fprintf(stderr, "dualregctl: no randomness for a set-up token\n");
		return 1;
	}
	staff_token_hash(token, hash);
	snprintf(ids, sizeof ids, "%lld", id);
	snprintf(ttl, sizeof ttl, "%u.%03u", cfg->web_setup_ttl_ms / 1000,
		 cfg->web_setup_ttl_ms % 1000);
	const char *p[] = {ids, hash, ttl};
	PGresult *r = PQexecParams(
	    conn,
	    "UPDATE staff_users SET setup_token_hash = $2,"
	    "       setup_expires_at = dualreg_now() + make_interval(secs => $3::float8),"
	    "       updated_at = dualreg_now()"
	    " WHERE id = $1::bigint"
	    " RETURNING to_char(setup_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'",
	    3, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "dualregctl: %s", PQresultStatus(r) == PGRES_TUPLES_OK
						      ? "the account is gone\n"
						      : PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	snprintf(expires, expires_len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	ctl_setup_link(cfg, token, link, link_len);
	return 0;
}

/* An e-mail address as accounts take it: 3 to 254 bytes, one '@' with text on both
 * sides, a dot in the domain, no spaces, control characters or address punctuation. */
static bool email_ok(const char *email)
{
	size_t len = strlen(email);
	const char *at = strchr(email, '@');
	if (len < 3 || len > 254 || at == NULL || at == email || strchr(at + 1, '@') != NULL ||
	    strchr(at + 1, '.') == NULL || at[1] == '.' || email[len - 1] == '.' ||
	    utf8_length(email) == UTF8_INVALID)
		return false;
	for (const unsigned char *p = (const unsigned char *)email; *p; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("\"(),:;<>[\\]", *p) != NULL)
			return false;
	return true;
}

static bool name_ok(const char *name)
{
	size_t n = utf8_length(name);
	if (n == UTF8_INVALID || n < 1 || n > 200)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			return false;
	return true;
}

static bool all_digits(const char *text, size_t n)
{
	if (strlen(text) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (text[i] < '0' || text[i] > '9')
			return false;
	return true;
}

struct add_args {
	const char *urn, *email, *name, *role;
	bool admin;
};

/* Parses `user add` options; 0 with a set, else the exit status. */
static int user_add_args(int argc, char **argv, struct add_args *a)
{
	static const struct option opts[] = {
	    {"school", required_argument, NULL, 's'}, {"email", required_argument, NULL, 'e'},
	    {"name", required_argument, NULL, 'n'},   {"role", required_argument, NULL, 'r'},
	    {"admin", no_argument, NULL, 'a'},        {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:e:n:r:a", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			a->urn = optarg;
			break;
		case 'e':
			a->email = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'r':
			a->role = optarg;
			break;
		case 'a':
			a->admin = true;
			break;
		default:
			fputs(user_add_usage, stderr);
			return 2;
		}
	}
	if (optind != argc || a->email == NULL || a->name == NULL ||
	    a->admin == (a->urn != NULL) || (a->admin && a->role != NULL)) {
		fputs(user_add_usage, stderr);
		return 2;
	}
	if (a->role == NULL)
		a->role = a->admin ? "admin" : "staff";
	if (!a->admin && strcmp(a->role, "staff") != 0 && strcmp(a->role, "lead") != 0) {
		fprintf(stderr, "dualregctl: --role must be staff or lead (--admin for an "
				"administrator)\n");
		return 2;
	}
	if (a->urn != NULL && !all_digits(a->urn, 6)) {
		fprintf(stderr, "dualregctl: \"%s\" is not a URN (6 digits)\n", a->urn);
		return 2;
	}
	if (!email_ok(a->email)) {
		fprintf(stderr, "dualregctl: \"%s\" is not an e-mail address\n", a->email);
		return 2;
	}
	if (!name_ok(a->name)) {
		fprintf(stderr, "dualregctl: --name must be 1 to 200 characters of text\n");
		return 2;
	}
	return 0;
}

/* Commits the transaction when rc is 0 (1 if the commit fails), else rolls it back. */
static int user_txn_end(PGconn *conn, int rc)
{
	if (rc != 0) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return rc;
	}
	PGresult *r = PQexec(conn, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

static void print_link(long long id, const char *email, const char *link, const char *expires)
{
	printf("one-time set-up link for user %lld (%s), valid until %s:\n%s\n", id, email, expires,
	       link);
}

static int user_add_main(const struct config *cfg, int argc, char **argv)
{
	struct add_args a = {0};
	int rc = user_add_args(argc, argv, &a);
	if (rc != 0)
		return rc;
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	PQclear(PQexec(conn, "BEGIN"));
	const char *p[] = {a.email, a.name, a.role, a.urn};
	PGresult *r = PQexecParams(conn,
				   "INSERT INTO staff_users (email, name, role, urn)"
				   " VALUES ($1, $2, $3, $4) RETURNING id",
				   4, NULL, p, NULL, NULL, 0);
	char link[1024], expires[64];
	long long id = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "23505") == 0)
			fprintf(stderr, "dualregctl: a user with e-mail address %s already exists\n",
				a.email);
		else if (state != NULL && strcmp(state, "23503") == 0)
			fprintf(stderr, "dualregctl: no school with URN %s\n", a.urn);
		else
			fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else {
		id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		rc = ctl_user_new_setup(conn, cfg, id, link, sizeof link, expires, sizeof expires);
	}
	PQclear(r);
	rc = user_txn_end(conn, rc);
	if (rc == 0) {
		if (a.admin)
			printf("added user %lld: %s, administrator\n", id, a.email);
		else
			printf("added user %lld: %s, %s at school %s\n", id, a.email, a.role, a.urn);
		print_link(id, a.email, link, expires);
	}
	PQfinish(conn);
	return rc;
}

#define STATE_SQL                                                                         \
	"CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'"                             \
	" WHEN u.totp_confirmed_at IS NOT NULL THEN 'active'"                             \
	" WHEN u.setup_expires_at > dualreg_now() THEN 'set-up pending'"                  \
	" ELSE 'set-up expired' END"

static int user_list(PGconn *conn, bool json)
{
	const char *sql =
	    json ? "SELECT coalesce(json_agg(json_build_object('id', u.id, 'email', u.email,"
		   " 'name', u.name, 'role', u.role, 'urn', u.urn, 'state', " STATE_SQL ","
		   " 'setup_expires_at', u.setup_expires_at, 'disabled_at', u.disabled_at,"
		   " 'sessions', (SELECT count(*) FROM staff_sessions s WHERE s.user_id = u.id"
		   "              AND s.expires_at > dualreg_now()),"
		   " 'created_at', u.created_at, 'updated_at', u.updated_at) ORDER BY u.id), '[]')"
		   " FROM staff_users u"
		 : "SELECT u.id, u.role, coalesce(u.urn, '-'), " STATE_SQL ", u.email, u.name"
		   " FROM staff_users u ORDER BY u.id";
	PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
	} else {
		printf("%-6s %-6s %-7s %-15s %-30s %s\n", "ID", "ROLE", "SCHOOL", "STATE", "EMAIL",
		       "NAME");
		for (int i = 0; i < PQntuples(r); i++)
			printf("%-6s %-6s %-7s %-15s %-30s %s\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			       PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
	}
	PQclear(r);
	return 0;
}

static int user_list_main(const struct config *cfg, int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && !json) {
			json = true;
		} else {
			fputs(user_list_usage, stderr);
			return 2;
		}
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = user_list(conn, json);
	PQfinish(conn);
	return rc;
}

/* The one operand of disable and reset: an id (digits) or an e-mail address. */
static int user_operand(int argc, char **argv, const char *usage, const char **who,
			bool *by_id)
{
	if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0') {
		fputs(usage, stderr);
		return 2;
	}
	*who = argv[1];
	size_t digits = strspn(*who, "0123456789");
	*by_id = digits == strlen(*who);
	if (*by_id && digits > 18) {
		fprintf(stderr, "dualregctl: \"%s\" is not a user id\n", *who);
		return 2;
	}
	return 0;
}

#define MATCH_ID "SELECT id, email, disabled_at IS NOT NULL AS was FROM staff_users" \
		 " WHERE id = $1::bigint FOR UPDATE"
#define MATCH_EMAIL "SELECT id, email, disabled_at IS NOT NULL AS was FROM staff_users" \
		    " WHERE lower(email) = lower($1) FOR UPDATE"

static int user_disable_main(const struct config *cfg, int argc, char **argv)
{
	const char *who;
	bool by_id;
	int rc = user_operand(argc, argv, user_disable_usage, &who, &by_id);
	if (rc != 0)
		return rc;
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "WITH u AS (%s),"
		 " upd AS (UPDATE staff_users s SET disabled_at = coalesce(s.disabled_at, dualreg_now()),"
		 "         setup_token_hash = NULL, setup_expires_at = NULL, updated_at = dualreg_now()"
		 "         FROM u WHERE s.id = u.id RETURNING s.id),"
		 " sess AS (DELETE FROM staff_sessions s USING u WHERE s.user_id = u.id RETURNING 1)"
		 " SELECT u.id, u.email, u.was, (SELECT count(*) FROM sess), (SELECT count(*) FROM upd)"
		 " FROM u",
		 by_id ? MATCH_ID : MATCH_EMAIL);
	const char *p[] = {who};
	PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "dualregctl: no user %s\n", who);
		rc = 1;
	} else {
		printf("user %s (%s) %s; %s session%s ended\n", PQgetvalue(r, 0, 0),
		       PQgetvalue(r, 0, 1),
		       strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "was already disabled" : "disabled",
		       PQgetvalue(r, 0, 3), strcmp(PQgetvalue(r, 0, 3), "1") == 0 ? "" : "s");
	}
	PQclear(r);
	PQfinish(conn);
	return rc;
}

static int user_reset_main(const struct config *cfg, int argc, char **argv)
{
	const char *who;
	bool by_id;
	int rc = user_operand(argc, argv, user_reset_usage, &who, &by_id);
	if (rc != 0)
		return rc;
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	char sql[1400];
	snprintf(sql, sizeof sql,
		 "WITH u AS (%s),"
		 " codes AS (DELETE FROM staff_recovery_codes c USING u WHERE c.user_id = u.id"
		 "           RETURNING 1),"
		 " sess AS (DELETE FROM staff_sessions s USING u WHERE s.user_id = u.id RETURNING 1),"
		 " upd AS (UPDATE staff_users s SET password_hash = NULL, totp_secret = NULL,"
		 "         totp_confirmed_at = NULL, totp_last_step = NULL, disabled_at = NULL,"
		 "         updated_at = dualreg_now() FROM u WHERE s.id = u.id RETURNING s.id)"
		 " SELECT u.id, u.email, u.was, (SELECT count(*) FROM sess),"
		 "        (SELECT count(*) FROM codes), (SELECT count(*) FROM upd)"
		 " FROM u",
		 by_id ? MATCH_ID : MATCH_EMAIL);
	PQclear(PQexec(conn, "BEGIN"));
	const char *p[] = {who};
	PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	char link[1024], expires[64], email[300] = "";
	long long id = 0;
	bool was_disabled = false;
	long long sessions = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "dualregctl: no user %s\n", who);
		rc = 1;
	} else {
		id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(email, sizeof email, "%s", PQgetvalue(r, 0, 1));
		was_disabled = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		sessions = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		rc = ctl_user_new_setup(conn, cfg, id, link, sizeof link, expires, sizeof expires);
	}
	PQclear(r);
	rc = user_txn_end(conn, rc);
	if (rc == 0) {
		printf("user %lld (%s) reset: password, authenticator and recovery codes cleared, "
		       "%lld session%s ended%s\n",
		       id, email, sessions, sessions == 1 ? "" : "s",
		       was_disabled ? ", enabled again" : "");
		print_link(id, email, link, expires);
	}
	PQfinish(conn);
	return rc;
}

static const struct ctl_command user_add_command = {
    .name = "add",
    .summary = "add a staff account and print its set-up link",
    .usage = user_add_usage,
    .run = user_add_main,
};

static const struct ctl_command user_list_command = {
    .name = "list",
    .summary = "list staff accounts",
    .usage = user_list_usage,
    .run = user_list_main,
};

static const struct ctl_command user_disable_command = {
    .name = "disable",
    .summary = "disable a staff account and end its sessions",
    .usage = user_disable_usage,
    .run = user_disable_main,
};

static const struct ctl_command user_reset_command = {
    .name = "reset",
    .summary = "clear a staff account's credentials and print a new set-up link",
    .usage = user_reset_usage,
    .run = user_reset_main,
};

static const struct ctl_command *const user_commands[] = {
    &user_add_command, &user_list_command, &user_disable_command, &user_reset_command, NULL,
};

const struct ctl_command ctl_user_command = {
    .name = "user",
    .summary = "staff accounts of the web app",
    .usage = "usage: dualregctl user COMMAND [ARGS]\n"
	     "The staff accounts of the web app: made, listed, disabled and reset here.\n",
    .subs = user_commands,
};
