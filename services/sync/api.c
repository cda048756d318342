/*
 * api.c - fleet-sync's routes, database workers and error mapping.
 * See api.h.
 */
#include "api.h"
#include "ratelimit.h"
#include "validate.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/pgconn.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TOKEN_MAX 128

typedef enum { R_PUSH, R_PULL, R_ME, R_EVENT } route;

static const char *const route_name[] = {"/v1/sync/push", "/v1/sync/pull", "/v1/me", "/v1/events"};

typedef struct job
{
	route		rt;
	http_req   *r;
	char		token[TOKEN_MAX + 1];
	char	   *p[4];			/* statement parameters after the token */
	struct job *next;
} job;

typedef struct worker
{
	struct sync_api *api;
	pthread_t	thread;
	pgconn	   *pg;
	volatile bool connected;
} worker;

struct sync_api
{
	sync_config cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	job		   *head,
			  **tail;
	int			queued;
	bool		stopping;
	volatile bool draining;
	worker	   *workers;
	ratelimit  *rl;
};

static metric_family *m_req, *m_lat, *m_mut, *m_db, *m_queue;

/*
 * One statement per request: the token is resolved (and the tenant set for
 * this transaction) by the function scan in FROM, and the work is a
 * function that depends on its output (a LATERAL function call or the
 * target list), so it can only run after the tenant is set.  A plain join
 * with a tenant table would not do: the planner may scan that table first,
 * before any tenant context exists.
 */
