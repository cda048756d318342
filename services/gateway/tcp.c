/*
 * tcp.c - epoll front for Teltonika (TCP, UDP) and GT06 (TCP); see tcp.h.
 *
 * Threads: the epoll thread owns every socket and connection; the batcher
 * thread and the login look-up thread hand results back through a
 * mutex-protected completion list and an eventfd.  A completion names its
 * connection by (fd, id): a connection closed meanwhile is not written to.
 */
#define _GNU_SOURCE
#include "tcp.h"
#include "gt06.h"
#include "teltonika.h"
#include "../common/dbmetrics.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/pgconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ARENA_BYTES (1 << 20)
#define MAX_FDS 65536

typedef enum { P_TELTONIKA, P_GT06 } proto;
static const char *proto_names[] = {"teltonika", "gt06"};

typedef struct conn
{
	int			fd;
	uint32_t	id;
	proto		p;
	uint8_t    *in;
	size_t		in_len,
				in_cap;
	uint8_t    *out;
	size_t		out_len;
	char		device[GW_DEVICE_MAX + 1];
	bool		logged_in;
	bool		login_pending;
	int			pending;
	bool		reading;
	double		last_active;
} conn;

typedef enum { C_DATA, C_LOGIN } comp_kind;

/* A frame in flight, then its completion. */
typedef struct completion
{
	struct tcp_server *srv;
	comp_kind	kind;
	int			fd;				/* connection, or the UDP socket */
	uint32_t	conn_id;		/* 0 for UDP */
	uint8_t		reply[16];
	size_t		reply_len;
	struct sockaddr_storage peer;	/* UDP */
	socklen_t	peerlen;
	gw_outcome	outcome;
	bool		known;			/* C_LOGIN */
	proto		p;
	char		imei[GW_DEVICE_MAX + 1];
	struct completion *next;
} completion;

struct tcp_server
{
	tcp_config	cfg;
	batcher    *b;
	int			ep,
				evfd,
				l_tlt,
				l_gt06,
				udp;
	int			ports[3];
	pthread_t	thread,
				lookup_thread;
	pthread_mutex_t mu;
	pthread_cond_t lookup_cv;
	completion *done,
			  **done_tail;
	completion *lookups,
			  **lookups_tail;
	volatile int stopping;
	int			inflight;		/* epoll thread only */
	int			nconns;
	uint32_t	next_id;
	conn	  **conns;
	char	   *arena;
};

static metric_family *m_conns, *m_frames, *m_corrupt, *m_logins, *m_refused;

/* Monotonic seconds. */
static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count a corrupt frame by protocol and reason. */
static void
count_corrupt(proto p, const char *reason)
{
	char		lbl[128];

	snprintf(lbl, sizeof(lbl), "protocol=\"%s\",reason=\"%s\"", proto_names[p], reason);
	metrics_add(m_corrupt, lbl, 1);
	dbmetrics_count_call(proto_names[p], false);
}

/* Count a frame by protocol and kind. */
static void
count_frame(proto p, const char *kind)
{
	char		lbl[96];

	snprintf(lbl, sizeof(lbl), "protocol=\"%s\",kind=\"%s\"", proto_names[p], kind);
	metrics_add(m_frames, lbl, 1);
	dbmetrics_count_call(proto_names[p], true);
}

/* Queue a completion from any thread and wake the epoll thread. */
static void
push_done(tcp_server *s, completion *c)
{
	uint64_t	one = 1;

	pthread_mutex_lock(&s->mu);
	c->next = NULL;
	*s->done_tail = c;
	s->done_tail = &c->next;
	pthread_mutex_unlock(&s->mu);
	(void) !write(s->evfd, &one, 8);
}

/* Batcher callback: the frame's data is stored, journaled, or not. */
static void
on_stored(void *ctx, gw_outcome outcome, const gw_counts *counts)
{
	completion *c = ctx;

	(void) counts;
	c->outcome = outcome;
	push_done(c->srv, c);
}

/* Listen on a TCP or UDP port; returns the fd and the bound port. */
static int
listen_on(const char *bind_addr, int port, int type, int *bound, char *err, size_t errlen)
{
	int			fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
				one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	socklen_t	sl = sizeof(sa);

	if (fd < 0 || inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1)
	{
		snprintf(err, errlen, "bad bind address %s", bind_addr);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
		(type == SOCK_STREAM && listen(fd, 1024) < 0))
	{
		snprintf(err, errlen, "cannot listen on %s:%d: %s", bind_addr, port, strerror(errno));
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *) &sa, &sl);
	*bound = ntohs(sa.sin_port);
	return fd;
}

