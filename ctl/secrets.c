/*
 * secrets: dualregctl secrets new-key-file|rotate-key|drop-old-keys|status — the key
 * file that encrypts webhook secrets and feed tokens at rest (secret_box.h), and the
 * stored values sealed with it.
 *
 * Rotation: rotate-key puts a new key at the top of the configured key file (the
 * older keys stay, for decryption), then opens every stored secret and token and seals
 * it again with the new key, in one transaction. Every dualregd must then reload
 * (SIGHUP): until it has, it cannot open the values sealed with a key it has not read.
 * drop-old-keys then leaves only the current key in the file, once no stored value
 * needs another.
 *
 * A key file is replaced, never rewritten in place: the new text goes to a temporary
 * file beside it (mode 0600, the same owner), is synced, and is renamed over it.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "dualreg/secret_box.h"

static const char new_key_file_usage[] =
    "usage: dualregctl secrets new-key-file PATH\n"
    "Writes a new key file holding one random key, mode 0600; refuses to overwrite an\n"
    "existing file. Name it in [secrets] key_file and make dualreg its owner.\n";
static const char rotate_key_usage[] =
    "usage: dualregctl secrets rotate-key\n"
    "Adds a new current key at the top of the configured key file (older keys stay, for\n"
    "decryption), then encrypts every stored webhook secret and feed token again with it\n"
    "(unencrypted ones too), in one transaction, and prints how many. Reload every\n"
    "dualregd afterwards (systemctl reload dualregd).\n";
static const char drop_old_keys_usage[] =
    "usage: dualregctl secrets drop-old-keys\n"
    "Leaves only the current key in the configured key file, after checking that no\n"
    "stored value is encrypted with another key or unencrypted (run rotate-key and reload\n"
    "every dualregd first).\n";
static const char status_usage[] =
    "usage: dualregctl secrets status [--json]\n"
    "Shows the keys of the configured key file (the current one first), how many stored\n"
    "webhook secrets and feed tokens each key encrypts, keys in use that the file lacks,\n"
    "and how many values are stored unencrypted.\n";

#define KEY_FILE_HEADER                                                                      \
	"# dualreg secrets key file: one key per line, base64 of 32 random bytes.\n"         \
	"# The first key encrypts; every key decrypts. Keep it mode 0600, owned by dualreg.\n"

/* Every stored secret value, with the row it belongs to ($ kind, row, column, value). */
#define STORED_VALUES                                                                        \
	"SELECT 'subscription' AS kind, id::text AS row, 'secret' AS col, secret AS v "     \
	"FROM subscriptions UNION ALL "                                                      \
	"SELECT 'subscription', id::text, 'previous_secret', previous_secret "             \
	"FROM subscriptions WHERE previous_secret IS NOT NULL UNION ALL "                    \
	"SELECT 'school', urn, 'pull_token', pull_token FROM schools "                       \
	"WHERE pull_token IS NOT NULL UNION ALL "                                            \
	"SELECT 'staff', id::text, 'totp_secret', totp_secret FROM staff_users "             \
	"WHERE totp_secret IS NOT NULL"

/* Only options are refused here: the commands without options take none. */
static int no_options(int argc, char **argv, const char *usage)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	optind = 1;
	if (getopt_long(argc, argv, "", opts, NULL) != -1) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

/* The configured key file, or NULL after saying why (exit status 2). */
static const char *key_file(const struct config *cfg)
{
	if (cfg->secrets_key_file == NULL)
		fprintf(stderr, "dualregctl: [secrets] key_file is not set; create a key file with "
				"`dualregctl secrets new-key-file PATH` and name it there\n");
	return cfg->secrets_key_file;
}