static const pg_stmt statements[] = {
	{"push",
		"SELECT p.mutation_id, p.result, p.stored::text"
		"  FROM fleet.sync_authenticate($1) a"
		" CROSS JOIN LATERAL fleet.sync_push(a.client_id, $2::jsonb) p", 2},
	{"expected",
		"SELECT (fleet.sync_me(a.client_id) OPERATOR(pg_catalog.->>) 'last_mutation_id')::bigint OPERATOR(pg_catalog.+) 1"
		"  FROM fleet.sync_authenticate($1) a", 1},
	{"pull",
		"SELECT fleet.sync_pull(a.client_id, $2, $3::integer)::text"
		"  FROM fleet.sync_authenticate($1) a", 3},
	{"me",
		"SELECT fleet.sync_me(a.client_id)::text, a.token_id, a.expires_at"
		"  FROM fleet.sync_authenticate($1) a", 1},
	{"event",
		"SELECT e.status, e.reason, e.event_id"
		"  FROM fleet.sync_authenticate($1) a"
		" CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, $2, $3, $4::jsonb, $5::timestamptz) e", 5},
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Answer, count and time. */
static void
reply(http_req *r, const char *rt, int status, const char *body, const char *hname, const char *hval)
{
	char		lbl[96];
	double		age = http_req_age(r);

	snprintf(lbl, sizeof(lbl), "route=\"%s\",code=\"%d\"", rt, status);
	metrics_add(m_req, lbl, 1);
	snprintf(lbl, sizeof(lbl), "route=\"%s\"", rt);
	metrics_observe(m_lat, lbl, age);
	if (status >= 500)
		log_msg(LOG_WARN, "request failed", "route=%s status=%d dur_ms=%.1f peer=%s", rt, status, age * 1000,
				http_req_peer(r));
	else
		log_msg(status >= 400 ? LOG_INFO : LOG_DEBUG, "request", "route=%s status=%d dur_ms=%.1f", rt, status, age * 1000);
	http_respond(r, status, "application/json", body, strlen(body), hname, hval);
}

/* A JSON error body {"error", "message"[, extra integer]}. */
static void
reply_error(http_req *r, const char *rt, int status, const char *error, const char *message,
			const char *hname, const char *hval, const char *extra_key, long long extra)
{
	json_t	   *o = json_pack("{s:s,s:s}", "error", error, "message", message);
	char	   *s;

	if (extra_key)
		json_object_set_new(o, extra_key, json_integer(extra));
	s = json_dumps(o, JSON_COMPACT);
	reply(r, rt, status, s ? s : "{\"error\":\"internal\"}", hname, hval);
	free(s);
	json_decref(o);
}

static void
free_job(job *j)
{
	for (int i = 0; i < 4; i++)
		free(j->p[i]);
	free(j);
}

/* Map a failed statement to an answer. */
static void
reply_db_error(worker *w, job *j, pgc_status st, const char *sqlstate, const char *msg)
{
	const char *rt = route_name[j->rt];

	if (st == PGC_UNAVAILABLE)
	{
		reply_error(j->r, rt, 503, "unavailable", "the database is unavailable; nothing was stored, retry",
					"Retry-After", "2", NULL, 0);
		return;
	}
	if (st == PGC_UNKNOWN)
	{
		reply_error(j->r, rt, 503, "outcome_unknown",
					"the database connection was lost during the request; retry it (pushes and events are idempotent)",
					"Retry-After", "1", NULL, 0);
		return;
	}
	if (strcmp(sqlstate, "28000") == 0)
		reply_error(j->r, rt, 401, "unauthorized", msg, "WWW-Authenticate", "Bearer error=\"invalid_token\"", NULL, 0);
	else if (strcmp(sqlstate, "55000") == 0 && j->rt == R_PUSH)
	{
		/* skipped ahead: tell the app where to resume */
		const char *vals[1] = {j->token};
		PGresult   *res = NULL;
		char		st2[6],
					m2[64];
		long long	expected = 0;

		if (pgconn_exec(w->pg, "expected", 1, vals, &res, st2, m2, sizeof(m2)) == PGC_OK)
		{
			if (PQntuples(res) == 1)
				expected = atoll(PQgetvalue(res, 0, 0));
			PQclear(res);
		}
		reply_error(j->r, rt, 409, "out_of_order", msg, NULL, NULL, expected ? "expected_id" : NULL, expected);
	}
	else if (strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "55000") == 0)
		reply_error(j->r, rt, 409, "conflict", msg, NULL, NULL, NULL, 0);
	else if (strcmp(sqlstate, "42501") == 0)
		reply_error(j->r, rt, 403, "forbidden", msg, NULL, NULL, NULL, 0);
	else if (strcmp(sqlstate, "54000") == 0)
		reply_error(j->r, rt, 413, "too_large", msg, NULL, NULL, NULL, 0);
	else if (strncmp(sqlstate, "22", 2) == 0 || strcmp(sqlstate, "23502") == 0)
		reply_error(j->r, rt, 400, "invalid_request", msg, NULL, NULL, NULL, 0);
	else if (strcmp(sqlstate, "42704") == 0)
		reply_error(j->r, rt, 404, "not_found", msg, NULL, NULL, NULL, 0);
	else if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "55P03") == 0 ||
			 strcmp(sqlstate, "57014") == 0 || strncmp(sqlstate, "53", 2) == 0)
		reply_error(j->r, rt, 503, "transient", msg, "Retry-After", "1", NULL, 0);
	else
	{
		log_msg(LOG_ERROR, "database error", "route=%s sqlstate=%s error=\"%s\"", rt, sqlstate, msg);
		reply_error(j->r, rt, 500, "internal", "internal error; nothing was stored", NULL, NULL, NULL, 0);
	}
}

/* Quote-free message for logs and bodies: first line only. */
static void
one_line(char *s)
{
	char	   *nl = strchr(s, '\n');

	if (nl)
		*nl = '\0';
}

static void
run_push(worker *w, job *j, PGresult *res)
{
	json_t	   *o = json_object(),
			   *results = json_array();
	long long	last = 0;
	char	   *s;

	for (int i = 0; i < PQntuples(res); i++)
	{
		long long	id = atoll(PQgetvalue(res, i, 0));
		const char *result = PQgetvalue(res, i, 1);
		json_t	   *stored = json_loads(PQgetvalue(res, i, 2), 0, NULL);
		char		lbl[48];

		json_array_append_new(results, json_pack("{s:I,s:s,s:o}", "id", (json_int_t) id, "result", result,
												 "stored", stored ? stored : json_null()));
		if (id > last)
			last = id;
		snprintf(lbl, sizeof(lbl), "result=\"%s\"", result);
		metrics_add(m_mut, lbl, 1);
	}
	json_object_set_new(o, "results", results);
	json_object_set_new(o, "last_mutation_id", json_integer(last));
	s = json_dumps(o, JSON_COMPACT);
	reply(j->r, route_name[R_PUSH], 200, s ? s : "{}", NULL, NULL);
	free(s);
	json_decref(o);
	(void) w;
}

