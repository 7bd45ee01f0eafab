/*
 * version: the release, and the database schema and functions this build expects. The
 * schema version is the number of the newest sql/schema/NNN_*.sql step (the generated
 * schema_version.h); the functions checksum is that of sql/functions/ as dualregctl
 * migrate records it (the generated sql_functions.h).
 */
#ifndef DUALREG_VERSION_H
#define DUALREG_VERSION_H

#include "schema_version.h"
#include "sql_functions.h"

#define DUALREG_VERSION "0.1.0"

#endif