/* Writes all of text to fd; 0, or -1 with errno. */
static int write_all(int fd, const char *text)
{
	size_t len = strlen(text), done = 0;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int new_key_file(const struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	int rc = no_options(argc, argv, new_key_file_usage);
	if (rc != 0)
		return rc;
	if (argc != 2 || argv[1][0] == '\0') {
		fputs(new_key_file_usage, stderr);
		return 2;
	}
	const char *path = argv[1];
	unsigned char key[SECRET_BOX_KEY_BYTES];
	char line[48], id[SECRET_BOX_ID_LEN + 1];
	if (secret_box_key_new(key, line) != 0) {
		fprintf(stderr, "dualregctl: no randomness available\n");
		return 1;
	}
	secret_box_key_id_of(key, id);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "dualregctl: %s: %s%s\n", path, strerror(errno),
			errno == EEXIST ? " (a key file is never overwritten)" : "");
		return 1;
	}
	char *text = xasprintf(KEY_FILE_HEADER "%s\n", line);
	bool ok = fchmod(fd, 0600) == 0 && write_all(fd, text) == 0 && fsync(fd) == 0;
	int saved = errno;
	free(text);
	memset(line, 0, sizeof line);
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		fprintf(stderr, "dualregctl: %s: %s\n", path, strerror(saved));
		unlink(path);
		return 1;
	}
	printf("wrote %s with key %s\n", path, id);
	return 0;
}

/* Reads a key file's text (bounded); NULL after saying why. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "dualregctl: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *text = xmalloc(SECRET_BOX_FILE_MAX + 1);
	size_t n = fread(text, 1, SECRET_BOX_FILE_MAX, f);
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "dualregctl: %s: cannot read it\n", path);
		free(text);
		return NULL;
	}
	text[n] = '\0';
	return text;
}

/*
 * Replaces the file at path with text: a temporary file in the same directory with the
 * old file's owner and mode 0600, synced, renamed over it. 0, or 1 after saying why.
 */
static int replace_file(const char *path, const char *text)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "dualregctl: %s: %s\n", path, strerror(errno));
		return 1;
	}
	char *tmp = xasprintf("%s.new-XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "dualregctl: %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return 1;
	}
	bool ok = fchmod(fd, 0600) == 0;
	if (ok && (st.st_uid != geteuid() || st.st_gid != getegid()))
		ok = fchown(fd, st.st_uid, st.st_gid) == 0;
	ok = ok && write_all(fd, text) == 0 && fsync(fd) == 0;
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		fprintf(stderr, "dualregctl: cannot replace %s: %s\n", path, strerror(saved));
		unlink(tmp);
		free(tmp);
		return 1;
	}
	free(tmp);
	/* The rename itself is durable once the directory is synced. */
	char *dir_copy = xstrdup(path);
	int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir_copy);
	return 0;
}

static bool exec_ok(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/*
 * Opens and seals again, with box's current key, every value of res (columns: kind,
 * row, column, value), writing each back. The number of values, or -1 after saying why.
 */
static long reseal_rows(PGconn *conn, const struct secret_box *box, PGresult *res)
{
	long n = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *kind = PQgetvalue(res, i, 0), *row = PQgetvalue(res, i, 1),
			   *col = PQgetvalue(res, i, 2);
		bool school = strcmp(kind, "school") == 0, staff = strcmp(kind, "staff") == 0;
		char aad[SECRET_BOX_AAD_MAX], why[200];
		if (school)
			secret_box_aad_school(row, aad);
		else if (staff)
			secret_box_aad_staff(row, aad);
		else
			secret_box_aad_subscription(row, aad);
		char *plain = secret_box_open(box, PQgetvalue(res, i, 3), aad, why, sizeof why);
		if (plain == NULL) {
			fprintf(stderr, "dualregctl: %s %s, %s: %s\n", kind, row, col, why);
			return -1;
		}
		char *sealed = secret_box_seal(box, plain, aad);
		secret_box_value_free(plain);
		if (sealed == NULL) {
			fprintf(stderr, "dualregctl: %s %s, %s: cannot encrypt it\n", kind, row, col);
			return -1;
		}
		const char *params[] = {row, sealed, col};
		PGresult *u = PQexecParams(
		    conn,
		    school  ? "UPDATE schools SET pull_token = $2 WHERE urn = $1"
		    : staff ? "UPDATE staff_users SET totp_secret = $2 WHERE id = $1::bigint"
			    : "UPDATE subscriptions SET secret = CASE WHEN $3 = 'secret' THEN $2 "
			     "ELSE secret END, previous_secret = CASE WHEN $3 = 'previous_secret' "
			     "THEN $2 ELSE previous_secret END WHERE id = $1::bigint",
		    school || staff ? 2 : 3, NULL, params, NULL, NULL, 0);
		secret_box_value_free(sealed);
		if (PQresultStatus(u) != PGRES_COMMAND_OK) {
			fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(u));
			PQclear(u);
			return -1;
		}
		PQclear(u);
		n++;
	}
	return n;
}