static void
run_me(job *j, PGresult *res)
{
	json_t	   *o = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
	char	   *s;

	if (!o)
	{
		reply_error(j->r, route_name[R_ME], 500, "internal", "no answer for the token", NULL, NULL, NULL, 0);
		return;
	}
	json_object_set_new(o, "token", json_pack("{s:I,s:s}", "id", (json_int_t) atoll(PQgetvalue(res, 0, 1)),
											  "expires_at", PQgetvalue(res, 0, 2)));
	s = json_dumps(o, JSON_COMPACT);
	reply(j->r, route_name[R_ME], 200, s ? s : "{}", NULL, NULL);
	free(s);
	json_decref(o);
}

static void
run_event(job *j, PGresult *res)
{
	const char *status = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "rejected";
	json_t	   *o = json_pack("{s:s}", "status", status);
	int			code = 200;
	char	   *s;

	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1))
		json_object_set_new(o, "reason", json_string(PQgetvalue(res, 0, 1)));
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 2))
		json_object_set_new(o, "event_id", json_integer(atoll(PQgetvalue(res, 0, 2))));
	if (strcmp(status, "conflict") == 0)
	{
		code = 409;
		json_object_set_new(o, "error", json_string("conflict"));
		json_object_set_new(o, "message", json_string("this event key was used for a different event"));
	}
	else if (strcmp(status, "rejected") == 0)
	{
		code = 400;
		json_object_set_new(o, "error", json_string("invalid_event"));
		json_object_set_new(o, "message", json_string(PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)
													  ? PQgetvalue(res, 0, 1) : "rejected"));
	}
	s = json_dumps(o, JSON_COMPACT);
	reply(j->r, route_name[R_EVENT], code, s ? s : "{}", NULL, NULL);
	free(s);
	json_decref(o);
}

static void
run_job(worker *w, job *j)
{
	static const char *const stmt[] = {"push", "pull", "me", "event"};
	static const int nparams[] = {2, 3, 1, 5};
	const char *vals[5] = {j->token, j->p[0], j->p[1], j->p[2], j->p[3]};
	PGresult   *res = NULL;
	char		sqlstate[6] = "",
				msg[512] = "";
	pgc_status	st = pgconn_exec(w->pg, stmt[j->rt], nparams[j->rt], vals, &res, sqlstate, msg, sizeof(msg));

	w->connected = pgconn_is_connected(w->pg);
	if (st != PGC_OK)
	{
		one_line(msg);
		reply_db_error(w, j, st, sqlstate, msg);
		return;
	}
	switch (j->rt)
	{
		case R_PUSH:
			run_push(w, j, res);
			break;
		case R_PULL:
			if (PQntuples(res) == 1)
			{
				const char *text = PQgetvalue(res, 0, 0);

				reply(j->r, route_name[R_PULL], 200, text, NULL, NULL);
			}
			else
				reply_error(j->r, route_name[R_PULL], 500, "internal", "no answer for the token", NULL, NULL, NULL, 0);
			break;
		case R_ME:
			run_me(j, res);
			break;
		case R_EVENT:
			run_event(j, res);
			break;
	}
	PQclear(res);
}

static void *
worker_main(void *arg)
{
	worker	   *w = arg;
	sync_api   *a = w->api;

	for (;;)
	{
		job		   *j;

		pthread_mutex_lock(&a->mu);
		while (!a->head && !a->stopping)
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) != 0 && !a->head && !a->stopping)
			{
				/* idle: keep the connection (and readiness) current */
				pthread_mutex_unlock(&a->mu);
				w->connected = pgconn_ensure(w->pg);
				pthread_mutex_lock(&a->mu);
			}
		}
		j = a->head;
		if (j)
		{
			a->head = j->next;
			if (!a->head)
				a->tail = &a->head;
			a->queued--;
			metrics_set(m_queue, NULL, a->queued);
		}
		pthread_mutex_unlock(&a->mu);
		if (!j)
			break;
		run_job(w, j);
		free_job(j);
	}
	return NULL;
}

