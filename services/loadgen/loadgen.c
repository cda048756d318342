/*
 * fleet-loadgen - a simulated fleet for fleet-gateway (loopback only).
 *
 * N Teltonika TCP devices (IMEI login, Codec 8 packets, wait for the record
 * count), N OsmAnd / Traccar Client phones (HTTP/1.1 keep-alive GET, one
 * fix per request, wait for 200) and N GT06 trackers (login, 0x12 GPS
 * frames at most one a second: their times are whole seconds; wait for the
 * echo), each driving along "roads": speed and heading
 * change smoothly, with occasional turns.  Realistic trouble:
 *   dead zones   a device loses coverage for a few packets, buffers its
 *                fixes and sends them in one burst when it is back
 *   re-sends     an acknowledged packet is sent again (as when the device
 *                did not see the acknowledgement): the gateway must
 *                acknowledge it again and the database store nothing twice
 *   idle         connections that log in and then stay silent (memory test)
 * Pacing: closed loop (next packet as soon as the previous one is
 * acknowledged) or a total fix rate spread over the devices.  Bounded by
 * --duration and --max-fixes; targets 127.0.0.0/8 only.
 *
 * Every acknowledged fix is written to --ack-file as "device<TAB>fix ms"
 * (once, even if re-sent), and every fix put on the wire to --sent-file
 * (once, when first sent), so a checker (test/checker/fleet-check) can
 * compare with the database: acknowledged => stored, stored => sent.
 * The summary line (logfmt, stdout) gives sent, acknowledged, re-sent
 * counts, the acknowledged fix rate and p50/p99 acknowledgement latency.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BURST 100			/* records per Teltonika packet at most */
#define MAX_DEVICES 60000
#define LAT_SAMPLES (1 << 20)

typedef enum { K_TELTONIKA, K_OSMAND, K_GT06, K_IDLE } kind;
typedef enum { S_CONNECTING, S_LOGIN, S_READY, S_WAIT, S_DEAD } state;
static const char *kind_names[] = {"teltonika", "osmand", "gt06", "idle"};

typedef struct
{
	int64_t		ms;
	double		lat,
				lon,
				speed,
				heading;
} fix;

typedef struct
{
	kind		k;
	state		st;
	int			fd;
	char		id[24];
	/* movement */
	double		lat,
				lon,
				speed,
				heading;
	int64_t		last_ms;
	/* buffered fixes (dead zone) and the packet in flight */
	fix			buf[MAX_BURST];
	int			nbuf;
	int			inflight;		/* fixes in the packet waiting for its answer */
	bool		inflight_resend;
	uint8_t		pkt[64 + MAX_BURST * 64];
	size_t		pkt_len;
	double		sent_at;
	double		next_at;
	int			dead_left;		/* packets still to skip (dead zone) */
	uint8_t		in[512];
	size_t		in_len;
	uint16_t	gt_serial;
	int			reconnects;
} device;

/* settings */
static const char *host = "127.0.0.1";
static int	tlt_port = 5027,
			osm_port = 5055,
			gt_port = 5023;
static int	n_tlt = 10,
			n_osm = 5,
			n_gt = 0,
			n_idle = 0;
static double duration = 10,
			rate = 0;			/* total fixes/s; 0 = closed loop */
static int	per_packet = 5;		/* Teltonika records per packet */
static double dead_pct = 2,
			resend_pct = 2;
static long max_fixes = 10000000;
static const char *ack_path = NULL;
static const char *sent_path = NULL;
static unsigned seed = 1;
static long imei_base = 350000000000000L;
static const char *id_prefix = "lg";
static double time_scale = 1;	/* fix time runs this much faster than the wall clock */
static int64_t sim_origin_ms;	/* fix time at start when time_scale > 1 */
static double sim_t0;

/* results */
static long sent_fixes,
			acked_fixes,
			resent_packets,
			acked_by[3],
			dead_zones,
			failures,
			connects_failed;
static float *lat_ms;
static long nlat;
static FILE *ackf;
static FILE *sentf;
static int	ep;
static volatile sig_atomic_t stop_now;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
urand(void)
{
	return rand() / (RAND_MAX + 1.0);
}

