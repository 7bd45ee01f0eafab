/*
 * ctl: what dualregctl's command modules share: the database connection (blocking libpq,
 * as a command line tool may) and API key creation. Commands return the process exit
 * status: 0 success, 1 failure, 2 usage or configuration error.
 */
#ifndef DUALREG_CTL_H
#define DUALREG_CTL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "dualreg/auth.h"
#include "dualreg/config.h"

/* Connects with the configured URL; NULL (after saying why on stderr) on failure. */
PGconn *ctl_connect(const struct config *cfg);

/*
 * Creates an API key (urn NULL: admin) named name and writes its token into token
 * (AUTH_TOKEN_LEN + 1 bytes) and its id into *id. 0, or 1 after saying why on stderr.
 */
int ctl_key_insert(PGconn *conn, const char *name, const char *urn, char *token, size_t len,
		   long long *id);

/* dualregctl seed --demo (ctl/seed.c). */
int ctl_cmd_seed(const struct config *cfg, int argc, char **argv);
/* dualregctl school add|list|show (ctl/school.c). */
int ctl_cmd_school(const struct config *cfg, int argc, char **argv);
/* dualregctl pupil import (ctl/pupil_import.c). */
int ctl_cmd_pupil(const struct config *cfg, int argc, char **argv);
/* dualregctl sync status (ctl/sync_status.c). */
int ctl_cmd_sync(const struct config *cfg, int argc, char **argv);
/* dualregctl purge --before DATE (ctl/purge.c). */
int ctl_cmd_purge(const struct config *cfg, int argc, char **argv);

/* dualregctl registration add|end|schedule (ctl/registration.c). */
int ctl_cmd_registration(const struct config *cfg, int argc, char **argv);
/* dualregctl deliveries list|retry (ctl/deliveries.c). */
int ctl_cmd_deliveries(const struct config *cfg, int argc, char **argv);

#endif
