/*
 * webhook.c - provider webhooks: queue, one database worker, answers.
 * See webhook.h.
 */
#include "webhook.h"
#include "../common/dbmetrics.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/pgconn.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROVIDER_MAX 63

typedef struct wh_job
{
	http_req   *r;
	char		provider[PROVIDER_MAX + 1];
	char		ts[24];
	char	   *signature;
	char	   *body;
	struct wh_job *next;
} wh_job;

struct webhook
{
	pthread_t	thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	wh_job	   *head,
			  **tail;
	int			queued,
				max_queue;
	bool		stopping;
	pgconn	   *pg;
};

static metric_family *m_wh, *m_wh_items, *m_wh_latency;

static const pg_stmt statements[] = {
	{"webhook", "SELECT item, idx, status, reason FROM fleet.ingest_webhook($1, $2::bigint, $3, $4)", 4},
};

/* Answer with a JSON or text body and count. */
static void
answer(http_req *r, const char *provider, int status, const char *ctype, const char *body,
	   const char *hname, const char *hval)
{
	char		lbl[128];

	snprintf(lbl, sizeof(lbl), "code=\"%d\"", status);
	metrics_add(m_wh, lbl, 1);
	{
		char		integration[80];

		/*
		 * Per provider once it is known to the database; refusals (unknown
		 * provider, bad signature: the name is whatever the URL said) share
		 * one name, so a stranger cannot fill the bounded set of names.
		 */
		if (status == 401 || status == 403 || status == 404 || !provider)
			snprintf(integration, sizeof(integration), "webhook:refused");
		else
			snprintf(integration, sizeof(integration), "webhook:%s", provider);
		dbmetrics_count_call(integration, status < 400);
	}
	metrics_observe(m_wh_latency, NULL, http_req_age(r));
	log_msg(status == 200 ? LOG_DEBUG : LOG_INFO, "webhook answered", "provider=%s status=%d", provider, status);
	http_respond(r, status, ctype, body, strlen(body), hname, hval);
}

static void
answer_error(http_req *r, const char *provider, int status, const char *error,
			 const char *hname, const char *hval)
{
	json_t	   *o = json_pack("{s:s}", "error", error);
	char	   *text = json_dumps(o, JSON_COMPACT);

	answer(r, provider, status, "application/json", text ? text : "{}", hname, hval);
	free(text);
	json_decref(o);
}

/* Provider names as fleet.provider allows them: [a-z0-9][a-z0-9._-]{0,62}. */
bool
webhook_path(const char *path, const char **provider)
{
	const char *p;

	if (strncmp(path, "/webhook/", 9) != 0)
		return false;
	*provider = path + 9;
	for (p = *provider; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			  (p > *provider && (*p == '.' || *p == '_' || *p == '-'))))
		{
			*provider = NULL;
			break;
		}
	if (*provider && (p == *provider || p - *provider > PROVIDER_MAX))
		*provider = NULL;
	return true;
}

/* Run one job against the database and answer it. */
static void
run_job(webhook *w, wh_job *j)
{
	const char *vals[4] = {j->provider, j->ts, j->signature, j->body};
	PGresult   *res = NULL;
	char		sqlstate[6] = "",
				msg[256] = "";
	pgc_status	st = pgconn_exec(w->pg, "webhook", 4, vals, &res, sqlstate, msg, sizeof(msg));

	if (st == PGC_OK)
	{
		json_t	   *o = json_object(),
				   *pos = json_array(),
				   *ev = json_array();
		char	   *text;

		for (int i = 0; i < PQntuples(res); i++)
		{
			json_t	   *item = json_pack("{s:i,s:s}", "idx", atoi(PQgetvalue(res, i, 1)),
										 "status", PQgetvalue(res, i, 2));
			char		lbl[64];

			if (!PQgetisnull(res, i, 3))
				json_object_set_new(item, "reason", json_string(PQgetvalue(res, i, 3)));
			json_array_append_new(strcmp(PQgetvalue(res, i, 0), "event") == 0 ? ev : pos, item);
			snprintf(lbl, sizeof(lbl), "item=\"%s\",status=\"%s\"",
					 strcmp(PQgetvalue(res, i, 0), "event") == 0 ? "event" : "position",
					 PQgetvalue(res, i, 2)[0] == 'a' ? "accepted" : PQgetvalue(res, i, 2)[0] == 'd' ? "duplicate" :
					 PQgetvalue(res, i, 2)[0] == 'c' ? "conflict" : "rejected");
			metrics_add(m_wh_items, lbl, 1);
		}
		PQclear(res);
		json_object_set_new(o, "positions", pos);
		json_object_set_new(o, "events", ev);
		text = json_dumps(o, JSON_COMPACT);
		answer(j->r, j->provider, 200, "application/json", text ? text : "{}", NULL, NULL);
		free(text);
		json_decref(o);
	}
	else if (st == PGC_ERROR && strcmp(sqlstate, "28000") == 0)
		answer_error(j->r, j->provider, 401, "unauthorized", NULL, NULL);
	else if (st == PGC_ERROR && strncmp(sqlstate, "22", 2) == 0)
		answer_error(j->r, j->provider, 400, msg, NULL, NULL);
	else
	{
		if (st == PGC_ERROR)
			log_msg(LOG_WARN, "webhook call failed", "provider=%s sqlstate=%s error=\"%s\"",
					j->provider, sqlstate, msg);
		answer_error(j->r, j->provider, 503, st == PGC_UNKNOWN ? "outcome unknown, retry" : "not stored, retry",
					 "Retry-After", "5");
	}
}