/* Set the epoll interest of a connection. */
static void
watch(tcp_server *s, conn *c)
{
	struct epoll_event ev = {.data.fd = c->fd};

	ev.events = (c->reading ? EPOLLIN : 0) | (c->out_len ? EPOLLOUT : 0) | EPOLLRDHUP;
	epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Close a connection; completions still in flight find it gone. */
static void
close_conn(tcp_server *s, conn *c, const char *why)
{
	char		lbl[32];

	log_msg(LOG_DEBUG, "connection closed", "protocol=%s device=%s reason=%s",
			proto_names[c->p], c->device[0] ? c->device : "-", why);
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	s->conns[c->fd] = NULL;
	s->nconns--;
	snprintf(lbl, sizeof(lbl), "protocol=\"%s\"", proto_names[c->p]);
	metrics_add(m_conns, lbl, -1);
	free(c->in);
	free(c->out);
	free(c);
}

/* Write bytes to a connection, buffering what the socket does not take. */
static void
send_bytes(tcp_server *s, conn *c, const uint8_t *p, size_t n)
{
	if (c->out_len == 0)
	{
		ssize_t		w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w == (ssize_t) n)
			return;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return;				/* the read side will notice the close */
		if (w > 0)
			p += w, n -= w;
	}
	c->out = realloc(c->out, c->out_len + n);
	if (!c->out)
		abort();
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	watch(s, c);
}

/* Hand positions to the batcher; the reply waits for the outcome. */
static void
submit(tcp_server *s, conn *c, gw_record *recs, size_t n, const uint8_t *reply, size_t reply_len)
{
	completion *cp = calloc(1, sizeof(*cp));

	if (!cp)
		abort();
	cp->srv = s;
	cp->kind = C_DATA;
	cp->fd = c->fd;
	cp->conn_id = c->id;
	cp->p = c->p;
	memcpy(cp->reply, reply, reply_len > sizeof(cp->reply) ? sizeof(cp->reply) : reply_len);
	cp->reply_len = reply_len;
	c->pending++;
	s->inflight++;
	if (c->pending >= s->cfg.max_pending && c->reading)
	{
		c->reading = false;
		watch(s, c);
	}
	batcher_submit(s->b, recs, (int) n, on_stored, cp);
}

/* Ask the look-up thread whether a device may log in. */
static void
request_login(tcp_server *s, conn *c, const char *imei, const uint8_t *reply, size_t reply_len)
{
	completion *cp = calloc(1, sizeof(*cp));

	if (!cp)
		abort();
	cp->srv = s;
	cp->kind = C_LOGIN;
	cp->fd = c->fd;
	cp->conn_id = c->id;
	cp->p = c->p;
	snprintf(cp->imei, sizeof(cp->imei), "%s", imei);
	memcpy(cp->reply, reply, reply_len > sizeof(cp->reply) ? sizeof(cp->reply) : reply_len);
	cp->reply_len = reply_len;
	c->login_pending = true;
	s->inflight++;
	pthread_mutex_lock(&s->mu);
	*s->lookups_tail = cp;
	s->lookups_tail = &cp->next;
	pthread_cond_signal(&s->lookup_cv);
	pthread_mutex_unlock(&s->mu);
}

/*
 * Cut and handle every whole frame in the connection's buffer.  Returns
 * false if the connection was closed.
 */