static double
nrand(void)
{
	return sqrt(-2 * log(urand() + 1e-12)) * cos(2 * M_PI * urand());
}

/* ---------------------------------------------------------- movement */

/* Advance a device to a new fix time along its road. */
static fix
next_fix(device *d)
{
	/*
	 * A second old: never in the gateway's future.  Fast-forward
	 * (--time-scale) replays the past: fix time starts duration * scale
	 * before now and reaches now at the end.
	 */
	int64_t		ms = time_scale > 1 ? sim_origin_ms + (int64_t) ((now_s() - sim_t0) * time_scale * 1000)
		: wall_ms() - 1000;
	double		dt;
	fix			f;

	if (d->k == K_GT06)
	{
		/* GT06 carries whole seconds */
		ms -= ms % 1000;
		if (ms <= d->last_ms)
			ms = d->last_ms + 1000;
	}
	else if (ms <= d->last_ms)
		ms = d->last_ms + 1;
	dt = d->last_ms ? (ms - d->last_ms) / 1000.0 : 1.0;
	d->last_ms = ms;
	d->speed += nrand() * 3.0 * fmin(dt, 5.0);
	if (urand() < 0.01)
		d->speed *= 0.3;		/* traffic light */
	d->speed = fmin(fmax(d->speed, 0), 110);
	if (urand() < 0.02)
		d->heading += urand() < 0.5 ? 90 : -90;	/* a turn at a junction */
	else
		d->heading += nrand() * 2.0;
	d->heading = fmod(d->heading + 360.0, 360.0);
	d->lat += d->speed / 3.6 * dt * cos(d->heading * M_PI / 180) / 111320.0;
	d->lon += d->speed / 3.6 * dt * sin(d->heading * M_PI / 180) / (111320.0 * cos(d->lat * M_PI / 180));
	f.ms = ms;
	f.lat = d->lat;
	f.lon = d->lon;
	f.speed = d->speed;
	f.heading = d->heading;
	return f;
}

/* ---------------------------------------------------------- encoders */

static uint16_t
crc16_ibm(const uint8_t *p, size_t n)
{
	uint16_t	crc = 0;

	while (n--)
	{
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc & 1) ? (crc >> 1) ^ 0xA001 : crc >> 1;
	}
	return crc;
}

static uint16_t
crc16_x25(const uint8_t *p, size_t n)
{
	uint16_t	crc = 0xFFFF;

	while (n--)
	{
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x8408 : crc >> 1;
	}
	return ~crc;
}

static uint8_t *
put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		*p++ = (uint8_t) (v >> (8 * i));
	return p;
}

/* A Codec 8 packet with the device's buffered fixes. */
static size_t
tlt_packet(const fix *fx, int n, uint8_t *out)
{
	uint8_t    *p = out + 8,
			   *data = p;
	size_t		dl;

	*p++ = 0x08;
	*p++ = (uint8_t) n;
	for (int i = 0; i < n; i++)
	{
		p = put_be(p, (uint64_t) fx[i].ms, 8);
		*p++ = 0;				/* priority */
		p = put_be(p, (uint32_t) (int32_t) lround(fx[i].lon * 1e7), 4);
		p = put_be(p, (uint32_t) (int32_t) lround(fx[i].lat * 1e7), 4);
		p = put_be(p, 34, 2);	/* altitude */
		p = put_be(p, (uint16_t) lround(fx[i].heading) % 360, 2);
		*p++ = 9;				/* satellites */
		p = put_be(p, (uint16_t) lround(fx[i].speed), 2);
		*p++ = 239;				/* event IO: ignition */
		*p++ = 1;				/* total IO */
		*p++ = 1;				/* one 1-byte IO */
		*p++ = 239;
		*p++ = 1;
		*p++ = 0;
		*p++ = 0;
		*p++ = 0;
	}
	*p++ = (uint8_t) n;
	dl = p - data;
	put_be(out, 0, 4);
	put_be(out + 4, dl, 4);
	p = put_be(p, crc16_ibm(data, dl), 4);
	return p - out;
}

