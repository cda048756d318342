/*
 * httpd.h - a small HTTP front on libmicrohttpd for fleet's services.
 *
 * The application's handler is called once a request's whole body is in
 * (bodies over the limit get 413 without reaching it).  It answers with
 * http_respond(), either at once or later from any thread: a request still
 * unanswered when the handler returns is suspended, and resumed when the
 * answer comes (the gateway answers a device only after the commit that
 * stored its data).  Every request must be answered exactly once.
 */
#ifndef FLEET_HTTPD_H
#define FLEET_HTTPD_H

#include <stddef.h>

typedef struct http_req http_req;
typedef struct http_server http_server;
typedef void (*http_handler_fn) (void *app, http_req *req);

const char *http_req_method(http_req *r);
const char *http_req_uri(http_req *r);		/* raw, with the query string */
const char *http_req_path(http_req *r);		/* decoded path, no query */
const char *http_req_header(http_req *r, const char *name);
const char *http_req_body(http_req *r, size_t *len);
const char *http_req_peer(http_req *r);		/* client address */
double http_req_age(http_req *r);			/* seconds since it arrived */

void http_respond(http_req *r, int status, const char *content_type,
				  const char *body, size_t len,
				  const char *header_name, const char *header_value);

http_server *http_start(const char *bind_addr, int port, size_t max_body,
						unsigned max_conns, unsigned idle_timeout_s,
						http_handler_fn fn, void *app, char *err, size_t errlen);
int http_port(http_server *s);
void http_quiesce(http_server *s);	/* stop accepting new connections */
/* Stop: waits (at most 10 s) for begun requests to complete, so answers already
 * given to the daemon are written before connections close. */
void http_stop(http_server *s);

#endif
