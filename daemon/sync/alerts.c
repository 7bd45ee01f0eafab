/* alerts: the attendance.missing check on a timer (see alerts.h), and with it the expiry
 * of registration requests nobody decided on in time (dualreg_expire_requests). */
#include "dualreg/alerts.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

struct alerts {
	struct db_pool *db;
	const struct config *cfg;
	struct event *timer;
	struct db_op *op; /* the check in flight */
};

static void checked(PGresult *res, const char *err, void *arg)
{
	struct alerts *a = arg;
	a->op = NULL;
	if (res == NULL)
		log_debug("missing-mark check skipped", "err=\"%s\"", err);
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_error("missing-mark check failed", "err=\"%s\"", PQresultErrorMessage(res));
	else {
		if (atoi(PQgetvalue(res, 0, 0)) > 0)
			log_info("missing-mark alerts raised", "count=%s", PQgetvalue(res, 0, 0));
		if (atoi(PQgetvalue(res, 0, 1)) > 0)
			log_info("registration requests expired", "count=%s",
				 PQgetvalue(res, 0, 1));
	}
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct alerts *a = arg;
	if (a->op != NULL)
		return; /* the previous check is still running */
	char grace[32];
	snprintf(grace, sizeof grace, "%u milliseconds", a->cfg->alert_missing_grace_ms);
	const char *params[] = {grace};
	a->op = dbp_query(a->db, "SELECT dualreg_missing_alerts($1::interval), dualreg_expire_requests()",
			  1, params, checked, a);
}

void alerts_reschedule(struct alerts *a)
{
	unsigned ms = a->cfg->alert_check_interval_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(a->timer, &tv);
}

struct alerts *alerts_new(struct event_base *base, struct db_pool *db, const struct config *cfg)
{
	struct alerts *a = xcalloc(1, sizeof *a);
	a->db = db;
	a->cfg = cfg;
	a->timer = event_new(base, -1, EV_PERSIST, tick, a);
	alerts_reschedule(a);
	return a;
}

void alerts_free(struct alerts *a)
{
	if (a == NULL)
		return;
	if (a->op != NULL)
		db_op_cancel(a->op);
	event_free(a->timer);
	free(a);
}
