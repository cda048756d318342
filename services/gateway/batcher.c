/*
 * batcher.c - the gateway's database writer: batches, journal, outcomes.
 *
 * Lanes (writers) each own a thread and a database connection; a
 * submission goes to the lane of its device.  Connections and HTTP
 * handlers submit the fixes of a frame; a lane gathers up to
 * max_batch fixes (waiting at most max_wait_ms for company), calls
 * fleet.ingest_positions once per batch (one transaction), maps every row's
 * status back to its submission and answers it.  If the database is
 * unreachable the batch is appended to the journal and answered once the
 * fsync is done; the journal is drained ahead of new work when the
 * database is back (by lane 0, while every lane journals new work).
 * An error that is not an outage is never journaled: the batch is split
 * to find the fixes that fail alone (batcher.h says which errors are
 * outages and what becomes of the refused fixes).
 */
#include "batcher.h"
#include "../common/journal.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/pgconn.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A fix as the batcher keeps it: like gw_record, owning its attrs. */
typedef struct
{
	char		device[GW_DEVICE_MAX + 1];
	int64_t		time_ms;
	double		lat,
				lon,
				speed_kmh,
				heading,
				altitude,
				accuracy;
	int64_t		seq;
	char	   *attrs;			/* JSON object text or NULL */
} gw_fix;

typedef struct submission
{
	gw_fix	   *fixes;
	int			n;
	gw_done_fn	cb;
	void	   *ctx;
	gw_counts	counts;
	struct submission *next;
} submission;

#define MAX_LANES 16

/*
 * A lane: a queue, a thread and a database connection.  A submission goes
 * to the lane of its (first) device, so one device's fixes are written in
 * order by one lane and two lanes never write the same device's rows
 * (no lock waits or deadlocks between them).
 */
typedef struct lane
{
	struct batcher *b;
	int			id;
	pthread_t	thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	submission *head,
			  **tail;
	int			queued_fixes;
	bool		stopping;
	bool		db_ready;
	pgconn	   *pg;
} lane;

struct batcher
{
	batcher_config cfg;
	lane		lanes[MAX_LANES];
	int			nlanes;
	journal    *jn;
	char		dead_path[4096];	/* dead-letters.jsonl in the journal directory */
	/* the drain's state (lane 0 writes, readiness reads under smu) */
	pthread_mutex_t smu;
	double		blocked_since;	/* first failed drain since the last progress, 0: none */
	double		refused_since;	/* first pass that met fixes refused by the database */
	int			refused_passes;
	double		next_drain;		/* backoff while the head is refused */
};

/* Result of storing a batch, split as far as needed. */
typedef enum
{
	SPLIT_DONE,					/* every fix has a status (stored, rejected or refused 'E') */
	SPLIT_OUTAGE,				/* unreachable or an outage error: stop, journal or retry */
	SPLIT_UNKNOWN				/* connection lost around a commit */
} split_result;

#define ERR_LEN 200				/* the database's message kept for a refused fix */

static metric_family *m_received, *m_rows, *m_rejected, *m_batch, *m_commit,
		   *m_journal_depth, *m_journal_appends, *m_db_errors, *m_outcomes, *m_reconnects,
		   *m_dead_letters, *m_stuck, *m_splits;

static const pg_stmt statements[] = {
	{"ingest",
		"SELECT idx, status, reason FROM fleet.ingest_positions($1::text[], $2::timestamptz[],"
		" $3::float8[], $4::float8[], $5::real[], $6::real[], $7::real[], $8::real[], $9::bigint[], $10::jsonb[])",
	10},
};

const char *
gw_outcome_name(gw_outcome o)
{
	static const char *names[] = {"stored", "journaled", "unknown", "refused", "failed", "invalid"};

	return names[o];
}

/* ---------- growing string buffer for array literals ---------- */

typedef struct
{
	char	   *s;
	size_t		len,
				cap;
} sbuf;

