/*
 * version: the release and the database schema version this build expects. The schema
 * version is the number of the newest sql/NNN_*.sql migration, written by the Makefile
 * into the generated schema_version.h.
 */
#ifndef DUALREG_VERSION_H
#define DUALREG_VERSION_H

#include "schema_version.h"

#define DUALREG_VERSION "0.1.0"

#endif