/* A GT06 frame: proto, info, serial, CRC-16/X-25. */
static size_t
gt06_frame(uint8_t proto, const uint8_t *info, size_t ilen, uint16_t serial, uint8_t *out)
{
	uint8_t    *p = out;
	uint16_t	crc;

	*p++ = 0x78;
	*p++ = 0x78;
	*p++ = (uint8_t) (1 + ilen + 2 + 2);
	*p++ = proto;
	memcpy(p, info, ilen);
	p += ilen;
	p = put_be(p, serial, 2);
	crc = crc16_x25(out + 2, p - (out + 2));
	p = put_be(p, crc, 2);
	*p++ = 0x0D;
	*p++ = 0x0A;
	return p - out;
}

static size_t
gt06_login(device *d, uint8_t *out)
{
	uint8_t		bcd[8];
	char		digits[17];

	snprintf(digits, sizeof(digits), "0%s", d->id);
	for (int i = 0; i < 8; i++)
		bcd[i] = (uint8_t) (((digits[2 * i] - '0') << 4) | (digits[2 * i + 1] - '0'));
	return gt06_frame(0x01, bcd, 8, ++d->gt_serial, out);
}

static size_t
gt06_position(device *d, const fix *f, uint8_t *out)
{
	uint8_t		info[26],
			   *p = info;
	time_t		s = f->ms / 1000;
	struct tm	tm;
	uint16_t	flags = ((uint16_t) lround(f->heading) % 360) | (1 << 12);

	gmtime_r(&s, &tm);
	*p++ = tm.tm_year % 100;
	*p++ = tm.tm_mon + 1;
	*p++ = tm.tm_mday;
	*p++ = tm.tm_hour;
	*p++ = tm.tm_min;
	*p++ = tm.tm_sec;
	*p++ = 0xC9;				/* gps info length 12, 9 satellites */
	p = put_be(p, (uint32_t) lround(fabs(f->lat) * 1800000.0), 4);
	p = put_be(p, (uint32_t) lround(fabs(f->lon) * 1800000.0), 4);
	*p++ = (uint8_t) lround(f->speed);
	if (f->lat >= 0)
		flags |= 1 << 10;
	if (f->lon < 0)
		flags |= 1 << 11;
	p = put_be(p, flags, 2);
	p = put_be(p, 262, 2);		/* MCC */
	*p++ = 1;					/* MNC */
	p = put_be(p, 1234, 2);		/* LAC */
	p = put_be(p, 5678, 3);		/* cell id */
	return gt06_frame(0x12, info, p - info, ++d->gt_serial, out);
}

/* ---------------------------------------------------------- sockets */

static void
ep_set(device *d, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = d};

	if (epoll_ctl(ep, EPOLL_CTL_MOD, d->fd, &ev) < 0)
		epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &ev);
}

static bool
dial(device *d)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int			one = 1;
	int			port = d->k == K_OSMAND ? osm_port : d->k == K_GT06 ? gt_port : tlt_port;

	sa.sin_port = htons(port);
	inet_pton(AF_INET, host, &sa.sin_addr);
	d->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0)
	{
		connects_failed++;
		d->st = S_DEAD;
		return false;
	}
	setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(d->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
	{
		close(d->fd);
		d->fd = -1;
		connects_failed++;
		d->st = S_DEAD;
		return false;
	}
	d->st = S_CONNECTING;
	d->in_len = 0;
	ep_set(d, EPOLLOUT | EPOLLIN);
	return true;
}

/* The connection failed or was closed by the gateway: forget the packet in
 * flight (not acknowledged: its fixes go back to the buffer) and redial. */
static void
reconnect(device *d)
{
	if (d->fd >= 0)
	{
		epoll_ctl(ep, EPOLL_CTL_DEL, d->fd, NULL);
		close(d->fd);
		d->fd = -1;
	}
	failures++;
	d->inflight = 0;
	d->inflight_resend = false;
	if (++d->reconnects > 50)
	{
		d->st = S_DEAD;
		return;
	}
	dial(d);
}

static bool
send_all(device *d, const uint8_t *p, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = send(d->fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
		{
			/* small frames on a fresh socket: a full buffer means trouble */
			struct timespec ts = {0, 1000000};

			nanosleep(&ts, NULL);
			continue;
		}
		if (w <= 0)
			return false;
		p += w;
		n -= w;
	}
	return true;
}

