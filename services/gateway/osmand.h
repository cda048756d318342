/*
 * osmand.h - OsmAnd / Traccar Client HTTP protocol: turns one HTTP request
 * (method, request target, content type, body) into position records and
 * the HTTP status to answer with.
 *
 * Accepted shapes:
 *   GET  /?id=..&lat=..&lon=..&timestamp=..&speed=..   (query string)
 *   POST with an application/x-www-form-urlencoded body of the same params
 *   POST application/json in the Traccar Client (background-geolocation)
 *        shape: {"device_id":..,"location":{"timestamp":..,"coords":{..},
 *        "battery":{..},..}} - "location" may also be an array of fixes.
 *
 * Units: query `speed` is knots (stored as km/h, 1 kn = 1.852 km/h); JSON
 * coords.speed is m/s (x 3.6).  Timestamps: unix seconds, unix ms (values
 * >= 2^31-1 are taken as ms), ISO-8601 with Z or an offset, or
 * "yyyy-MM-dd HH:mm:ss" which is UTC.  No timestamp: now_ms.
 * Unknown parameters become attributes (numbers, true/false, or strings);
 * a number-looking value outside what PostgreSQL's numeric takes (an
 * exponent beyond 1000, e.g. 1e200000) is kept as a string, so every
 * attribute document is one jsonb accepts.
 *
 * JSON bodies are parsed with jansson (Debian: libjansson-dev).
 */
#ifndef FLEET_GW_OSMAND_H
#define FLEET_GW_OSMAND_H

#include "record.h"

#define OSM_MAX_KEY 64			/* longest parameter name, bytes */
#define OSM_MAX_VALUE 2048		/* longest decoded parameter value, bytes */

typedef struct
{
	int			http_status;	/* 200, 400, 405 or 500 */
	size_t		n_records;
} osm_result;

/*
 * Decode one request.  `target` is the request target (path and query,
 * e.g. "/?id=1&lat=.."), content_type may be NULL or "".  On error no
 * record is valid and res->http_status says what to answer.
 */
gw_err		osm_decode(const char *method, const char *target, size_t target_len,
					   const char *content_type, const char *body, size_t body_len,
					   int64_t now_ms, gw_record *recs, size_t max_recs,
					   gw_arena *arena, osm_result *res);

/* the HTTP status for a decode result */
int			osm_http_status(gw_err e);

/* an arena of this many bytes always holds the attributes of such a request */
size_t		osm_arena_bound(size_t target_len, size_t body_len);

/*
 * Parse a timestamp as OsmAnd clients send it (see above).  Returns false
 * if it is malformed or outside 0000-9999.  Exposed for tests.
 */
bool		osm_parse_time(const char *s, size_t len, int64_t *ms);

#endif							/* FLEET_GW_OSMAND_H */