/* Append n bytes. */
static void
sb_put(sbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			abort();
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sb_str(sbuf *b, const char *p)
{
	sb_put(b, p, strlen(p));
}

/* Append a quoted array element (escaping \ and "), or NULL. */
static void
sb_elem_text(sbuf *b, const char *v)
{
	if (!v)
	{
		sb_str(b, "NULL");
		return;
	}
	sb_put(b, "\"", 1);
	for (const char *p = v; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			sb_put(b, "\\", 1);
		sb_put(b, p, 1);
	}
	sb_put(b, "\"", 1);
}

/* Append a number element, NULL for NAN. */
static void
sb_elem_num(sbuf *b, double v)
{
	char		tmp[40];

	if (isnan(v) || isinf(v))
		sb_str(b, "NULL");
	else
	{
		snprintf(tmp, sizeof(tmp), "%.17g", v);
		sb_str(b, tmp);
	}
}

/* ---------- journal records: one fix each ---------- */

/* Serialize a fix; returns a malloc'd buffer and its length. */
static unsigned char *
fix_pack(const gw_fix *f, size_t *len)
{
	size_t		dl = strlen(f->device),
				al = f->attrs ? strlen(f->attrs) : 0;
	size_t		n = 1 + 1 + dl + 8 + 6 * 8 + 8 + 4 + al;
	unsigned char *buf = malloc(n),
			   *p = buf;
	uint32_t	al32 = f->attrs ? (uint32_t) al : UINT32_MAX;
	double		d[6] = {f->lat, f->lon, f->speed_kmh, f->heading, f->altitude, f->accuracy};

	if (!buf)
		abort();
	*p++ = 1;
	*p++ = (unsigned char) dl;
	memcpy(p, f->device, dl), p += dl;
	memcpy(p, &f->time_ms, 8), p += 8;
	memcpy(p, d, sizeof(d)), p += sizeof(d);
	memcpy(p, &f->seq, 8), p += 8;
	memcpy(p, &al32, 4), p += 4;
	if (al)
		memcpy(p, f->attrs, al), p += al;
	*len = p - buf;
	return buf;
}

/* Deserialize a fix; false if the record is malformed. */
static bool
fix_unpack(const unsigned char *p, size_t len, gw_fix *f)
{
	size_t		dl;
	uint32_t	al;
	double		d[6];
	const unsigned char *end = p + len;

	memset(f, 0, sizeof(*f));
	if (len < 2 || p[0] != 1)
		return false;
	dl = p[1];
	p += 2;
	if (dl > GW_DEVICE_MAX || (size_t) (end - p) < dl + 8 + sizeof(d) + 8 + 4)
		return false;
	memcpy(f->device, p, dl), p += dl;
	f->device[dl] = '\0';
	memcpy(&f->time_ms, p, 8), p += 8;
	memcpy(d, p, sizeof(d)), p += sizeof(d);
	memcpy(&f->seq, p, 8), p += 8;
	memcpy(&al, p, 4), p += 4;
	f->lat = d[0], f->lon = d[1], f->speed_kmh = d[2];
	f->heading = d[3], f->altitude = d[4], f->accuracy = d[5];
	if (al != UINT32_MAX)
	{
		if ((size_t) (end - p) < al)
			return false;
		f->attrs = strndup((const char *) p, al);
	}
	return true;
}

/* ---------- the ingest call ---------- */

/* Format ms since the epoch as a timestamptz literal. */
static void
fmt_time(int64_t ms, char *out, size_t len)
{
	time_t		s = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int			frac = (int) (ms - (int64_t) s * 1000);
	struct tm	tm;

	gmtime_r(&s, &tm);
	snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* Monotonic seconds. */
static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Call fleet.ingest_positions for fixes[0..n).  On PGC_OK, status[i] is
 * 'a'ccepted, 'd'uplicate, 'c'onflict or 'r'ejected and reasons[i] the
 * rejection reason (static storage, truncated).
 */
static pgc_status
ingest(lane *l, gw_fix *fixes, int n, char *status, char (*reasons)[64], char *sqlstate,
	   char *msg, size_t msglen)
{
	sbuf		a[10] = {{0}};
	const char *vals[10];
	PGresult   *res;
	pgc_status	st;
	double		t0 = mono();

	for (int k = 0; k < 10; k++)
		sb_str(&a[k], "{");
	for (int i = 0; i < n; i++)
	{
		char		ts[80];
		const gw_fix *f = &fixes[i];

		if (i > 0)
			for (int k = 0; k < 10; k++)
				sb_str(&a[k], ",");
		sb_elem_text(&a[0], f->device);
		fmt_time(f->time_ms, ts, sizeof(ts));
		sb_elem_text(&a[1], ts);
		sb_elem_num(&a[2], f->lat);
		sb_elem_num(&a[3], f->lon);
		sb_elem_num(&a[4], f->speed_kmh);
		sb_elem_num(&a[5], f->heading);
		sb_elem_num(&a[6], f->altitude);
		sb_elem_num(&a[7], f->accuracy);
		if (f->seq >= 0)
		{
			char		tmp[24];

			snprintf(tmp, sizeof(tmp), "%lld", (long long) f->seq);
			sb_str(&a[8], tmp);
		}
		else
			sb_str(&a[8], "NULL");
		sb_elem_text(&a[9], f->attrs);
	}
	for (int k = 0; k < 10; k++)
	{
		sb_str(&a[k], "}");
		vals[k] = a[k].s;
	}
	st = pgconn_exec(l->pg, "ingest", 10, vals, &res, sqlstate, msg, msglen);
	for (int k = 0; k < 10; k++)
		free(a[k].s);
	if (st == PGC_OK)
	{
		int			rows = PQntuples(res);

		metrics_observe(m_commit, NULL, mono() - t0);
		metrics_observe(m_batch, NULL, n);
		for (int i = 0; i < n; i++)
			status[i] = 'r', snprintf(reasons[i], 64, "no_status");
		for (int r = 0; r < rows; r++)
		{
			int			idx = atoi(PQgetvalue(res, r, 0)) - 1;
			const char *s = PQgetvalue(res, r, 1);

			if (idx < 0 || idx >= n)
				continue;
			status[idx] = s[0];
			snprintf(reasons[idx], 64, "%s", PQgetisnull(res, r, 2) ? "" : PQgetvalue(res, r, 2));
		}
		PQclear(res);
	}
	else if (st != PGC_UNAVAILABLE)
	{
		char		lbl[32];

		snprintf(lbl, sizeof(lbl), "sqlstate=\"%s\"", sqlstate);
		metrics_add(m_db_errors, lbl, 1);
		log_msg(LOG_WARN, "ingest call failed", "sqlstate=%s outcome=%s rows=%d error=\"%s\"",
				sqlstate, st == PGC_UNKNOWN ? "unknown" : "error", n, msg);
	}
	return st;
}

/*
 * Is a failed call's SQLSTATE an outage (journal it, retry later) rather
 * than something about the data (never journaled)?  Besides the server and
 * connection classes, errors that say the database or the gateway's role is
 * not set up as the call expects (a function, table, column or schema
 * missing, a feature or a login refused) fail every fix alike: refusing the
 * fixes one by one would drop a whole fleet's reports over a deployment
 * fault, so they wait in the journal until it is fixed (/readyz says so).
 * A refusal that can depend on the row (42501 for a tenant the login is not
 * bound to, 55000 for a suspended tenant, 22xxx, 23xxx) stays a row error.
 */
static bool
is_outage(const char *st)
{
	return st[0] == '\0' ||
		strcmp(st, "0A000") == 0 ||	/* feature not supported (e.g. isolation level) */
		strcmp(st, "3D000") == 0 ||	/* no such database */
		strcmp(st, "3F000") == 0 ||	/* no such schema */
		strcmp(st, "42883") == 0 ||	/* no such function (extension missing, wrong version) */
		strcmp(st, "42P01") == 0 ||	/* no such table */
		strcmp(st, "42703") == 0 ||	/* no such column */
		strncmp(st, "28", 2) == 0 ||	/* invalid authorization */
		strncmp(st, "39", 2) == 0 ||	/* external routine invocation */
		strncmp(st, "08", 2) == 0 ||	/* connection exception */
		strncmp(st, "53", 2) == 0 ||	/* insufficient resources */
		strncmp(st, "40", 2) == 0 ||	/* serialization failure, deadlock */
		strncmp(st, "58", 2) == 0 ||	/* system error (I/O) */
		strncmp(st, "57P", 3) == 0 ||	/* shutdown, crash, cannot connect now */
		strcmp(st, "57014") == 0 ||	/* canceled (statement_timeout) */
		strcmp(st, "55P03") == 0 ||	/* lock not available (lock_timeout) */
		strcmp(st, "25006") == 0;	/* read-only: a standby after failover */
}

/*
 * Store fixes[0..n), splitting on an error that is not an outage until the
 * fixes that fail alone are found: those get status 'E', the reason
 * db_error_<SQLSTATE> and the message in errors[i].  *committed counts the
 * calls that committed (so a later outage knows some fixes are stored).
 */
static split_result
store_split(lane *l, gw_fix *fixes, int n, char *status, char (*reasons)[64],
			char (*errors)[ERR_LEN], int *committed)
{
	char		sqlstate[6],
				msg[ERR_LEN];
	pgc_status	st;
	split_result r;

	if (n == 0)
		return SPLIT_DONE;
	st = ingest(l, fixes, n, status, reasons, sqlstate, msg, sizeof(msg));
	if (st == PGC_OK)
	{
		(*committed)++;
		return SPLIT_DONE;
	}
	if (st == PGC_UNKNOWN)
		return SPLIT_UNKNOWN;
	if (st == PGC_UNAVAILABLE || is_outage(sqlstate))
		return SPLIT_OUTAGE;
	if (n == 1)
	{
		status[0] = 'E';
		snprintf(reasons[0], 64, "db_error_%s", sqlstate);
		snprintf(errors[0], ERR_LEN, "%s", msg);
		log_msg(LOG_WARN, "fix refused by the database", "device=\"%s\" sqlstate=%s error=\"%s\"",
				fixes[0].device, sqlstate, msg);
		return SPLIT_DONE;
	}
	metrics_add(m_splits, NULL, 1);
	r = store_split(l, fixes, n / 2, status, reasons, errors, committed);
	if (r != SPLIT_DONE)
		return r;
	return store_split(l, fixes + n / 2, n - n / 2, status + n / 2, reasons + n / 2, errors + n / 2, committed);
}

/* Count row statuses into a submission's counters and the metrics. */
static void
count_row(submission *s, char status, const char *reason)
{
	char		lbl[96],
				esc[64];

	switch (status)
	{
		case 'a':
			s->counts.accepted++;
			metrics_add(m_rows, "status=\"accepted\"", 1);
			break;
		case 'd':
			s->counts.duplicate++;
			metrics_add(m_rows, "status=\"duplicate\"", 1);
			break;
		case 'c':
			s->counts.conflict++;
			metrics_add(m_rows, "status=\"conflict\"", 1);
			break;
		case 'E':
			/* refused by a database error: the reason names its SQLSTATE */
			s->counts.failed++;
			if (!s->counts.reason[0])
				snprintf(s->counts.reason, sizeof(s->counts.reason), "%s", reason);
			snprintf(lbl, sizeof(lbl), "reason=\"%s\"", metrics_escape(reason, esc, sizeof(esc)));
			metrics_add(m_rejected, lbl, 1);
			metrics_add(m_rows, "status=\"refused\"", 1);
			break;
		default:
			s->counts.rejected++;
			if (!s->counts.reason[0])
				snprintf(s->counts.reason, sizeof(s->counts.reason), "%s", reason);
			snprintf(lbl, sizeof(lbl), "reason=\"%s\"", metrics_escape(reason, esc, sizeof(esc)));
			metrics_add(m_rejected, lbl, 1);
			metrics_add(m_rows, "status=\"rejected\"", 1);
	}
}

/* Answer a submission and free it. */
static void
finish(submission *s, gw_outcome o)
{
	char		lbl[48];

	snprintf(lbl, sizeof(lbl), "outcome=\"%s\"", gw_outcome_name(o));
	metrics_add(m_outcomes, lbl, 1);
	s->cb(s->ctx, o, &s->counts);
	for (int i = 0; i < s->n; i++)
		free(s->fixes[i].attrs);
	free(s->fixes);
	free(s);
}

/* Append the submissions' fixes to the journal; true when durable. */
static bool
journal_batch(batcher *b, submission *list)
{
	int			total = 0,
				k = 0;
	const void **recs;
	size_t	   *lens;
	bool		ok;

	for (submission *s = list; s; s = s->next)
		total += s->n;
	if (total == 0)
		return true;
	recs = calloc(total, sizeof(void *));
	lens = calloc(total, sizeof(size_t));
	if (!recs || !lens)
		abort();
	for (submission *s = list; s; s = s->next)
		for (int i = 0; i < s->n; i++, k++)
			recs[k] = fix_pack(&s->fixes[i], &lens[k]);
	ok = journal_append(b->jn, recs, lens, total) == 0;
	for (int i = 0; i < total; i++)
		free((void *) recs[i]);
	free(recs);
	free(lens);
	if (ok)
		metrics_add(m_journal_appends, NULL, total);
	return ok;
}

/* Copy text as valid UTF-8 for a JSON string (other bytes become '?'). */
static json_t *
json_text(const char *v)
{
	json_t	   *j;
	char	   *copy;

	if (!v)
		return json_null();
	if (gw_utf8_valid(v, strlen(v)))
		return json_string(v);
	copy = strdup(v);
	if (!copy)
		abort();
	for (char *p = copy; *p; p++)
		if ((unsigned char) *p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *
json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/*
 * Append the refused fixes (status 'E') to dead-letters.jsonl, one JSON
 * object per line with the database's error, and fsync it.  0 when durable.
 */
static int
dead_letter_write(batcher *b, const gw_fix *fixes, int n, const char *status,
				  char (*reasons)[64], char (*errors)[ERR_LEN])
{
	int			fd,
				dfd,
				rc = 0,
				moved = 0;
	char		now[40];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	fmt_time((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now, sizeof(now));
	fd = open(b->dead_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (int i = 0; i < n && rc == 0; i++)
	{
		json_t	   *o;
		char	   *line,
					ft[40];
		size_t		len;

		if (status[i] != 'E')
			continue;
		fmt_time(fixes[i].time_ms, ft, sizeof(ft));
		o = json_object();
		json_object_set_new(o, "moved_at", json_string(now));
		json_object_set_new(o, "reason", json_text(reasons[i]));
		json_object_set_new(o, "error", json_text(errors[i]));
		json_object_set_new(o, "device", json_text(fixes[i].device));
		json_object_set_new(o, "fix_time", json_string(ft));
		json_object_set_new(o, "lat", json_num(fixes[i].lat));
		json_object_set_new(o, "lon", json_num(fixes[i].lon));
		json_object_set_new(o, "speed_kmh", json_num(fixes[i].speed_kmh));
		json_object_set_new(o, "heading", json_num(fixes[i].heading));
		json_object_set_new(o, "altitude", json_num(fixes[i].altitude));
		json_object_set_new(o, "accuracy", json_num(fixes[i].accuracy));
		json_object_set_new(o, "seq", fixes[i].seq >= 0 ? json_integer(fixes[i].seq) : json_null());
		json_object_set_new(o, "attrs", json_text(fixes[i].attrs));
		line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
		json_decref(o);
		if (!line)
			abort();
		len = strlen(line);
		line[len] = '\n';		/* json_dumps leaves room only for the NUL: rewrite it */
		if (write(fd, line, len + 1) != (ssize_t) (len + 1))
			rc = -1;
		free(line);
		moved++;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -1;
	close(fd);
	/* the file's directory entry must be durable too */
	{
		char		dir[4096];
		char	   *slash;

		snprintf(dir, sizeof(dir), "%s", b->dead_path);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0)
			rc = -1;
		if (dfd >= 0)
			close(dfd);
	}
	if (rc == 0)
	{
		metrics_add(m_dead_letters, NULL, moved);
		log_msg(LOG_ERROR, "journaled fixes refused by the database moved aside",
				"rows=%d file=\"%s\"", moved, b->dead_path);
	}
	return rc;
}

/* The drain failed while connected: it is blocked since (at least) now. */
static void
drain_blocked(batcher *b)
{
	pthread_mutex_lock(&b->smu);
	if (b->blocked_since == 0)
		b->blocked_since = mono();
	pthread_mutex_unlock(&b->smu);
}

/* The drain moved forward (or the journal is empty): nothing is blocked. */
static void
drain_progressed(batcher *b)
{
	pthread_mutex_lock(&b->smu);
	b->blocked_since = 0;
	b->refused_since = 0;
	b->refused_passes = 0;
	b->next_drain = 0;
	pthread_mutex_unlock(&b->smu);
}

/*
 * Drain the journal into the database while it is reachable.  Returns true
 * when the journal is empty.  Fixes the database refuses with an error that
 * is not an outage are retried (with backoff, the rest of their batch is
 * stored meanwhile and deduplicated on each retry); once they have been
 * refused for dead_letter_after_s seconds and three passes they are moved
 * to the dead-letter file and the drain goes on.
 */
static bool
drain_journal(lane *l)
{
	batcher    *b = l->b;
	const void *recs[1024];
	size_t		lens[1024];
	int			max = b->cfg.max_batch > 1024 ? 1024 : b->cfg.max_batch;

	if (mono() < b->next_drain)
		return false;
	while (journal_depth_records(b->jn) > 0)
	{
		int			n = journal_peek(b->jn, max, recs, lens);
		gw_fix	   *fixes;
		char	   *status;
		char		(*reasons)[64];
		char		(*errors)[ERR_LEN];
		split_result r = SPLIT_DONE;
		int			good = 0,
					committed = 0,
					refused = 0;
		bool		moved_on = false;

		if (n <= 0)
		{
			if (n < 0)
				drain_blocked(b);
			return n == 0;
		}
		fixes = calloc(n, sizeof(gw_fix));
		status = calloc(n, 1);
		reasons = calloc(n, 64);
		errors = calloc(n, ERR_LEN);
		if (!fixes || !status || !reasons || !errors)
			abort();
		for (int i = 0; i < n; i++)
			if (fix_unpack(recs[i], lens[i], &fixes[good]))
				good++;
			else
				log_msg(LOG_ERROR, "malformed journal record skipped", "len=%zu", lens[i]);
		if (good > 0)
			r = store_split(l, fixes, good, status, reasons, errors, &committed);
		for (int i = 0; r == SPLIT_DONE && i < good; i++)
			refused += status[i] == 'E';
		if (r == SPLIT_DONE && refused > 0)
		{
			double		now = mono();
			bool		due;

			pthread_mutex_lock(&b->smu);
			if (b->refused_since == 0)
				b->refused_since = now;
			b->refused_passes++;
			due = b->refused_passes >= 3 && now - b->refused_since >= b->cfg.dead_letter_after_s;
			/* retry after 0.2 s, doubling to 10 s: each retry re-sends the batch */
			b->next_drain = now + fmin(10.0, 0.2 * pow(2, b->refused_passes - 1));
			pthread_mutex_unlock(&b->smu);
			if (!due)
				log_msg(LOG_WARN, "journaled fixes refused by the database: retrying before moving them aside",
						"refused=%d rows=%d pass=%d", refused, good, b->refused_passes);
			else if (dead_letter_write(b, fixes, good, status, reasons, errors) == 0)
				moved_on = true;
			else
				log_msg(LOG_ERROR, "cannot write the dead-letter file", "file=\"%s\"", b->dead_path);
		}
		else if (r == SPLIT_DONE)
			moved_on = true;
		if (moved_on)
		{
			submission	tmp = {0};

			for (int i = 0; i < good; i++)
				count_row(&tmp, status[i], reasons[i]);
			if (journal_consume(b->jn) == 0)
				drain_progressed(b);
			else
				moved_on = false;
			log_msg(LOG_INFO, "journal drained", "rows=%d accepted=%d duplicate=%d rejected=%d moved_aside=%d left=%llu",
					good, tmp.counts.accepted, tmp.counts.duplicate, tmp.counts.rejected, tmp.counts.failed,
					(unsigned long long) journal_depth_records(b->jn));
		}
		else
			drain_blocked(b);
		for (int i = 0; i < good; i++)
			free(fixes[i].attrs);
		free(fixes);
		free(status);
		free(reasons);
		free(errors);
		if (!moved_on)
			return false;
	}
	drain_progressed(b);
	return true;
}

/* Store a batch of submissions (list) directly, or journal it. */
static void
process(lane *l, submission *list)
{
	batcher    *b = l->b;
	int			total = 0,
				k = 0,
				committed = 0;
	gw_fix	   *fixes;
	char	   *status;
	char		(*reasons)[64];
	char		(*errors)[ERR_LEN];
	split_result r = SPLIT_OUTAGE;
	bool		journal_empty = journal_depth_records(b->jn) == 0;

	for (submission *s = list; s; s = s->next)
		total += s->n;
	fixes = calloc(total ? total : 1, sizeof(gw_fix));
	status = calloc(total ? total : 1, 1);
	reasons = calloc(total ? total : 1, 64);
	errors = calloc(total ? total : 1, ERR_LEN);
	if (!fixes || !status || !reasons || !errors)
		abort();
	for (submission *s = list; s; s = s->next)
		for (int i = 0; i < s->n; i++)
			fixes[k++] = s->fixes[i];	/* shallow: attrs stay owned by s */

	if (journal_empty)
		r = store_split(l, fixes, total, status, reasons, errors, &committed);

	if (r == SPLIT_DONE)
	{
		k = 0;
		for (submission *s = list, *next; s; s = next)
		{
			bool		all_refused;

			next = s->next;
			for (int i = 0; i < s->n; i++, k++)
				count_row(s, status[k], reasons[k]);
			all_refused = s->n > 0 && s->counts.rejected == s->n &&
				strcmp(s->counts.reason, "unknown_device") == 0;
			finish(s, s->counts.failed > 0 ? GW_INVALID : all_refused ? GW_REFUSED : GW_STORED);
		}
	}
	else if (r == SPLIT_UNKNOWN || committed > 0)
	{
		/*
		 * The connection broke around a commit, or an outage came in the
		 * middle of a split after part of the batch committed: no
		 * acknowledgement; the devices resend and the database deduplicates.
		 */
		for (submission *s = list, *next; s; s = next)
		{
			next = s->next;
			finish(s, GW_UNKNOWN);
		}
	}
	else
	{
		/*
		 * Unreachable, an outage, or the journal is not empty.  Above its
		 * high-water mark (90%) the journal takes nothing more, so
		 * backpressure is the same for a one-fix request as for a big frame
		 * (and /readyz says journal_full), until draining frees room.
		 */
		bool		ok = batcher_journal_has_room(b) && journal_batch(b, list);

		if (!ok)
			log_msg(LOG_WARN, "journal full or failing: not acknowledging", "rows=%d", total);
		for (submission *s = list, *next; s; s = next)
		{
			next = s->next;
			finish(s, ok ? GW_JOURNALED : GW_FAILED);
		}
	}
	free(fixes);
	free(status);
	free(reasons);
	free(errors);
	metrics_set(m_journal_depth, NULL, (double) journal_depth_records(b->jn));
}

/* Take up to max_batch fixes of queued submissions; caller holds mu. */
static submission *
take_batch(lane *l)
{
	submission *list = l->head,
			  **cut = &l->head;
	int			n = 0;

	while (*cut && (n == 0 || n + (*cut)->n <= l->b->cfg.max_batch))
	{
		n += (*cut)->n;
		cut = &(*cut)->next;
	}
	l->head = *cut;
	*cut = NULL;
	if (!l->head)
		l->tail = &l->head;
	l->queued_fixes -= n;
	return list;
}

/* A lane's thread.  Lane 0 also drains the journal. */
static void *
run(void *arg)
{
	lane	   *l = arg;
	batcher    *b = l->b;
	double		last_try = 0;

	for (;;)
	{
		submission *list;
		struct timespec until;

		/* keep the connection and the journal moving */
		if (mono() - last_try > 0.2)
		{
			last_try = mono();
			l->db_ready = pgconn_ensure(l->pg);
			if (l->id == 0)
			{
				metrics_set(m_reconnects, NULL, (double) pgconn_reconnects(l->pg));
				if (l->db_ready && journal_depth_records(b->jn) > 0)
					drain_journal(l);
				else if (journal_depth_records(b->jn) == 0)
					drain_progressed(b);
				metrics_set(m_journal_depth, NULL, (double) journal_depth_records(b->jn));
				metrics_set(m_stuck, NULL, batcher_journal_stuck(b) ? 1 : 0);
			}
		}

		pthread_mutex_lock(&l->mu);
		if (!l->head && !l->stopping)
		{
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000L;
			if (until.tv_nsec >= 1000000000L)
				until.tv_sec++, until.tv_nsec -= 1000000000L;
			pthread_cond_timedwait(&l->cv, &l->mu, &until);
		}
		if (!l->head && l->stopping)
		{
			pthread_mutex_unlock(&l->mu);
			break;
		}
		if (!l->head)
		{
			pthread_mutex_unlock(&l->mu);
			continue;
		}
		/* give a small batch up to max_wait_ms to fill up */
		if (l->queued_fixes < b->cfg.max_batch && !l->stopping)
		{
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long) b->cfg.max_wait_ms * 1000000L;
			while (until.tv_nsec >= 1000000000L)
				until.tv_sec++, until.tv_nsec -= 1000000000L;
			while (l->queued_fixes < b->cfg.max_batch && !l->stopping &&
				   pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
				;
		}
		list = take_batch(l);
		pthread_mutex_unlock(&l->mu);
		process(l, list);
	}
	return NULL;
}

batcher *
batcher_start(const batcher_config *cfg, char *err, size_t errlen)
{
	batcher    *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	if (!m_received)
	{
		m_received = metrics_counter("fleet_gateway_fixes_received_total", "Fixes submitted for storage.");
		m_rows = metrics_counter("fleet_gateway_rows_total", "Fixes by the database's answer (accepted, duplicate, conflict, rejected).");
		m_rejected = metrics_counter("fleet_gateway_rejected_total", "Fixes rejected by the database, by reason.");
		m_outcomes = metrics_counter("fleet_gateway_submissions_total", "Frames and requests by outcome (stored, journaled, unknown, refused, failed).");
		m_batch = metrics_histogram("fleet_gateway_batch_rows", "Fixes per ingest call.",
									(const double[]) {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000}, 10);
		m_commit = metrics_histogram("fleet_gateway_commit_seconds", "Duration of one ingest call including its commit.",
									 metrics_latency_bounds, metrics_latency_nbounds);
		m_journal_depth = metrics_gauge("fleet_gateway_journal_depth", "Fixes acknowledged into the local journal and not yet stored.");
		m_journal_appends = metrics_counter("fleet_gateway_journal_appends_total", "Fixes written to the local journal.");
		m_db_errors = metrics_counter("fleet_gateway_db_errors_total", "Failed ingest calls by SQLSTATE.");
		m_reconnects = metrics_gauge("fleet_gateway_db_reconnects", "Database reconnections since start.");
		m_dead_letters = metrics_counter("fleet_gateway_journal_dead_letters_total",
										 "Journaled fixes the database kept refusing, moved to dead-letters.jsonl.");
		m_stuck = metrics_gauge("fleet_gateway_journal_stuck", "1 when the journal drain has made no progress for journal-stuck-after seconds while connected.");
		m_splits = metrics_counter("fleet_gateway_batch_splits_total", "Batches split in halves to isolate fixes the database refuses.");
	}
	b->cfg = *cfg;
	if (b->cfg.max_batch <= 0)
		b->cfg.max_batch = 1000;
	if (b->cfg.dead_letter_after_s < 0)
		b->cfg.dead_letter_after_s = 0;
	if (b->cfg.stuck_after_s <= 0)
		b->cfg.stuck_after_s = 60;
	pthread_mutex_init(&b->smu, NULL);
	snprintf(b->dead_path, sizeof(b->dead_path), "%s/dead-letters.jsonl", cfg->journal_dir);
	b->nlanes = cfg->writers < 1 ? 1 : cfg->writers > MAX_LANES ? MAX_LANES : cfg->writers;
	b->jn = journal_open(cfg->journal_dir, cfg->journal_max_bytes, err, errlen);
	if (!b->jn)
	{
		free(b);
		return NULL;
	}
	if (journal_position_was_reset(b->jn))
		log_msg(LOG_WARN, "journal drained position was damaged: draining restarts from the earliest undrained segment",
				"pending=%llu", (unsigned long long) journal_depth_records(b->jn));
	if (journal_depth_records(b->jn) > 0 || journal_truncated_bytes(b->jn) > 0)
		log_msg(LOG_INFO, "journal opened", "pending=%llu torn_bytes=%llu",
				(unsigned long long) journal_depth_records(b->jn),
				(unsigned long long) journal_truncated_bytes(b->jn));
	metrics_set(m_journal_depth, NULL, (double) journal_depth_records(b->jn));
	for (int i = 0; i < b->nlanes; i++)
	{
		lane	   *l = &b->lanes[i];

		l->b = b;
		l->id = i;
		l->tail = &l->head;
		pthread_mutex_init(&l->mu, NULL);
		pthread_cond_init(&l->cv, NULL);
		l->pg = pgconn_new(cfg->dsn, "fleet-gateway", statements, 1);
		if (pthread_create(&l->thread, NULL, run, l) != 0)
		{
			snprintf(err, errlen, "cannot start the batcher threads");
			return NULL;
		}
	}
	return b;
}

void
batcher_submit(batcher *b, const gw_record *recs, int n, gw_done_fn cb, void *ctx)
{
	submission *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	s->fixes = calloc(n > 0 ? n : 1, sizeof(gw_fix));
	if (!s->fixes)
		abort();
	for (int i = 0; i < n; i++)
	{
		gw_fix	   *f = &s->fixes[i];

		snprintf(f->device, sizeof(f->device), "%s", recs[i].device);
		f->time_ms = recs[i].time_ms;
		f->lat = recs[i].lat;
		f->lon = recs[i].lon;
		f->speed_kmh = recs[i].speed_kmh;
		f->heading = recs[i].heading;
		f->altitude = recs[i].altitude;
		f->accuracy = recs[i].accuracy;
		f->seq = recs[i].seq;
		f->attrs = recs[i].attrs && recs[i].attrs_len ? strndup(recs[i].attrs, recs[i].attrs_len) : NULL;
	}
	s->n = n;
	s->cb = cb;
	s->ctx = ctx;
	metrics_add(m_received, NULL, n);
	{
		/* the lane of the device (FNV-1a of its identifier) */
		uint32_t	h = 2166136261u;
		lane	   *l;

		for (const char *p = n > 0 ? s->fixes[0].device : ""; *p; p++)
			h = (h ^ (uint8_t) *p) * 16777619u;
		l = &b->lanes[h % (uint32_t) b->nlanes];
		pthread_mutex_lock(&l->mu);
		if (l->stopping)
		{
			pthread_mutex_unlock(&l->mu);
			finish(s, GW_FAILED);
			return;
		}
		*l->tail = s;
		l->tail = &s->next;
		l->queued_fixes += n;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
	}
}

void
batcher_stop(batcher *b)
{
	for (int i = 0; i < b->nlanes; i++)
	{
		pthread_mutex_lock(&b->lanes[i].mu);
		b->lanes[i].stopping = true;
		pthread_cond_broadcast(&b->lanes[i].cv);
		pthread_mutex_unlock(&b->lanes[i].mu);
	}
	for (int i = 0; i < b->nlanes; i++)
		pthread_join(b->lanes[i].thread, NULL);
	journal_close(b->jn);
	pthread_mutex_destroy(&b->smu);
	for (int i = 0; i < b->nlanes; i++)
		pgconn_free(b->lanes[i].pg);
	free(b);
}

bool
batcher_db_ready(batcher *b)
{
	/* up only when every writer lane is: one lane that lost the database journals */
	for (int i = 0; i < b->nlanes; i++)
		if (!b->lanes[i].db_ready)
			return false;
	return true;
}

uint64_t
batcher_journal_depth(batcher *b)
{
	return journal_depth_records(b->jn);
}

bool
batcher_journal_stuck(batcher *b)
{
	bool		stuck;

	pthread_mutex_lock(&b->smu);
	stuck = b->blocked_since > 0 && mono() - b->blocked_since > b->cfg.stuck_after_s;
	pthread_mutex_unlock(&b->smu);
	return stuck;
}

bool
batcher_journal_has_room(batcher *b)
{
	return journal_depth_bytes(b->jn) < b->cfg.journal_max_bytes / 10 * 9;
}