/* Send the device's next packet (its buffered fixes, or a re-send). */
static void
send_packet(device *d, bool resend)
{
	if (!resend)
	{
		int			n = d->nbuf;

		if (d->k != K_TELTONIKA)
			n = 1;				/* OsmAnd and GT06: one fix per request / frame */
		if (d->k == K_OSMAND)
		{
			const fix  *f = &d->buf[0];

			d->pkt_len = (size_t) snprintf((char *) d->pkt, sizeof(d->pkt),
										   "GET /?id=%s&lat=%.7f&lon=%.7f&timestamp=%lld&speed=%.2f&bearing=%.1f&altitude=34 HTTP/1.1\r\n"
										   "Host: %s\r\nUser-Agent: fleet-loadgen\r\n\r\n",
										   d->id, f->lat, f->lon, (long long) f->ms, f->speed / 1.852, f->heading, host);
		}
		else if (d->k == K_GT06)
			d->pkt_len = gt06_position(d, &d->buf[0], d->pkt);
		else
			d->pkt_len = tlt_packet(d->buf, n, d->pkt);
		d->inflight = n;
		sent_fixes += n;
		/* logged before the bytes leave, and flushed: a fix the gateway may
		 * have seen is always in the sent log, even if loadgen is killed */
		if (sentf)
		{
			for (int i = 0; i < n; i++)
				fprintf(sentf, "%s\t%lld\n", d->id, (long long) d->buf[i].ms);
			fflush(sentf);
		}
	}
	else
		resent_packets++;
	d->inflight_resend = resend;
	d->sent_at = now_s();
	d->st = S_WAIT;
	if (!send_all(d, d->pkt, d->pkt_len))
		reconnect(d);
}

/* The packet in flight is acknowledged. */
static void
acked(device *d)
{
	double		lat = (now_s() - d->sent_at) * 1000.0;

	if (nlat < LAT_SAMPLES)
		lat_ms[nlat++] = (float) lat;
	if (!d->inflight_resend)
	{
		for (int i = 0; i < d->inflight; i++)
			if (ackf)
				fprintf(ackf, "%s\t%lld\n", d->id, (long long) d->buf[i].ms);
		acked_fixes += d->inflight;
		acked_by[d->k] += d->inflight;
		memmove(d->buf, d->buf + d->inflight, (d->nbuf - d->inflight) * sizeof(fix));
		d->nbuf -= d->inflight;
		/* now and then the device did not see this acknowledgement: it sends the packet again */
		if (urand() * 100 < resend_pct)
		{
			send_packet(d, true);
			return;
		}
	}
	d->inflight = 0;
	d->inflight_resend = false;
	d->st = S_READY;
	d->reconnects = 0;
}

/* Parse what arrived for a device. */
static void
on_input(device *d)
{
	for (;;)
	{
		ssize_t		r = recv(d->fd, d->in + d->in_len, sizeof(d->in) - d->in_len - 1, 0);

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
		{
			reconnect(d);
			return;
		}
		if (r < 0)
			break;
		d->in_len += r;
		if (d->in_len >= sizeof(d->in) - 1)
		{
			reconnect(d);
			return;
		}
	}
	while (d->in_len > 0)
	{
		size_t		used = 0;

		if (d->k == K_TELTONIKA || d->k == K_IDLE)
		{
			if (d->st == S_LOGIN)
			{
				if (d->in[0] != 0x01)
				{
					reconnect(d);	/* refused */
					return;
				}
				used = 1;
				d->st = S_READY;
			}
			else if (d->st == S_WAIT && d->in_len >= 4)
			{
				uint32_t	n = ((uint32_t) d->in[0] << 24) | (d->in[1] << 16) | (d->in[2] << 8) | d->in[3];

				used = 4;
				if ((int) n != d->inflight)
				{
					reconnect(d);
					return;
				}
				acked(d);
			}
			else
				break;
		}
		else if (d->k == K_GT06)
		{
			if (d->in_len < 10)
				break;
			used = 10;
			if (d->st == S_LOGIN)
				d->st = S_READY;
			else if (d->st == S_WAIT)
				acked(d);
		}
		else
		{
			/* HTTP/1.1 response: status line, headers, Content-Length body */
			char	   *end,
					   *cl;
			int			status;
			size_t		hlen,
						blen = 0;

			d->in[d->in_len] = '\0';
			end = strstr((char *) d->in, "\r\n\r\n");
			if (!end)
				break;
			hlen = end + 4 - (char *) d->in;
			cl = strcasestr((char *) d->in, "Content-Length:");
			if (cl && cl < end)
				blen = strtoul(cl + 15, NULL, 10);
			if (d->in_len < hlen + blen)
				break;
			used = hlen + blen;
			status = atoi((char *) d->in + 9);
			if (status == 200 && d->st == S_WAIT)
				acked(d);
			else if (d->st == S_WAIT)
			{
				d->inflight = 0;	/* not stored: retried later */
				d->st = S_READY;
				failures++;
			}
		}
		memmove(d->in, d->in + used, d->in_len - used);
		d->in_len -= used;
	}
}