sync_api *
sync_api_start(const sync_config *cfg, char *err, size_t errlen)
{
	sync_api   *a = calloc(1, sizeof(*a));

	if (!a)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!m_req)
	{
		m_req = metrics_counter("fleet_sync_http_requests_total", "HTTP requests by route and status code.");
		m_lat = metrics_histogram("fleet_sync_http_request_duration_seconds",
								  "HTTP request latency from arrival to the answer, by route.",
								  metrics_latency_bounds, metrics_latency_nbounds);
		m_mut = metrics_counter("fleet_sync_mutations_total",
								"Pushed mutations by the database's result (applied, merged, rejected, duplicate).");
		m_db = metrics_gauge("fleet_sync_database_connections", "Database connections of the workers that are up.");
		m_queue = metrics_gauge("fleet_sync_queue_depth", "Requests waiting for a database worker.");
	}
	a->cfg = *cfg;
	a->tail = &a->head;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->rl = ratelimit_new(cfg->rate, cfg->burst, 8192);
	a->workers = calloc(cfg->workers, sizeof(worker));
	if (!a->rl || !a->workers)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < cfg->workers; i++)
	{
		worker	   *w = &a->workers[i];

		w->api = a;
		w->pg = pgconn_new(cfg->dsn, "fleet-sync", statements, sizeof(statements) / sizeof(statements[0]));
		w->connected = pgconn_ensure(w->pg);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		{
			snprintf(err, errlen, "cannot start worker %d", i);
			return NULL;
		}
	}
	return a;
}