/* Seals every stored value again with box's current key, in one transaction. */
static long reseal_all(PGconn *conn, const struct secret_box *box)
{
	if (!exec_ok(conn, "BEGIN"))
		return -1;
	/* The rows are locked first, so that no value changes between reading and writing. */
	PGresult *lock = PQexec(conn, "SELECT 1 FROM subscriptions FOR UPDATE");
	bool ok = PQresultStatus(lock) == PGRES_TUPLES_OK;
	PQclear(lock);
	lock = ok ? PQexec(conn, "SELECT 1 FROM schools WHERE pull_token IS NOT NULL FOR UPDATE")
		  : NULL;
	ok = ok && PQresultStatus(lock) == PGRES_TUPLES_OK;
	PQclear(lock);
	lock = ok ? PQexec(conn, "SELECT 1 FROM staff_users WHERE totp_secret IS NOT NULL FOR UPDATE")
		  : NULL;
	ok = ok && PQresultStatus(lock) == PGRES_TUPLES_OK;
	PQclear(lock);
	PGresult *res = ok ? PQexec(conn, STORED_VALUES " ORDER BY 1, 2, 3") : NULL;
	long n = -1;
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
		n = reseal_rows(conn, box, res);
	else
		fprintf(stderr, "dualregctl: %s", PQerrorMessage(conn));
	PQclear(res);
	if (n < 0 || !exec_ok(conn, "COMMIT")) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	return n;
}