static void
free_job(wh_job *j)
{
	free(j->signature);
	free(j->body);
	free(j);
}

static void *
worker(void *arg)
{
	webhook    *w = arg;

	for (;;)
	{
		wh_job	   *j;

		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		j = w->head;
		if (j)
		{
			w->head = j->next;
			if (!w->head)
				w->tail = &w->head;
			w->queued--;
		}
		pthread_mutex_unlock(&w->mu);
		if (!j)
			break;
		run_job(w, j);
		free_job(j);
	}
	return NULL;
}

webhook *
webhook_start(const char *dsn, int max_queue)
{
	webhook    *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	if (!m_wh)
	{
		m_wh = metrics_counter("fleet_gateway_webhook_requests_total", "Provider webhook calls by HTTP status.");
		m_wh_items = metrics_counter("fleet_gateway_webhook_items_total", "Webhook positions and events by the database's answer.");
		m_wh_latency = metrics_histogram("fleet_gateway_webhook_duration_seconds", "Webhook latency until the answer.",
										 metrics_latency_bounds, metrics_latency_nbounds);
	}
	w->max_queue = max_queue > 0 ? max_queue : 256;
	w->tail = &w->head;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->pg = pgconn_new(dsn, "fleet-gateway-webhook", statements, 1);
	if (pthread_create(&w->thread, NULL, worker, w) != 0)
	{
		pgconn_free(w->pg);
		free(w);
		return NULL;
	}
	return w;
}

void
webhook_handle(webhook *w, http_req *r, const char *provider)
{
	const char *ts = http_req_header(r, "X-Fleet-Timestamp"),
			   *sig = http_req_header(r, "X-Fleet-Signature"),
			   *body;
	size_t		body_len;
	wh_job	   *j;

	if (!provider)
	{
		answer_error(r, "-", 404, "unknown provider", NULL, NULL);
		return;
	}
	if (strcmp(http_req_method(r), "POST") != 0)
	{
		answer_error(r, provider, 405, "POST only", "Allow", "POST");
		return;
	}
	if (!ts || !sig || !*ts || strlen(ts) > 18 || strspn(ts, "0123456789") != strlen(ts) || strlen(sig) > 200)
	{
		answer_error(r, provider, 401, "unauthorized", NULL, NULL);
		return;
	}
	body = http_req_body(r, &body_len);
	if (memchr(body, '\0', body_len))
	{
		answer_error(r, provider, 400, "body contains NUL", NULL, NULL);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	snprintf(j->provider, sizeof(j->provider), "%s", provider);
	snprintf(j->ts, sizeof(j->ts), "%s", ts);
	j->signature = strdup(sig);
	j->body = strndup(body, body_len);
	j->r = r;
	if (!j->signature || !j->body)
		abort();
	pthread_mutex_lock(&w->mu);
	if (w->stopping || w->queued >= w->max_queue)
	{
		pthread_mutex_unlock(&w->mu);
		answer_error(r, provider, 503, w->stopping ? "shutting down" : "busy, retry", "Retry-After", "5");
		free_job(j);
		return;
	}
	*w->tail = j;
	w->tail = &j->next;
	w->queued++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void
webhook_stop(webhook *w)
{
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);	/* the worker answers every queued job first */
	pgconn_free(w->pg);
	free(w);
}
