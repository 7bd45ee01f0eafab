/*
 * ctl: what dualregctl's command modules share: the command tree they hang their
 * commands on, the database connection (blocking libpq, as a command line tool may) and
 * API key creation. Commands return the process exit status: 0 success, 1 failure, 2
 * usage or configuration error.
 */
#ifndef DUALREG_CTL_H
#define DUALREG_CTL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "dualreg/auth_token.h"
#include "dualreg/config.h"
#include "dualreg/xalloc.h"

/* Connects with the configured URL; NULL (after saying why on stderr) on failure. */
PGconn *ctl_connect(const struct config *cfg);

/*
 * Creates an API key (urn NULL: admin) named name and writes its token into token
 * (AUTH_TOKEN_LEN + 1 bytes) and its id into *id. 0, or 1 after saying why on stderr.
 */
int ctl_key_insert(PGconn *conn, const char *name, const char *urn, char *token, size_t len,
		   long long *id);

/*
 * The command tree. dualregctl's dispatch, every --help text, the command lists in them
 * and `dualregctl commands` (which the tests walk) all come from these nodes, so a
 * command added to a table is dispatched, documented in --help and tested at once.
 *
 * A node has either subcommands (subs, NULL-terminated) or a handler (run), never both.
 * run gets the arguments from the command's own name on (argv[0] is "list" for `key
 * list`), so getopt with optind = 1 works, and returns the exit status. --help and -h
 * never reach a handler: the dispatcher answers them wherever they appear among a
 * command's arguments (before "--"), without the configuration or the database.
 */
struct ctl_command {
	const char *name;
	const char *summary; /* one line, for the command lists in --help */
	const char *usage;   /* the --help text, opening "usage: dualregctl PATH ..." */
	const struct ctl_command *const *subs;
	int (*run)(const struct config *cfg, int argc, char **argv);
	unsigned flags;
};

#define CTL_HIDDEN 1u    /* left out of --help's lists (still walked, still answers --help) */
#define CTL_NO_CONFIG 2u /* runs without reading the configuration; cfg is NULL */

/* The root of the tree: dualregctl itself (ctl/dualregctl.c). */
extern const struct ctl_command ctl_root;

/*
 * Calls fn for every command below root, each before its subcommands, in table order,
 * with its path from root ("key list"); CTL_HIDDEN commands (and what is below them)
 * only when hidden is true. Stops at the first fn that returns non-zero and returns
 * that value; 0 when the walk completes.
 */
int ctl_commands_walk(const struct ctl_command *root, bool hidden,
		      int (*fn)(const struct ctl_command *cmd, const char *path, void *arg),
		      void *arg);

/* The commands each module defines (the root's table lists them). */
extern const struct ctl_command ctl_seed_command;         /* ctl/seed.c */
extern const struct ctl_command ctl_school_command;       /* ctl/school.c */
extern const struct ctl_command ctl_pupil_command;        /* ctl/pupil_import.c */
extern const struct ctl_command ctl_pupil_erase_command;  /* ctl/pupil_erase.c */
extern const struct ctl_command ctl_sync_command;         /* ctl/sync_status.c */
extern const struct ctl_command ctl_purge_command;        /* ctl/purge.c */
extern const struct ctl_command ctl_registration_command; /* ctl/registration.c */
extern const struct ctl_command ctl_deliveries_command;   /* ctl/deliveries.c */
extern const struct ctl_command ctl_secrets_command;      /* ctl/secrets.c */
extern const struct ctl_command ctl_user_command;         /* ctl/user.c */

/* ctl/user.c: a staff account's set-up link, <[web] public_url>/app/setup#<token>. */
void ctl_setup_link(const struct config *cfg, const char *token, char *out, size_t len);
/*
 * ctl/user.c: gives account id a new set-up token, valid for [web] setup_ttl from now
 * (within the caller's transaction), and writes its link and expiry ("YYYY-MM-DD HH:MI
 * UTC"). 0, or 1 after saying why on stderr.
 */
int ctl_user_new_setup(PGconn *conn, const struct config *cfg, long long id, char *link,
		       size_t link_len, char *expires, size_t expires_len);

#endif