static void
on_connected(device *d)
{
	int			err = 0;
	socklen_t	el = sizeof(err);
	uint8_t		login[32];
	size_t		n;

	getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err)
	{
		connects_failed++;
		reconnect(d);
		return;
	}
	ep_set(d, EPOLLIN | EPOLLRDHUP);
	if (d->k == K_OSMAND)
	{
		d->st = S_READY;
		return;
	}
	if (d->k == K_GT06)
		n = gt06_login(d, login);
	else
	{
		size_t		l = strlen(d->id);

		login[0] = 0;
		login[1] = (uint8_t) l;
		memcpy(login + 2, d->id, l);
		n = l + 2;
	}
	d->st = S_LOGIN;
	if (!send_all(d, login, n))
		reconnect(d);
}

/* ---------------------------------------------------------- main */

static int
cmp_float(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return (x > y) - (x < y);
}

static void
on_signal(int sig)
{
	(void) sig;
	stop_now = 1;
}

static void
usage(void)
{
	printf("fleet-loadgen: a simulated fleet for fleet-gateway (loopback only)\n\n"
		   "  --host A            gateway address (127.0.0.0/8 only)      [127.0.0.1]\n"
		   "  --teltonika-port P  --osmand-port P  --gt06-port P          [5027 5055 5023]\n"
		   "  --teltonika N       Teltonika TCP devices                   [10]\n"
		   "  --osmand N          OsmAnd HTTP phones                      [5]\n"
		   "  --gt06 N            GT06 trackers                           [0]\n"
		   "  --idle N            Teltonika connections that only log in   [0]\n"
		   "  --duration S        seconds to run (at most 3600)           [10]\n"
		   "  --rate R            total fixes/s over all devices; 0 = each device sends\n"
		   "                      its next packet when the previous one is acknowledged [0]\n"
		   "  --per-packet N      Teltonika records per packet (1..%d)   [5]\n"
		   "  --dead-zone-pct X   chance per packet of losing coverage for 3..10 packets [2]\n"
		   "  --resend-pct X      chance an acknowledged packet is sent again [2]\n"
		   "  --max-fixes N       stop generating after N fixes           [10000000]\n"
		   "  --ack-file PATH     write \"device<TAB>fix ms\" per acknowledged fix\n"
		   "  --sent-file PATH    write \"device<TAB>fix ms\" per fix sent (first send only)\n"
		   "  --imei-base N       first IMEI (Teltonika, GT06, idle: consecutive) [350000000000000]\n"
		   "  --id-prefix S       OsmAnd ids are S-osm-<n>                 [lg]\n"
		   "  --seed N            random seed                             [1]\n"
		   "  --time-scale X      fix time runs X times faster, replaying the last\n"
		   "                      duration*X seconds (fast-forward; 1..1000)   [1]\n", MAX_BURST);
}