static bool
handle_frames(tcp_server *s, conn *c)
{
	size_t		off = 0;
	gw_record	recs[TLT_MAX_RECORDS];

	while (off < c->in_len && !c->login_pending)
	{
		size_t		flen = 0;
		gw_err		e;
		gw_arena	arena;
		const uint8_t *f = c->in + off;
		size_t		avail = c->in_len - off;

		gw_arena_init(&arena, s->arena, ARENA_BYTES);
		e = c->p == P_TELTONIKA ? tlt_frame(f, avail, &flen) : gt06_frame(f, avail, &flen);
		if (e == GW_NEED_MORE)
		{
			if (avail > (size_t) s->cfg.max_frame)
			{
				count_corrupt(c->p, "frame_too_large");
				close_conn(s, c, "frame_too_large");
				return false;
			}
			break;
		}
		if (e != GW_OK)
		{
			count_corrupt(c->p, gw_strerror(e));
			close_conn(s, c, gw_strerror(e));
			return false;
		}
		if (c->p == P_TELTONIKA)
		{
			tlt_result	res;

			e = tlt_decode_tcp(f, flen, c->logged_in ? c->device : NULL, recs, TLT_MAX_RECORDS, &arena, &res);
			if (e != GW_OK)
			{
				count_corrupt(c->p, gw_strerror(e));
				close_conn(s, c, gw_strerror(e));
				return false;
			}
			switch (res.kind)
			{
				case TLT_KIND_IMEI:
					{
						uint8_t		r = 0;

						count_frame(c->p, "login");
						snprintf(c->device, sizeof(c->device), "%s", res.imei);
						r = tlt_imei_reply(true);
						request_login(s, c, res.imei, &r, 1);
						break;
					}
				case TLT_KIND_PING:
					count_frame(c->p, "ping");
					break;
				case TLT_KIND_AVL:
					count_frame(c->p, "data");
					if (!c->logged_in)
					{
						count_corrupt(c->p, "data_before_login");
						close_conn(s, c, "data_before_login");
						return false;
					}
					if (res.n_records == 0)
						send_bytes(s, c, res.reply, res.reply_len);
					else
						submit(s, c, recs, res.n_records, res.reply, res.reply_len);
					break;
				default:
					count_frame(c->p, "other");
					break;
			}
		}
		else
		{
			gt06_result res;

			e = gt06_decode(f, flen, c->logged_in ? c->device : NULL, recs, &arena, &res);
			if (e != GW_OK)
			{
				count_corrupt(c->p, gw_strerror(e));
				close_conn(s, c, gw_strerror(e));
				return false;
			}
			switch (res.kind)
			{
				case GT06_KIND_LOGIN:
					count_frame(c->p, "login");
					snprintf(c->device, sizeof(c->device), "%s", res.imei);
					request_login(s, c, res.imei, res.reply, res.reply_len);
					break;
				case GT06_KIND_STATUS:
					count_frame(c->p, "heartbeat");
					if (c->logged_in && res.reply_len)
						send_bytes(s, c, res.reply, res.reply_len);
					break;
				case GT06_KIND_POSITION:
					count_frame(c->p, "data");
					if (!c->logged_in)
					{
						count_corrupt(c->p, "data_before_login");
						close_conn(s, c, "data_before_login");
						return false;
					}
					if (res.n_records > 0)
						submit(s, c, recs, res.n_records, res.reply, res.reply_len);
					else if (res.reply_len)
						send_bytes(s, c, res.reply, res.reply_len);
					break;
				default:
					count_frame(c->p, "other");
					if (res.reply_len && c->logged_in)
						send_bytes(s, c, res.reply, res.reply_len);
					break;
			}
		}
		off += flen;
	}
	if (off > 0)
	{
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == 0 && c->in_cap > 4096)
	{
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return true;
}

/* Read what the socket has and handle it. */
static void
on_readable(tcp_server *s, conn *c)
{
	for (;;)
	{
		ssize_t		r;

		if (c->in_cap - c->in_len < 4096)
		{
			size_t		cap = c->in_cap ? c->in_cap * 2 : 8192;

			if (cap > (size_t) s->cfg.max_frame * 2 + 8192)
				cap = (size_t) s->cfg.max_frame * 2 + 8192;
			if (cap <= c->in_len)
			{
				count_corrupt(c->p, "frame_too_large");
				close_conn(s, c, "frame_too_large");
				return;
			}
			c->in = realloc(c->in, cap);
			if (!c->in)
				abort();
			c->in_cap = cap;
		}
		r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		{
			if (c->pending == 0 && !c->login_pending)
				close_conn(s, c, "peer closed");
			else
			{
				/* answer in flight: close once it arrives */
				c->reading = false;
				shutdown(c->fd, SHUT_RD);
				watch(s, c);
			}
			return;
		}
		if (r < 0)
			break;
		c->in_len += r;
		c->last_active = mono();
		if (!handle_frames(s, c))
			return;
		if (!c->reading)
			return;
	}
}

/* Accept new connections on a listener. */
static void
on_accept(tcp_server *s, int lfd, proto p)
{
	for (;;)
	{
		int			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC),
					one = 1;
		conn	   *c;
		struct epoll_event ev;
		char		lbl[32];

		if (fd < 0)
			return;
		if (fd >= MAX_FDS || s->nconns >= s->cfg.max_conns || s->stopping)
		{
			count_corrupt(p, "connection_limit");
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c)
			abort();
		c->fd = fd;
		c->id = ++s->next_id ? s->next_id : ++s->next_id;
		c->p = p;
		c->reading = true;
		c->last_active = mono();
		s->conns[fd] = c;
		s->nconns++;
		snprintf(lbl, sizeof(lbl), "protocol=\"%s\"", proto_names[p]);
		metrics_add(m_conns, lbl, 1);
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.fd = fd;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

/* One UDP datagram: decode, submit, reply after commit. */
static void
on_udp(tcp_server *s)
{
	for (;;)
	{
		uint8_t		buf[65536];
		struct sockaddr_storage peer;
		socklen_t	pl = sizeof(peer);
		ssize_t		r = recvfrom(s->udp, buf, sizeof(buf), 0, (struct sockaddr *) &peer, &pl);
		gw_record	recs[TLT_MAX_RECORDS];
		tlt_result	res;
		gw_arena	arena;
		gw_err		e;
		completion *cp;

		if (r < 0)
			return;
		gw_arena_init(&arena, s->arena, ARENA_BYTES);
		e = tlt_decode_udp(buf, (size_t) r, recs, TLT_MAX_RECORDS, &arena, &res);
		if (e != GW_OK)
		{
			count_corrupt(P_TELTONIKA, gw_strerror(e));
			continue;
		}
		metrics_add(m_frames, "protocol=\"teltonika\",kind=\"udp\"", 1);
		dbmetrics_count_call("teltonika", true);
		if (res.kind != TLT_KIND_AVL || res.n_records == 0)
		{
			if (res.reply_len)
				sendto(s->udp, res.reply, res.reply_len, 0, (struct sockaddr *) &peer, pl);
			continue;
		}
		cp = calloc(1, sizeof(*cp));
		if (!cp)
			abort();
		cp->srv = s;
		cp->kind = C_DATA;
		cp->fd = s->udp;
		cp->conn_id = 0;
		cp->p = P_TELTONIKA;
		memcpy(cp->reply, res.reply, res.reply_len > 16 ? 16 : res.reply_len);
		cp->reply_len = res.reply_len;
		memcpy(&cp->peer, &peer, pl);
		cp->peerlen = pl;
		s->inflight++;
		batcher_submit(s->b, recs, (int) res.n_records, on_stored, cp);
	}
}

/* Apply completions handed back by the batcher and look-up threads. */
static void
on_completions(tcp_server *s)
{
	uint64_t	v;
	completion *list;

	(void) !read(s->evfd, &v, 8);
	pthread_mutex_lock(&s->mu);
	list = s->done;
	s->done = NULL;
	s->done_tail = &s->done;
	pthread_mutex_unlock(&s->mu);

	while (list)
	{
		completion *cp = list;
		conn	   *c = NULL;

		list = cp->next;
		s->inflight--;
		if (cp->conn_id == 0)
		{
			/* UDP: acknowledge only durable data */
			if (cp->outcome == GW_STORED || cp->outcome == GW_JOURNALED)
				sendto(s->udp, cp->reply, cp->reply_len, 0, (struct sockaddr *) &cp->peer, cp->peerlen);
			else if (cp->outcome == GW_REFUSED)
				metrics_add(m_refused, "protocol=\"teltonika\"", 1);
			free(cp);
			continue;
		}
		if (cp->fd >= 0 && cp->fd < MAX_FDS)
			c = s->conns[cp->fd];
		if (!c || c->id != cp->conn_id)
		{
			free(cp);			/* the connection is gone: nothing to answer */
			continue;
		}
		if (cp->kind == C_LOGIN)
		{
			char		lbl[96];

			c->login_pending = false;
			snprintf(lbl, sizeof(lbl), "protocol=\"%s\",result=\"%s\"", proto_names[c->p],
					 cp->known ? "accepted" : "refused");
			metrics_add(m_logins, lbl, 1);
			if (cp->known)
			{
				c->logged_in = true;
				send_bytes(s, c, cp->reply, cp->reply_len);
				free(cp);
				if (!handle_frames(s, c))
					continue;
			}
			else
			{
				if (c->p == P_TELTONIKA)
				{
					uint8_t		no = tlt_imei_reply(false);

					send(c->fd, &no, 1, MSG_NOSIGNAL);
				}
				free(cp);
				close_conn(s, c, "unknown device");
				continue;
			}
		}
		else
		{
			c->pending--;
			if (cp->outcome == GW_STORED || cp->outcome == GW_JOURNALED)
				send_bytes(s, c, cp->reply, cp->reply_len);
			else
			{
				/* not durable (or refused): no acknowledgement; make the device resend */
				char		lbl[40];
				const char *why = gw_outcome_name(cp->outcome);

				snprintf(lbl, sizeof(lbl), "protocol=\"%s\"", proto_names[c->p]);
				if (cp->outcome == GW_REFUSED)
					metrics_add(m_refused, lbl, 1);
				free(cp);
				close_conn(s, c, why);
				continue;
			}
			free(cp);
			if (!c->reading && c->pending < s->cfg.max_pending)
			{
				c->reading = true;
				watch(s, c);
				if (!handle_frames(s, c))
					continue;
			}
		}
	}
}

/* The login look-up thread: fleet.device_known() with a small cache. */
static void *
lookup_main(void *arg)
{
	tcp_server *s = arg;
	static const pg_stmt stmts[] = {{"known", "SELECT fleet.device_known($1, $2)", 2}};
	pgconn	   *pg = pgconn_new(s->cfg.dsn, "fleet-gateway-login", stmts, 1);

	for (;;)
	{
		completion *cp;

		pthread_mutex_lock(&s->mu);
		while (!s->lookups && !s->stopping)
			pthread_cond_wait(&s->lookup_cv, &s->mu);
		cp = s->lookups;
		if (cp)
		{
			s->lookups = cp->next;
			if (!s->lookups)
				s->lookups_tail = &s->lookups;
		}
		pthread_mutex_unlock(&s->mu);
		if (!cp)
			break;
		{
			const char *vals[2] = {cp->imei, proto_names[cp->p]};
			PGresult   *res;
			char		st[6],
						msg[200];
			pgc_status	r = pgconn_exec(pg, "known", 2, vals, &res, st, msg, sizeof(msg));

			if (r == PGC_OK)
			{
				cp->known = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
				PQclear(res);
			}
			else
			{
				/* database unreachable: accept, the journal takes the data */
				cp->known = true;
				log_msg(LOG_WARN, "login accepted without look-up", "device=%s sqlstate=%s", cp->imei, st);
			}
		}
		push_done(s, cp);
	}
	pgconn_free(pg);
	return NULL;
}

/* Close connections idle for longer than the limit. */
static void
reap_idle(tcp_server *s)
{
	double		now = mono();

	for (int fd = 0; fd < MAX_FDS; fd++)
	{
		conn	   *c = s->conns[fd];

		if (c && c->pending == 0 && !c->login_pending && now - c->last_active > s->cfg.idle_timeout_s)
			close_conn(s, c, "idle");
	}
}

/* The epoll thread. */
static void *
loop_main(void *arg)
{
	tcp_server *s = arg;
	double		last_reap = mono();
	bool		closed_listeners = false;

	for (;;)
	{
		struct epoll_event evs[256];
		int			n = epoll_wait(s->ep, evs, 256, 500);

		for (int i = 0; i < n; i++)
		{
			int			fd = evs[i].data.fd;
			conn	   *c;

			if (fd == s->evfd)
				on_completions(s);
			else if (fd == s->l_tlt)
				on_accept(s, fd, P_TELTONIKA);
			else if (fd == s->l_gt06)
				on_accept(s, fd, P_GT06);
			else if (fd == s->udp)
				on_udp(s);
			else if ((c = s->conns[fd]) != NULL)
			{
				if (evs[i].events & EPOLLOUT && c->out_len)
				{
					ssize_t		w = send(fd, c->out, c->out_len, MSG_NOSIGNAL);

					if (w > 0)
					{
						memmove(c->out, c->out + w, c->out_len - w);
						c->out_len -= w;
						watch(s, c);
					}
				}
				if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				{
					if (c->reading)
						on_readable(s, c);
					else if (evs[i].events & (EPOLLHUP | EPOLLERR) && c->pending == 0 && !c->login_pending)
						close_conn(s, c, "hangup");
				}
			}
		}
		if (mono() - last_reap > 1.0)
		{
			last_reap = mono();
			reap_idle(s);
		}
		if (s->stopping && !closed_listeners)
		{
			closed_listeners = true;
			if (s->l_tlt >= 0)
				close(s->l_tlt);
			if (s->l_gt06 >= 0)
				close(s->l_gt06);
			if (s->udp >= 0)
				epoll_ctl(s->ep, EPOLL_CTL_DEL, s->udp, NULL);
		}
		if (s->stopping && s->inflight == 0)
			break;
	}
	for (int fd = 0; fd < MAX_FDS; fd++)
		if (s->conns[fd])
			close_conn(s, s->conns[fd], "shutdown");
	return NULL;
}

tcp_server *
tcp_start(const tcp_config *cfg, batcher *b, char *err, size_t errlen)
{
	tcp_server *s = calloc(1, sizeof(*s));
	struct epoll_event ev = {.events = EPOLLIN};

	if (!s)
		return NULL;
	if (!m_conns)
	{
		m_conns = metrics_gauge("fleet_gateway_connections", "Open device connections by protocol.");
		m_frames = metrics_counter("fleet_gateway_frames_total", "Frames received by protocol and kind.");
		m_corrupt = metrics_counter("fleet_gateway_corrupt_frames_total", "Frames refused without acknowledgement, by protocol and reason.");
		m_logins = metrics_counter("fleet_gateway_logins_total", "Device logins by protocol and result.");
		m_refused = metrics_counter("fleet_gateway_refused_total", "Frames whose every fix was refused (unknown device), by protocol.");
	}
	s->cfg = *cfg;
	s->b = b;
	s->l_tlt = s->l_gt06 = s->udp = -1;
	s->conns = calloc(MAX_FDS, sizeof(conn *));
	s->arena = malloc(ARENA_BYTES);
	s->done_tail = &s->done;
	s->lookups_tail = &s->lookups;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->lookup_cv, NULL);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!s->conns || !s->arena || s->ep < 0 || s->evfd < 0)
	{
		snprintf(err, errlen, "out of resources");
		return NULL;
	}
	ev.data.fd = s->evfd;
	epoll_ctl(s->ep, EPOLL_CTL_ADD, s->evfd, &ev);
	if (cfg->teltonika_port >= 0)
	{
		if ((s->l_tlt = listen_on(cfg->bind, cfg->teltonika_port, SOCK_STREAM, &s->ports[0], err, errlen)) < 0)
			return NULL;
		if ((s->udp = listen_on(cfg->bind, s->ports[0], SOCK_DGRAM, &s->ports[2], err, errlen)) < 0)
			return NULL;
		ev.data.fd = s->l_tlt;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->l_tlt, &ev);
		ev.data.fd = s->udp;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->udp, &ev);
	}
	if (cfg->gt06_port >= 0)
	{
		if ((s->l_gt06 = listen_on(cfg->bind, cfg->gt06_port, SOCK_STREAM, &s->ports[1], err, errlen)) < 0)
			return NULL;
		ev.data.fd = s->l_gt06;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->l_gt06, &ev);
	}
	if (pthread_create(&s->lookup_thread, NULL, lookup_main, s) != 0 ||
		pthread_create(&s->thread, NULL, loop_main, s) != 0)
	{
		snprintf(err, errlen, "cannot start threads");
		return NULL;
	}
	return s;
}

int
tcp_port(tcp_server *s, const char *which)
{
	if (strcmp(which, "teltonika") == 0)
		return s->ports[0];
	if (strcmp(which, "gt06") == 0)
		return s->ports[1];
	return s->ports[2];
}

void
tcp_stop(tcp_server *s)
{
	uint64_t	one = 1;

	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->lookup_cv);
	pthread_mutex_unlock(&s->mu);
	(void) !write(s->evfd, &one, 8);
	pthread_join(s->thread, NULL);
	pthread_join(s->lookup_thread, NULL);
	close(s->ep);
	close(s->evfd);
	if (s->udp >= 0)
		close(s->udp);
	free(s->conns);
	free(s->arena);
	free(s);
}
