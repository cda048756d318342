/*
 * httpd.c - libmicrohttpd wrapper: whole-body requests, deferred answers.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

struct http_server
{
	struct MHD_Daemon *d;
	http_handler_fn fn;
	void	   *app;
	size_t		max_body;
	int			port;
	int			inflight;		/* requests begun and not completed (atomic) */
};

struct http_req
{
	pthread_mutex_t mu;
	struct MHD_Connection *conn;
	http_server *srv;
	char	   *uri;
	const char *method;
	const char *path;
	char		peer[64];
	char	   *body;
	size_t		body_len;
	bool		started;
	bool		too_large;
	bool		dispatched;
	bool		suspended;
	struct MHD_Response *resp;
	int			status;
	double		t0;
};

/* Monotonic seconds. */
static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *
http_req_method(http_req *r)
{
	return r->method;
}

const char *
http_req_uri(http_req *r)
{
	return r->uri ? r->uri : "";
}

const char *
http_req_path(http_req *r)
{
	return r->path;
}

const char *
http_req_header(http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
http_req_body(http_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : "";
}

const char *
http_req_peer(http_req *r)
{
	return r->peer;
}

double
http_req_age(http_req *r)
{
	return mono() - r->t0;
}

/* The raw URI, captured before MHD parses it; becomes the request state. */
static void *
uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	http_server *s = cls;
	http_req   *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	__atomic_add_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_init(&r->mu, NULL);
	r->uri = strdup(uri ? uri : "");
	r->conn = conn;
	r->t0 = mono();
	return r;
}

void
http_respond(http_req *r, int status, const char *content_type,
			 const char *body, size_t len, const char *hname, const char *hvalue)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);

	if (content_type)
		MHD_add_response_header(resp, "Content-Type", content_type);
	if (hname && hvalue)
		MHD_add_response_header(resp, hname, hvalue);
	pthread_mutex_lock(&r->mu);
	r->resp = resp;
	r->status = status;
	if (r->suspended)
	{
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	pthread_mutex_unlock(&r->mu);
}

/* Queue the stored answer on the connection. */
static MHD_Result_t
send_stored(http_req *r)
{
	MHD_Result_t ret = MHD_queue_response(r->conn, r->status, r->resp);

	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ret;
}

static MHD_Result_t
access_handler(void *cls, struct MHD_Connection *conn, const char *url,
			   const char *method, const char *version, const char *upload_data,
			   size_t *upload_data_size, void **con_cls)
{
	http_server *s = cls;
	http_req   *r = *con_cls;

	(void) version;
	if (!r)
		return MHD_NO;
	if (!r->started)
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		r->started = true;
		r->srv = s;
		r->method = method;
		r->path = url;
		r->conn = conn;
		if (ci && ci->client_addr)
		{
			if (ci->client_addr->sa_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *) ci->client_addr)->sin_addr, r->peer, sizeof(r->peer));
			else if (ci->client_addr->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *) ci->client_addr)->sin6_addr, r->peer, sizeof(r->peer));
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		if (!r->too_large)
		{
			if (r->body_len + *upload_data_size > s->max_body)
			{
				r->too_large = true;
				free(r->body);
				r->body = NULL;
			}
			else
			{
				char	   *nb = realloc(r->body, r->body_len + *upload_data_size + 1);

				if (!nb)
					return MHD_NO;
				r->body = nb;
				memcpy(r->body + r->body_len, upload_data, *upload_data_size);
				r->body_len += *upload_data_size;
				r->body[r->body_len] = '\0';
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* the whole request is in (or we were resumed) */
	pthread_mutex_lock(&r->mu);
	if (r->resp)
	{
		MHD_Result_t ret = send_stored(r);

		pthread_mutex_unlock(&r->mu);
		return ret;
	}
	if (r->dispatched)
	{
		/* resumed spuriously: wait again */
		r->suspended = true;
		MHD_suspend_connection(conn);
		pthread_mutex_unlock(&r->mu);
		return MHD_YES;
	}
	r->dispatched = true;
	pthread_mutex_unlock(&r->mu);

	if (r->too_large)
	{
		static const char msg[] = "{\"error\":\"body_too_large\",\"message\":\"request body exceeds the limit\"}\n";

		http_respond(r, 413, "application/json", msg, sizeof(msg) - 1, NULL, NULL);
	}
	else
		s->fn(s->app, r);

	pthread_mutex_lock(&r->mu);
	if (r->resp)
	{
		MHD_Result_t ret = send_stored(r);

		pthread_mutex_unlock(&r->mu);
		return ret;
	}
	r->suspended = true;
	MHD_suspend_connection(conn);
	pthread_mutex_unlock(&r->mu);
	return MHD_YES;
}

/* Free the request state when MHD is done with it. */
static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	http_server *s = cls;
	http_req   *r = *con_cls;

	(void) conn;
	(void) toe;
	if (!r)
		return;
	__atomic_sub_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r->body);
	free(r->uri);
	pthread_mutex_destroy(&r->mu);
	free(r);
	*con_cls = NULL;
}

http_server *
http_start(const char *bind_addr, int port, size_t max_body, unsigned max_conns,
		   unsigned idle_timeout_s, http_handler_fn fn, void *app, char *err, size_t errlen)
{
	http_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	if (!s)
		return NULL;
	s->fn = fn;
	s->app = app;
	s->max_body = max_body;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	if (inet_pton(AF_INET, bind_addr ? bind_addr : "0.0.0.0", &sa.sin_addr) != 1)
	{
		snprintf(err, errlen, "bad bind address %s", bind_addr);
		free(s);
		return NULL;
	}
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
							MHD_USE_ITC,
							port, NULL, NULL, access_handler, s,
							MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
							MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s,
							MHD_OPTION_NOTIFY_COMPLETED, completed, s,
							MHD_OPTION_CONNECTION_LIMIT, max_conns,
							MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
							MHD_OPTION_THREAD_POOL_SIZE, 2,
							MHD_OPTION_END);
	if (!s->d)
	{
		snprintf(err, errlen, "cannot listen on %s:%d", bind_addr ? bind_addr : "0.0.0.0", port);
		free(s);
		return NULL;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : port;
	return s;
}

int
http_port(http_server *s)
{
	return s->port;
}

void
http_quiesce(http_server *s)
{
	if (s && s->d)
	{
		MHD_socket fd = MHD_quiesce_daemon(s->d);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

void
http_stop(http_server *s)
{
	if (!s)
		return;

	/*
	 * A request answered just before this (a worker's response handed to
	 * the resumed connection) is still being written by the daemon's
	 * threads: stopping now would close its connection with the answer
	 * unsent, and a client would retry something that was stored.  Wait
	 * (bounded) until every begun request has completed.
	 */
	for (int i = 0; i < 1000 && __atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) > 0; i++)
		usleep(10000);
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s);
}