int
main(int argc, char **argv)
{
	device	   *devs;
	int			ndev;
	double		t0,
				end,
				slot;
	struct in_addr a;
	struct rlimit rl;

	for (int i = 1; i < argc; i++)
	{
		const char *f = argv[i],
				   *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0)
		{
			usage();
			return 0;
		}
		if (!v)
		{
			fprintf(stderr, "missing value for %s\n", f);
			return 2;
		}
		i++;
		if (strcmp(f, "--host") == 0) host = v;
		else if (strcmp(f, "--teltonika-port") == 0) tlt_port = atoi(v);
		else if (strcmp(f, "--osmand-port") == 0) osm_port = atoi(v);
		else if (strcmp(f, "--gt06-port") == 0) gt_port = atoi(v);
		else if (strcmp(f, "--teltonika") == 0) n_tlt = atoi(v);
		else if (strcmp(f, "--osmand") == 0) n_osm = atoi(v);
		else if (strcmp(f, "--gt06") == 0) n_gt = atoi(v);
		else if (strcmp(f, "--idle") == 0) n_idle = atoi(v);
		else if (strcmp(f, "--duration") == 0) duration = atof(v);
		else if (strcmp(f, "--rate") == 0) rate = atof(v);
		else if (strcmp(f, "--per-packet") == 0) per_packet = atoi(v);
		else if (strcmp(f, "--dead-zone-pct") == 0) dead_pct = atof(v);
		else if (strcmp(f, "--resend-pct") == 0) resend_pct = atof(v);
		else if (strcmp(f, "--max-fixes") == 0) max_fixes = atol(v);
		else if (strcmp(f, "--ack-file") == 0) ack_path = v;
		else if (strcmp(f, "--sent-file") == 0) sent_path = v;
		else if (strcmp(f, "--imei-base") == 0) imei_base = atol(v);
		else if (strcmp(f, "--id-prefix") == 0) id_prefix = v;
		else if (strcmp(f, "--seed") == 0) seed = (unsigned) atol(v);
		else if (strcmp(f, "--time-scale") == 0) time_scale = atof(v);
		else
		{
			fprintf(stderr, "unknown option %s (see --help)\n", f);
			return 2;
		}
	}
	if (inet_pton(AF_INET, host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
	{
		fprintf(stderr, "fleet-loadgen targets loopback only (127.0.0.0/8), not %s\n", host);
		return 2;
	}
	ndev = n_tlt + n_osm + n_gt + n_idle;
	if (n_tlt < 0 || n_osm < 0 || n_gt < 0 || n_idle < 0 || ndev > MAX_DEVICES || ndev == 0 ||
		duration <= 0 || duration > 3600 || per_packet < 1 || per_packet > MAX_BURST ||
		imei_base < 100000000000000L || imei_base + ndev > 999999999999999L ||
		!(time_scale >= 1 && time_scale <= 1000))
	{
		fprintf(stderr, "bad counts or limits (devices 1..%d, duration 0..3600 s, per-packet 1..%d)\n",
				MAX_DEVICES, MAX_BURST);
		return 2;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t) ndev + 64)
	{
		rl.rlim_cur = rl.rlim_max < (rlim_t) ndev + 64 ? rl.rlim_max : (rlim_t) ndev + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srand(seed);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (ack_path && !(ackf = fopen(ack_path, "w")))
	{
		perror(ack_path);
		return 1;
	}
	if (sent_path && !(sentf = fopen(sent_path, "w")))
	{
		perror(sent_path);
		return 1;
	}
	lat_ms = malloc(sizeof(float) * LAT_SAMPLES);
	devs = calloc(ndev, sizeof(device));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!lat_ms || !devs || ep < 0)
		return 1;

	/* devices start spread over a city's roads */
	t0 = now_s();
	sim_t0 = t0;
	sim_origin_ms = wall_ms() - 1000 - (int64_t) (duration * time_scale * 1000);
	slot = rate > 0 ? (n_tlt * per_packet + n_osm + n_gt) / rate : 0;	/* seconds between a device's packets */
	for (int i = 0; i < ndev; i++)
	{
		device	   *d = &devs[i];

		d->k = i < n_tlt ? K_TELTONIKA : i < n_tlt + n_osm ? K_OSMAND : i < n_tlt + n_osm + n_gt ? K_GT06 : K_IDLE;
		if (d->k == K_OSMAND)
			snprintf(d->id, sizeof(d->id), "%s-osm-%d", id_prefix, i - n_tlt);
		else
			snprintf(d->id, sizeof(d->id), "%ld", imei_base + i);
		d->lat = 52.52 + nrand() * 0.08;
		d->lon = 13.40 + nrand() * 0.12;
		d->heading = urand() * 360;
		d->speed = urand() * 60;
		d->fd = -1;
		d->next_at = t0 + (slot > 0 ? urand() * slot : 0);
		dial(d);
	}
	end = t0 + duration;

	while (!stop_now)
	{
		struct epoll_event evs[512];
		double		now = now_s();
		int			n = epoll_wait(ep, evs, 512, 2);
		bool		generating = now < end && sent_fixes < max_fixes;
		bool		busy = false;

		for (int i = 0; i < n; i++)
		{
			device	   *d = evs[i].data.ptr;

			if (d->st == S_CONNECTING && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				on_connected(d);
			else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				on_input(d);
		}
		now = now_s();
		for (int i = 0; i < ndev; i++)
		{
			device	   *d = &devs[i];

			if (d->st == S_WAIT || d->st == S_CONNECTING || d->st == S_LOGIN)
				busy = busy || d->k != K_IDLE;
			if (d->k == K_IDLE || d->st != S_READY)
				continue;
			if (generating && now >= d->next_at)
			{
				int			want = d->k == K_TELTONIKA ? per_packet : 1;

				/* GT06 fixes have whole-second times: at most one a second */
				d->next_at = slot > 0 ? d->next_at + (d->k == K_GT06 && slot < 1 ? 1 : slot)
					: now + (d->k == K_GT06 ? 1 : 0);
				if (d->next_at < now - 1)
					d->next_at = now;	/* fell behind: do not catch up in a burst */
				for (int k = 0; k < want && d->nbuf < MAX_BURST; k++)
					d->buf[d->nbuf++] = next_fix(d);
				if (d->dead_left == 0 && urand() * 100 < dead_pct)
				{
					d->dead_left = 3 + rand() % 8;
					dead_zones++;
				}
				if (d->dead_left > 0 && d->nbuf + want <= MAX_BURST)
				{
					d->dead_left--;
					continue;	/* no coverage: keep buffering */
				}
				d->dead_left = 0;
			}
			/* send what is buffered (after the run ends too, to flush) */
			if (d->nbuf > 0 && (generating ? d->dead_left == 0 && now >= d->next_at - (slot > 0 ? slot : 0) : true))
				send_packet(d, false);
		}
		if (!generating)
		{
			bool		pending = busy;

			for (int i = 0; i < ndev && !pending; i++)
				pending = devs[i].k != K_IDLE && devs[i].st != S_DEAD && devs[i].nbuf > 0;
			if (!pending || now > end + 30)
				break;
		}
	}

	{
		double		el = now_s() - t0;
		double		p50 = 0,
					p99 = 0;
		long		unacked = 0;
		int			open_conns = 0;

		for (int i = 0; i < ndev; i++)
		{
			unacked += devs[i].nbuf;
			open_conns += devs[i].fd >= 0 && devs[i].st != S_CONNECTING;
		}
		if (nlat > 0)
		{
			qsort(lat_ms, nlat, sizeof(float), cmp_float);
			p50 = lat_ms[nlat / 2];
			p99 = lat_ms[(long) (nlat * 0.99) < nlat ? (long) (nlat * 0.99) : nlat - 1];
		}
		if (ackf)
			fclose(ackf);
		if (sentf)
			fclose(sentf);
		printf("devices=%d open=%d sent_fixes=%ld acked_fixes=%ld acked_teltonika=%ld acked_osmand=%ld acked_gt06=%ld "
			   "resent_packets=%ld dead_zones=%ld unacked=%ld failures=%ld connect_failures=%ld elapsed_s=%.2f "
			   "acked_per_s=%.1f ack_p50_ms=%.2f ack_p99_ms=%.2f\n",
			   ndev, open_conns, sent_fixes, acked_fixes, acked_by[K_TELTONIKA], acked_by[K_OSMAND], acked_by[K_GT06],
			   resent_packets, dead_zones, unacked, failures, connects_failed, el,
			   acked_fixes / (el > 0 ? el : 1), p50, p99);
		(void) kind_names;
	}
	return 0;
}
