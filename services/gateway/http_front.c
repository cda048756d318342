/*
 * http_front.c - OsmAnd requests and the admin endpoints.
 *
 * An OsmAnd request is decoded by osmand.c; a malformed one gets its 4xx at
 * once and stores nothing.  A valid one is submitted to the batcher and the
 * request stays open (suspended) until the batcher answers: 200 when the
 * fixes are stored or journaled, 404 when the device is unknown, 422 when
 * the database refused the fix with an error that is not an outage (the
 * body names db_error_<SQLSTATE>), 503 with Retry-After when the outcome is
 * unknown or the journal is full (the app retries; the database
 * deduplicates).  /readyz: 503 draining or journal_stuck (the drain has not
 * progressed for journal-stuck-after seconds while connected), 200 ok or
 * journaling, 503 journal_full.  POST /webhook/<provider> goes to
 * webhook.c (verified and stored by the database, answered after commit).
 */
#include "http_front.h"
#include "osmand.h"
#include "../common/log.h"
#include "../common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OSM_MAX_RECORDS 1000

static metric_family *m_http, *m_http_latency, *m_corrupt_http, *m_ready;

void
http_front_init(void)
{
	m_http = metrics_counter("fleet_gateway_http_requests_total", "HTTP requests by route and status code.");
	m_http_latency = metrics_histogram("fleet_gateway_http_request_duration_seconds",
									   "HTTP request latency until the answer, by route.",
									   metrics_latency_bounds, metrics_latency_nbounds);
	m_ready = metrics_gauge("fleet_gateway_database_connected", "1 when every writer lane of the gateway is connected to the database.");
	m_corrupt_http = metrics_counter("fleet_gateway_corrupt_requests_total",
									 "OsmAnd requests refused as malformed, by reason.");
}

/* Answer and count. */
static void
reply(http_req *r, const char *route, int status, const char *body, const char *hname, const char *hval)
{
	char		lbl[96];

	snprintf(lbl, sizeof(lbl), "route=\"%s\",code=\"%d\"", route, status);
	metrics_add(m_http, lbl, 1);
	if (strcmp(route, "osmand") == 0)
		dbmetrics_count_call("osmand", status < 400);
	snprintf(lbl, sizeof(lbl), "route=\"%s\"", route);
	metrics_observe(m_http_latency, lbl, http_req_age(r));
	http_respond(r, status, "text/plain; charset=utf-8", body, strlen(body), hname, hval);
}

/* Batcher callback for an OsmAnd request. */
static void
on_osmand_done(void *ctx, gw_outcome outcome, const gw_counts *counts)
{
	http_req   *r = ctx;

	switch (outcome)
	{
		case GW_STORED:
		case GW_JOURNALED:
			reply(r, "osmand", 200, "OK\n", NULL, NULL);
			break;
		case GW_REFUSED:
			reply(r, "osmand", 404, "unknown device\n", NULL, NULL);
			break;
		case GW_INVALID:
			{
				char		msg[96];

				/* the database refused the fix (not an outage): a retry will not help */
				snprintf(msg, sizeof(msg), "refused: %s\n", counts->reason);
				reply(r, "osmand", 422, msg, NULL, NULL);
				break;
			}
		default:
			reply(r, "osmand", 503, "not stored, retry\n", "Retry-After", "5");
	}
}

void
http_front_devices(void *app, http_req *r)
{
	http_front *f = app;
	const char *uri = http_req_uri(r);
	size_t		body_len;
	const char *body = http_req_body(r, &body_len);
	size_t		arena_len = osm_arena_bound(strlen(uri), body_len);
	char	   *arena_buf;
	gw_arena	arena;
	gw_record  *recs;
	osm_result	res = {0};
	gw_err		e;
	struct timespec now;

	const char *provider;

	if (*f->draining)
	{
		reply(r, "osmand", 503, "shutting down\n", "Retry-After", "5");
		return;
	}
	if (f->wh && webhook_path(http_req_path(r), &provider))
	{
		webhook_handle(f->wh, r, provider);
		return;
	}
	arena_buf = malloc(arena_len ? arena_len : 1);
	recs = calloc(OSM_MAX_RECORDS, sizeof(gw_record));
	if (!arena_buf || !recs)
	{
		free(arena_buf);
		free(recs);
		reply(r, "osmand", 503, "out of memory\n", "Retry-After", "5");
		return;
	}
	gw_arena_init(&arena, arena_buf, arena_len);
	clock_gettime(CLOCK_REALTIME, &now);
	e = osm_decode(http_req_method(r), uri, strlen(uri), http_req_header(r, "Content-Type"),
				   body, body_len, (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000,
				   recs, OSM_MAX_RECORDS, &arena, &res);
	if (e != GW_OK)
	{
		char		lbl[96],
					msg[128];

		snprintf(lbl, sizeof(lbl), "reason=\"%s\"", gw_strerror(e));
		metrics_add(m_corrupt_http, lbl, 1);
		snprintf(msg, sizeof(msg), "%s\n", gw_strerror(e));
		reply(r, "osmand", res.http_status ? res.http_status : osm_http_status(e), msg, NULL, NULL);
	}
	else if (res.n_records == 0)
		reply(r, "osmand", res.http_status ? res.http_status : 200, "OK\n", NULL, NULL);
	else
		batcher_submit(f->b, recs, (int) res.n_records, on_osmand_done, r);
	free(arena_buf);
	free(recs);
}

void
http_front_admin(void *app, http_req *r)
{
	http_front *f = app;
	const char *path = http_req_path(r);

	if (strcmp(path, "/metrics") == 0)
	{
		size_t		len;
		char	   *text;
		char		lbl[64];

		metrics_set(m_ready, NULL, batcher_db_ready(f->b) ? 1 : 0);
		text = metrics_render(&len);
		if (f->dbm)
			(void) dbmetrics_append(f->dbm, &text, &len);
		snprintf(lbl, sizeof(lbl), "route=\"/metrics\",code=\"200\"");
		metrics_add(m_http, lbl, 1);
		http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
		free(text);
	}
	else if (strcmp(path, "/healthz") == 0)
		reply(r, "/healthz", 200, "ok\n", NULL, NULL);
	else if (strcmp(path, "/readyz") == 0)
	{
		if (*f->draining)
			reply(r, "/readyz", 503, "draining\n", NULL, NULL);
		else if (batcher_journal_stuck(f->b))
			reply(r, "/readyz", 503, "journal_stuck\n", NULL, NULL);
		else if (batcher_db_ready(f->b))
			reply(r, "/readyz", 200, "ok\n", NULL, NULL);
		else if (batcher_journal_has_room(f->b))
			reply(r, "/readyz", 200, "journaling\n", NULL, NULL);
		else
			reply(r, "/readyz", 503, "journal_full\n", NULL, NULL);
	}
	else
		reply(r, "other", 404, "not found\n", NULL, NULL);
}
