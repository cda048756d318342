/*
 * http_front.h - the gateway's HTTP side: OsmAnd / Traccar Client requests
 * on the device port, and /metrics, /healthz, /readyz on the admin port.
 */
#ifndef FLEET_HTTP_FRONT_H
#define FLEET_HTTP_FRONT_H

#include "batcher.h"
#include "webhook.h"
#include "../common/dbmetrics.h"
#include "../common/httpd.h"

#include <stdbool.h>

typedef struct
{
	batcher    *b;
	webhook    *wh;				/* provider webhooks, or NULL */
	volatile bool *draining;
	double		started;		/* monotonic seconds at start */
	dbmetrics  *dbm;			/* the database's metrics on /metrics, or NULL */
} http_front;

/* Device port: OsmAnd GET query, form POST and JSON bodies; POST /webhook/<provider>. */
void http_front_devices(void *app, http_req *r);
/* Admin port: /metrics, /healthz, /readyz. */
void http_front_admin(void *app, http_req *r);
void http_front_init(void);

#endif
