/*
 * tcp.h - the gateway's socket front: Teltonika over TCP and UDP, GT06 over
 * TCP, on one epoll thread.
 *
 * Frames are cut and decoded by teltonika.c / gt06.c; positions go to the
 * batcher and the device's acknowledgement (Teltonika record count, GT06
 * reply) is written only when the batcher says the data is stored or
 * journaled.  A corrupt frame is counted by reason, never acknowledged, and
 * its connection is closed (a TCP stream cannot be re-synchronised).
 * Logins (Teltonika IMEI, GT06 login) are checked with fleet.device_known()
 * on a lookup thread: unknown devices get Teltonika's 00 or no GT06 reply.
 * While the database is unreachable, logins are accepted so that the
 * journal can take the data; unknown devices' rows are rejected on drain.
 */
#ifndef FLEET_TCP_H
#define FLEET_TCP_H

#include "batcher.h"

typedef struct
{
	const char *bind;
	int			teltonika_port;	/* TCP and UDP; -1 = off, 0 = any free port */
	int			gt06_port;
	int			max_conns;
	int			idle_timeout_s;
	int			max_frame;		/* bytes buffered before a frame must be complete */
	int			max_pending;	/* frames in flight per connection before reading pauses */
	const char *dsn;			/* for login look-ups */
} tcp_config;

typedef struct tcp_server tcp_server;

tcp_server *tcp_start(const tcp_config *cfg, batcher *b, char *err, size_t errlen);
int tcp_port(tcp_server *s, const char *which);	/* "teltonika", "gt06", "udp" */
/* Stop accepting, wait for every frame in flight to be answered, close all. */
void tcp_stop(tcp_server *s);

#endif
