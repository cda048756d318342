/*
 * api.h - the sync service's HTTP API: routes, authentication, database
 * workers, error mapping, metrics.
 *
 *   POST /v1/sync/push   {"mutations": [...]}  -> {"results": [...], "last_mutation_id"}
 *   POST /v1/sync/pull   {"cursor", "max"}     -> {"changes", "last_mutation_id", "cursor", "has_more"}
 *   GET  /v1/me                                -> tenant, driver, vehicle, assigned work
 *   POST /v1/events      {"key", "kind", "payload", "occurred_at"}
 *
 * Every request carries "Authorization: Bearer <token>".  The handler
 * checks the method, the token's presence, the per-token rate limit and
 * the body's shape and size (validate.h); then a database worker runs one
 * statement that resolves the token (fleet.sync_authenticate: tenant
 * context for that transaction only) and does the work, and answers.  One
 * statement per request: an error anywhere stores nothing.
 *
 * Statuses: 200; 400 malformed JSON or wrong types; 401 missing, wrong,
 * expired or revoked token (SQLSTATE 28000); 403 (42501); 404 unknown
 * route; 405 wrong method; 409 conflict (23505: a mutation id reused with
 * another payload; 55000: a mutation id beyond the next expected one, with
 * "expected_id"); 413 body or batch too large (54000); 429 rate limited
 * (Retry-After); 503 database unavailable, outcome unknown or transient
 * (40001, 40P01, 55P03, 57014, class 53), queue full or shutting down
 * (Retry-After); 500 anything else.  Every error body is JSON
 * {"error": code, "message": text[, "field": name]}.
 */
#ifndef FLEET_SYNC_API_H
#define FLEET_SYNC_API_H

#include "../common/httpd.h"
#include "../common/dbmetrics.h"

typedef struct
{
	const char *dsn;
	int			workers;		/* database connections */
	int			queue_max;		/* requests waiting for a worker at most */
	int			max_mutations;	/* per push */
	int			pull_default;	/* changes per pull page unless "max" */
	int			pull_max;
	double		rate;			/* requests per second per token (<= 0: off) */
	double		burst;
	dbmetrics  *dbm;			/* fleet.metrics() appended to /metrics (NULL: off) */
} sync_config;

typedef struct sync_api sync_api;

sync_api   *sync_api_start(const sync_config *cfg, char *err, size_t errlen);
/* API port handler (app = sync_api *). */
void		sync_api_handle(void *app, http_req *r);
/* Admin port handler: /metrics, /healthz, /readyz. */
void		sync_api_admin(void *app, http_req *r);
/* Refuse new work (503), answer everything queued, stop the workers. */
void		sync_api_drain(sync_api *a);
void		sync_api_free(sync_api *a);

#endif
