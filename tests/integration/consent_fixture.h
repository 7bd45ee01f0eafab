/*
 * consent_fixture: the placement the consent suites share (consent_matrix,
 * consent_scenarios). Pupil Ada Lovelace, main registration at FORMER (ended long
 * ago), then main at HOME (open); the PRU proposes a subsidiary [s0, s1] (both in the
 * past, every weekday session at the PRU), which HOME then confirms, declines, lets
 * expire, or the PRU withdraws. OTHER has nothing to do with the pupil. Built on
 * registry_fixture (its daemon, keys and request helpers).
 */
#ifndef DUALREG_TESTS_CONSENT_FIXTURE_H
#define DUALREG_TESTS_CONSENT_FIXTURE_H

#include "registry_fixture.h"

#define FORMER "400004" /* the pupil's main school until long ago */
#define GIVEN "Ada"
#define FAMILY "Lovelace"
#define DOB "2012-12-10"
#define IDENTITY "\"given_name\":\"" GIVEN "\",\"family_name\":\"" FAMILY "\",\"date_of_birth\":\"" DOB "\""
#define ALL_WEEK                                                                              \
	"{\"mon\":[\"AM\",\"PM\"],\"tue\":[\"AM\",\"PM\"],\"wed\":[\"AM\",\"PM\"],\"thu\":[\"AM\"," \
	"\"PM\"],\"fri\":[\"AM\",\"PM\"]}"

/* The phases of the PRU's placement request. */
enum phase { BEFORE, PENDING, DECLINED, WITHDRAWN, EXPIRED, CONFIRMED, NPHASES };
extern const char *const phase_names[];
/* The kinds of key: the matrix's columns. */
enum kind { ADMIN, MAIN, SUB, FORMER_K, UNRELATED, NKINDS };
extern const char *const kind_names[];

struct consent_fx {
	char upn[14];
	/* registrations: FORMER main [fr0, fr1], HOME main [hs, open), PRU [s0, s1] */
	char fr0[11], fr1[11], hs[11], s0[11], s1[11];
	/* days asked about: in FORMER's period, HOME only, the placement, after it */
	char f[11], b[11], d[11], a[11], t[11];
	long main_id, sub_id;
	enum phase phase;
};
extern struct consent_fx fx;
extern char k_former[128];

const char *token_of(enum kind k);
const char *urn_of(enum kind k);
/* The daemon (webhooks to loopback allowed, a fast alerts timer), the schools, keys,
 * the pupil and its two main registrations; phase BEFORE. */
void cm_setup(void);
void cm_teardown(void);
/* "/v1/registrations/ID" or "/v1/registrations/ID/ACTION" (a static buffer). */
const char *reg_action(long id, const char *action);
/* The PRU proposes the placement [s0, s1]: pending, awaiting HOME; returns its id. */
long propose(void);
/* A registration's state, read from the database. */
const char *reg_status(long id);
/* Makes a pending request expire through the daemon's own periodic job. */
void expire(long id);
/* Brings the fixture to a phase. */
void enter(enum phase p);

#endif