static int rotate_key(const struct config *cfg, int argc, char **argv)
{
	int rc = no_options(argc, argv, rotate_key_usage);
	if (rc != 0)
		return rc;
	if (argc != 1) {
		fputs(rotate_key_usage, stderr);
		return 2;
	}
	const char *path = key_file(cfg);
	if (path == NULL)
		return 2;
	char err[600];
	struct secret_box *old = secret_box_load(path, err, sizeof err);
	if (old == NULL) {
		fprintf(stderr, "dualregctl: %s\n", err);
		return 1;
	}
	size_t nold = secret_box_key_count(old);
	secret_box_free(old);
	if (nold >= SECRET_BOX_MAX_KEYS) {
		fprintf(stderr, "dualregctl: %s holds %d keys already; run drop-old-keys first\n",
			path, SECRET_BOX_MAX_KEYS);
		return 1;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	/* First the key file, so that a value is never sealed with a key no file holds. */
	unsigned char key[SECRET_BOX_KEY_BYTES];
	char line[48];
	char *text = read_text(path);
	if (text == NULL || secret_box_key_new(key, line) != 0) {
		if (text != NULL)
			fprintf(stderr, "dualregctl: no randomness available\n");
		free(text);
		PQfinish(conn);
		return 1;
	}
	char stamp[32];
	time_t now = time(NULL);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	char *next = xasprintf("# current key since %s (dualregctl secrets rotate-key)\n%s\n%s",
			       stamp, line, text);
	memset(line, 0, sizeof line);
	free(text);
	rc = replace_file(path, next);
	free(next);
	struct secret_box *box = rc == 0 ? secret_box_load(path, err, sizeof err) : NULL;
	if (rc == 0 && box == NULL)
		fprintf(stderr, "dualregctl: %s\n", err);
	if (box == NULL) {
		PQfinish(conn);
		return 1;
	}
	printf("%s: new current key %s; %zu older key%s kept for decryption\n", path,
	       secret_box_key_id(box, 0), nold, nold == 1 ? "" : "s");
	long n = reseal_all(conn, box);
	PQfinish(conn);
	if (n < 0) {
		fprintf(stderr, "dualregctl: nothing was encrypted again; the key file keeps the new "
				"key, and rotate-key can be run again\n");
		secret_box_free(box);
		return 1;
	}
	printf("encrypted %ld stored value%s again with key %s\n", n, n == 1 ? "" : "s",
	       secret_box_key_id(box, 0));
	printf("now reload every dualregd (systemctl reload dualregd)\n");
	secret_box_free(box);
	return 0;
}

/*
 * How many stored values each key id encrypts: rows of (key id or NULL for plaintext,
 * count), or NULL after saying why.
 */
static PGresult *usage_by_key(PGconn *conn)
{
	PGresult *r = PQexec(conn, "SELECT CASE WHEN v ~ '^v1:[0-9a-f]{8}:' THEN substr(v, 4, 8) "
				   "END, count(*) FROM (" STORED_VALUES ") x GROUP BY 1 "
				   "ORDER BY 1 NULLS LAST");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int drop_old_keys(const struct config *cfg, int argc, char **argv)
{
	int rc = no_options(argc, argv, drop_old_keys_usage);
	if (rc != 0)
		return rc;
	if (argc != 1) {
		fputs(drop_old_keys_usage, stderr);
		return 2;
	}
	const char *path = key_file(cfg);
	if (path == NULL)
		return 2;
	char err[600];
	struct secret_box *box = secret_box_load(path, err, sizeof err);
	if (box == NULL) {
		fprintf(stderr, "dualregctl: %s\n", err);
		return 1;
	}
	char current[SECRET_BOX_ID_LEN + 1];
	snprintf(current, sizeof current, "%s", secret_box_key_id(box, 0));
	size_t nkeys = secret_box_key_count(box);
	secret_box_free(box);
	if (nkeys == 1) {
		printf("%s holds only the current key %s\n", path, current);
		return 0;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	PGresult *r = usage_by_key(conn);
	PQfinish(conn);
	if (r == NULL)
		return 1;
	long others = 0;
	for (int i = 0; i < PQntuples(r); i++)
		if (PQgetisnull(r, i, 0) || strcmp(PQgetvalue(r, i, 0), current) != 0)
			others += atol(PQgetvalue(r, i, 1));
	PQclear(r);
	if (others > 0) {
		fprintf(stderr,
			"dualregctl: %ld stored value%s not encrypted with the current key %s; "
			"run `dualregctl secrets rotate-key`, reload every dualregd, then this\n",
			others, others == 1 ? " is" : "s are", current);
		return 1;
	}
	/* The current key is the file's first key line. */
	char *text = read_text(path);
	if (text == NULL)
		return 1;
	char *line = NULL;
	for (char *p = text, *l; line == NULL && (l = strsep(&p, "\n")) != NULL;) {
		l += strspn(l, " \t");
		l[strcspn(l, " \t\r")] = '\0';
		if (l[0] != '\0' && l[0] != '#')
			line = l;
	}
	char *next = xasprintf(KEY_FILE_HEADER "%s\n", line != NULL ? line : "");
	rc = line != NULL ? replace_file(path, next) : 1;
	memset(text, 0, SECRET_BOX_FILE_MAX + 1);
	free(text);
	memset(next, 0, strlen(next));
	free(next);
	if (rc != 0)
		return 1;
	printf("%s: kept the current key %s, dropped %zu older key%s\n", path, current, nkeys - 1,
	       nkeys == 2 ? "" : "s");
	return 0;
}

static int status(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	bool json = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'j') {
			fputs(status_usage, stderr);
			return 2;
		}
		json = true;
	}
	if (optind != argc) {
		fputs(status_usage, stderr);
		return 2;
	}
	int rc = 0;
	char err[600];
	struct secret_box *box = NULL;
	if (cfg->secrets_key_file != NULL &&
	    (box = secret_box_load(cfg->secrets_key_file, err, sizeof err)) == NULL) {
		fprintf(stderr, "dualregctl: %s\n", err);
		rc = 1;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL) {
		secret_box_free(box);
		return 1;
	}
	PGresult *r = usage_by_key(conn);
	PQfinish(conn);
	if (r == NULL) {
		secret_box_free(box);
		return 1;
	}
	/* The file's keys in order, then keys in use that it lacks, then plaintext. */
	cJSON *out = cJSON_CreateObject();
	if (cfg->secrets_key_file != NULL)
		cJSON_AddStringToObject(out, "key_file", cfg->secrets_key_file);
	else
		cJSON_AddNullToObject(out, "key_file");
	if (box != NULL)
		cJSON_AddStringToObject(out, "current_key", secret_box_key_id(box, 0));
	else
		cJSON_AddNullToObject(out, "current_key");
	cJSON *keys = cJSON_AddArrayToObject(out, "keys");
	long plaintext = 0;
	for (size_t k = 0; k < secret_box_key_count(box); k++) {
		long n = 0;
		for (int i = 0; i < PQntuples(r); i++)
			if (!PQgetisnull(r, i, 0) &&
			    strcmp(PQgetvalue(r, i, 0), secret_box_key_id(box, k)) == 0)
				n = atol(PQgetvalue(r, i, 1));
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", secret_box_key_id(box, k));
		cJSON_AddBoolToObject(o, "in_key_file", true);
		cJSON_AddBoolToObject(o, "current", k == 0);
		cJSON_AddNumberToObject(o, "values", (double)n);
		cJSON_AddItemToArray(keys, o);
	}
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 0)) {
			plaintext = atol(PQgetvalue(r, i, 1));
			continue;
		}
		if (secret_box_has_key(box, PQgetvalue(r, i, 0)))
			continue;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", PQgetvalue(r, i, 0));
		cJSON_AddBoolToObject(o, "in_key_file", false);
		cJSON_AddBoolToObject(o, "current", false);
		cJSON_AddNumberToObject(o, "values", (double)atol(PQgetvalue(r, i, 1)));
		cJSON_AddItemToArray(keys, o);
	}
	PQclear(r);
	cJSON_AddNumberToObject(out, "plaintext", (double)plaintext);
	secret_box_free(box);
	if (json) {
		char *s = cJSON_PrintUnformatted(out);
		printf("%s\n", s);
		cJSON_free(s);
	} else {
		const cJSON *kf = cJSON_GetObjectItem(out, "key_file");
		printf("key file: %s\n", cJSON_IsString(kf) ? kf->valuestring : "(none configured)");
		printf("%-10s %-22s %s\n", "KEY", "STATE", "VALUES");
		const cJSON *k;
		cJSON_ArrayForEach(k, keys)
		{
			bool in_file = cJSON_IsTrue(cJSON_GetObjectItem(k, "in_key_file"));
			bool cur = cJSON_IsTrue(cJSON_GetObjectItem(k, "current"));
			printf("%-10s %-22s %.0f\n", cJSON_GetObjectItem(k, "id")->valuestring,
			       cur ? "current" : in_file ? "older" : "missing from key file",
			       cJSON_GetObjectItem(k, "values")->valuedouble);
		}
		printf("%-10s %-22s %ld\n", "-", "unencrypted", plaintext);
	}
	cJSON_Delete(out);
	return rc;
}