/* The bearer token of the request, or NULL. */
static const char *
bearer(http_req *r, char *buf)
{
	const char *h = http_req_header(r, "Authorization");
	size_t		n;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	if (n == 0 || n > TOKEN_MAX ||
		strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return NULL;
	memcpy(buf, h, n + 1);
	return buf;
}

static void
reply_problem(http_req *r, route rt, const sv_problem *p)
{
	char	   *s = sv_problem_json(p);

	reply(r, route_name[rt], p->status == SV_TOO_MANY ? 413 : 400, s ? s : "{}", NULL, NULL);
	free(s);
}

void
sync_api_handle(void *app, http_req *r)
{
	sync_api   *a = app;
	const char *path = http_req_path(r),
			   *method = http_req_method(r);
	route		rt;
	job		   *j;
	size_t		len;
	const char *body = http_req_body(r, &len);
	sv_problem	p;
	double		wait;
	char		tok[TOKEN_MAX + 1];

	if (strcmp(path, "/v1/sync/push") == 0)
		rt = R_PUSH;
	else if (strcmp(path, "/v1/sync/pull") == 0)
		rt = R_PULL;
	else if (strcmp(path, "/v1/me") == 0)
		rt = R_ME;
	else if (strcmp(path, "/v1/events") == 0)
		rt = R_EVENT;
	else
	{
		reply_error(r, "other", 404, "not_found", "no such route", NULL, NULL, NULL, 0);
		return;
	}
	if (strcmp(method, rt == R_ME ? "GET" : "POST") != 0)
	{
		reply_error(r, route_name[rt], 405, "method_not_allowed", rt == R_ME ? "use GET" : "use POST",
					"Allow", rt == R_ME ? "GET" : "POST", NULL, 0);
		return;
	}
	if (a->draining)
	{
		reply_error(r, route_name[rt], 503, "shutting_down", "the service is shutting down; retry",
					"Retry-After", "1", NULL, 0);
		return;
	}
	if (!bearer(r, tok))
	{
		reply_error(r, route_name[rt], 401, "unauthorized", "missing or malformed bearer token",
					"WWW-Authenticate", "Bearer", NULL, 0);
		return;
	}
	if (!ratelimit_take(a->rl, tok, mono(), &wait))
	{
		char		ra[16];

		snprintf(ra, sizeof(ra), "%d", (int) wait + 1);
		reply_error(r, route_name[rt], 429, "rate_limited", "too many requests for this token", "Retry-After", ra,
					NULL, 0);
		return;
	}

	j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->rt = rt;
	j->r = r;
	memcpy(j->token, tok, strlen(tok) + 1);
	if (memchr(body, '\0', len))
	{
		free_job(j);
		p.status = SV_MALFORMED;
		snprintf(p.error, sizeof(p.error), "malformed_json");
		snprintf(p.message, sizeof(p.message), "the body contains a NUL byte");
		p.field[0] = '\0';
		reply_problem(r, rt, &p);
		return;
	}
	switch (rt)
	{
		case R_PUSH:
			{
				int			n;

				if (sv_push(body, len, a->cfg.max_mutations, &j->p[0], &n, &p) != SV_OK)
				{
					free_job(j);
					reply_problem(r, rt, &p);
					return;
				}
				break;
			}
		case R_PULL:
			{
				int			max;

				if (sv_pull(body, len, a->cfg.pull_default, a->cfg.pull_max, &j->p[0], &max, &p) != SV_OK)
				{
					free_job(j);
					reply_problem(r, rt, &p);
					return;
				}
				j->p[1] = malloc(16);
				snprintf(j->p[1], 16, "%d", max);
				break;
			}
		case R_ME:
			break;
		case R_EVENT:
			if (sv_event(body, len, &j->p[0], &j->p[1], &j->p[2], &j->p[3], &p) != SV_OK)
			{
				free_job(j);
				reply_problem(r, rt, &p);
				return;
			}
			break;
	}

	pthread_mutex_lock(&a->mu);
	if (a->stopping || a->queued >= a->cfg.queue_max)
	{
		bool		stopping = a->stopping;

		pthread_mutex_unlock(&a->mu);
		free_job(j);
		reply_error(r, route_name[rt], 503, stopping ? "shutting_down" : "busy",
					stopping ? "the service is shutting down; retry" : "too many requests queued; retry",
					"Retry-After", "1", NULL, 0);
		return;
	}
	*a->tail = j;
	a->tail = &j->next;
	a->queued++;
	metrics_set(m_queue, NULL, a->queued);
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static int
connected_workers(sync_api *a)
{
	int			n = 0;

	for (int i = 0; i < a->cfg.workers; i++)
		n += a->workers[i].connected ? 1 : 0;
	return n;
}

void
sync_api_admin(void *app, http_req *r)
{
	sync_api   *a = app;
	const char *path = http_req_path(r);
	char		lbl[64];

	if (strcmp(path, "/metrics") == 0)
	{
		size_t		len;
		char	   *text;

		metrics_set(m_db, NULL, connected_workers(a));
		snprintf(lbl, sizeof(lbl), "route=\"/metrics\",code=\"200\"");
		metrics_add(m_req, lbl, 1);
		text = metrics_render(&len);
		if (a->cfg.dbm)
			(void) dbmetrics_append(a->cfg.dbm, &text, &len);
		http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
		free(text);
	}
	else if (strcmp(path, "/healthz") == 0)
		reply(r, "/healthz", 200, "{\"status\":\"ok\"}", NULL, NULL);
	else if (strcmp(path, "/readyz") == 0)
	{
		if (a->draining)
			reply(r, "/readyz", 503, "{\"status\":\"draining\"}", NULL, NULL);
		else if (connected_workers(a) > 0)
			reply(r, "/readyz", 200, "{\"status\":\"ready\"}", NULL, NULL);
		else
			reply(r, "/readyz", 503, "{\"status\":\"database_unavailable\"}", "Retry-After", "2");
	}
	else
		reply_error(r, "other", 404, "not_found", "no such route", NULL, NULL, NULL, 0);
}

void
sync_api_drain(sync_api *a)
{
	a->draining = true;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < a->cfg.workers; i++)
		pthread_join(a->workers[i].thread, NULL);	/* every queued request answered */
}

void
sync_api_free(sync_api *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->cfg.workers; i++)
		pgconn_free(a->workers[i].pg);
	free(a->workers);
	ratelimit_free(a->rl);
	free(a);
}
