/*
 * dbmetrics.h - the database's metrics on a service's /metrics, and the
 * service's own figures reported to the database.
 *
 * fleet.metrics() returns every fleet metric as rows (name, labels jsonb,
 * value, type, help).  A service that serves /metrics appends them to its
 * own series with dbmetrics_append(), so one scrape shows both.  In the
 * other direction a background thread reports, every interval, what only
 * the service knows -- per-integration call outcomes counted with
 * dbmetrics_count_call() and gauges from the service's callback (journal
 * depth) -- through fleet.report_service_metrics(), which fleet.health()
 * turns into per-integration error ratios.
 *
 * Usage:
 *     dbmetrics *dm = dbmetrics_start(dsn, "fleet-gateway", instance, 10, my_gauges, app);
 *     ... on GET /metrics:  text = metrics_render(&len); dbmetrics_append(dm, &text, &len);
 *     ... per call:         dbmetrics_count_call("teltonika", ok);
 *     dbmetrics_stop(dm);   (before what the gauges callback reads goes away)
 *     dbmetrics_free(dm);   (once nothing serves /metrics any more)
 *
 * The database side runs on its own connection (same DSN, application_name
 * "<service>-metrics") with a statement timeout, so a slow database never
 * holds a scrape longer than that.  All calls are thread-safe.
 */
#ifndef FLEET_DBMETRICS_H
#define FLEET_DBMETRICS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dbmetrics dbmetrics;

/* Called before each report: set gauges with dbmetrics_gauge(). */
typedef void (*dbmetrics_gauges_fn) (dbmetrics *dm, void *arg);

/*
 * Start reporting every interval_s seconds (0: never report, only fetch).
 * service: [a-z][a-z0-9_-]*; instance: free text identifying this process.
 */
dbmetrics *dbmetrics_start(const char *dsn, const char *service, const char *instance,
						   int interval_s, dbmetrics_gauges_fn gauges, void *arg);
/* The instance name of this process: "<host name>:<port>" (fallback when the host has none). */
void dbmetrics_instance(char *buf, size_t len, const char *fallback_host, long port);
/*
 * Stop reporting: join the reporter thread and send a last report (the
 * gauges callback runs one last time).  dbmetrics_append still works after
 * it, until dbmetrics_free.
 */
void dbmetrics_stop(dbmetrics *dm);
void dbmetrics_free(dbmetrics *dm);

/* Set a reported gauge (name [a-z_][a-z0-9_]*, no labels). */
void dbmetrics_gauge(dbmetrics *dm, const char *name, double value);

/*
 * Count one call of an integration (a tracker protocol such as "teltonika",
 * or "webhook:<provider>"): ok or error.  Process-wide; at most
 * DBMETRICS_MAX_INTEGRATIONS distinct names, later ones count as "other".
 * Names are reduced to [a-z0-9._:-].
 */
#define DBMETRICS_MAX_INTEGRATIONS 64
void dbmetrics_count_call(const char *integration, bool ok);

/* Report now (also done by the thread); true if the database took it. */
bool dbmetrics_report(dbmetrics *dm);

/*
 * Append the database's metrics to a malloc'd buffer of len bytes (the
 * service's own rendering); *text may be reallocated.  Adds
 * fleet_db_metrics_up (0 when the database did not answer) and
 * fleet_db_metrics_scrape_seconds.  Returns true if the database answered.
 */
bool dbmetrics_append(dbmetrics *dm, char **text, size_t *len);

/* ---- rendering, exposed for tests ---- */

typedef struct
{
	const char *name;
	const char *labels_json;	/* flat JSON object of strings */
	double		value;
	const char *type;			/* counter or gauge */
	const char *help;
} dbmetrics_row;

/*
 * Render rows (grouped by name, in the order given) as Prometheus text
 * 0.0.4 appended to text (len bytes).  Rows with an invalid name, type or labels,
 * and rows of a name seen earlier in a different group, are skipped and
 * counted in *skipped.  Returns false only when out of memory.
 */
bool dbmetrics_render(const dbmetrics_row *rows, int n, char **text, size_t *len, int *skipped);

#endif