static const struct ctl_command new_key_file_command = {
    .name = "new-key-file",
    .summary = "write a new key file with one random key (mode 0600)",
    .usage = new_key_file_usage,
    .run = new_key_file,
    .flags = CTL_NO_CONFIG,
};

static const struct ctl_command rotate_key_command = {
    .name = "rotate-key",
    .summary = "add a new current key and encrypt every stored secret with it",
    .usage = rotate_key_usage,
    .run = rotate_key,
};

static const struct ctl_command drop_old_keys_command = {
    .name = "drop-old-keys",
    .summary = "leave only the current key in the key file",
    .usage = drop_old_keys_usage,
    .run = drop_old_keys,
};

static const struct ctl_command status_command = {
    .name = "status",
    .summary = "keys in use and values still unencrypted",
    .usage = status_usage,
    .run = status,
};

static const struct ctl_command *const secrets_commands[] = {
    &new_key_file_command, &rotate_key_command, &drop_old_keys_command, &status_command, NULL,
};

const struct ctl_command ctl_secrets_command = {
    .name = "secrets",
    .summary = "encryption of webhook secrets and feed tokens at rest",
    .usage = "usage: dualregctl secrets COMMAND [ARGS]\n"
	     "The key file ([secrets] key_file) that encrypts webhook secrets and feed tokens\n"
	     "stored in the database, and its rotation.\n",
    .subs = secrets_commands,
};
