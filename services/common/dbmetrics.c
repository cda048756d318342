/*
 * dbmetrics.c - fleet.metrics() on a service's /metrics, and the service's
 * own figures reported through fleet.report_service_metrics().
 *
 * See dbmetrics.h.  One reconnecting libpq connection (pgconn) per service,
 * guarded by a mutex, shared by the scrape (HTTP thread) and the reporter
 * thread; every use first sets a statement timeout so neither can hang.
 */
#include "dbmetrics.h"
#include "log.h"
#include "pgconn.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define DBM_TIMEOUT_MS "5000"
#define DBM_MAX_GAUGES 32

static const pg_stmt statements[] = {
	{"dbm_timeout", "SELECT pg_catalog.set_config('statement_timeout', $1, false)", 1},
	{"dbm_metrics", "SELECT name, labels::text, value, type, help FROM fleet.metrics() ORDER BY name", 0},
	{"dbm_report", "SELECT fleet.report_service_metrics($1, $2, $3::jsonb)", 3},
};

struct dbmetrics
{
	pgconn	   *pg;
	pthread_mutex_t mu;			/* the connection and the gauges */
	char	   *service;
	char	   *instance;
	int			interval_s;
	dbmetrics_gauges_fn gauges_fn;
	void	   *gauges_arg;
	struct
	{
		char		name[64];
		double		value;
	}			gauges[DBM_MAX_GAUGES];
	int			ngauges;
	pthread_t	thread;
	bool		running;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	bool		stopping;
};

/* ------------------------------------------------ integration counters */

static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct
{
	char		name[72];
	double		ok;
	double		error;
}			calls[DBMETRICS_MAX_INTEGRATIONS + 1];	/* last slot: "other" */
static int	ncalls;

void
dbmetrics_count_call(const char *integration, bool ok)
{
	char		name[72];
	size_t		i,
				o = 0;
	int			k;

	for (i = 0; integration && integration[i] && o < sizeof(name) - 1; i++)
	{
		char		c = integration[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-')
			name[o++] = c;
	}
	name[o] = '\0';
	if (o == 0)
		snprintf(name, sizeof(name), "unknown");
	pthread_mutex_lock(&calls_mu);
	for (k = 0; k < ncalls; k++)
		if (strcmp(calls[k].name, name) == 0)
			break;
	if (k == ncalls)
	{
		if (ncalls < DBMETRICS_MAX_INTEGRATIONS)
			snprintf(calls[ncalls++].name, sizeof(calls[0].name), "%s", name);
		else
		{
			k = DBMETRICS_MAX_INTEGRATIONS;
			snprintf(calls[k].name, sizeof(calls[k].name), "other");
		}
	}
	if (ok)
		calls[k].ok += 1;
	else
		calls[k].error += 1;
	pthread_mutex_unlock(&calls_mu);
}

/* ------------------------------------------------------------ rendering */

typedef struct
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		oom;
} sbuf;

static void
sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 4096;
		char	   *nb;

		while (b->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb)
		{
			b->oom = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void
sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Escape for HELP (\\ and \n) or label values (also \"). */
static void
sb_escaped(sbuf *b, const char *s, bool quote)
{
	for (; *s; s++)
	{
		if (*s == '\\')
			sb_str(b, "\\\\");
		else if (*s == '\n')
			sb_str(b, "\\n");
		else if (quote && *s == '"')
			sb_str(b, "\\\"");
		else
			sb_put(b, s, 1);
	}
}

static void
sb_value(sbuf *b, double v)
{
	char		num[40];

	if (isnan(v))
		snprintf(num, sizeof(num), "NaN");
	else if (isinf(v))
		snprintf(num, sizeof(num), "%s", v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(num, sizeof(num), "%.15g", v);
	sb_str(b, num);
}

static bool
valid_metric_name(const char *s)
{
	if (!s || !*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return false;
	return true;
}

static bool
valid_label_name(const char *s)
{
	if (!s || !*s || (s[0] == '_' && s[1] == '_'))
		return false;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Render a label set from a flat JSON object into b; false if invalid. */
static bool
render_labels(sbuf *b, const char *json)
{
	json_error_t jerr;
	json_t	   *obj;
	const char *keys[64];
	size_t		nkeys = 0;
	const char *key;
	json_t	   *val;
	bool		ok = true;

	if (!json || !*json)
		return true;
	obj = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj || !json_is_object(obj))
	{
		json_decref(obj);
		return false;
	}
	json_object_foreach(obj, key, val)
	{
		if (nkeys == 64 || !valid_label_name(key) || !json_is_string(val))
		{
			ok = false;
			break;
		}
		keys[nkeys++] = key;
	}
	if (ok && nkeys > 0)
	{
		qsort(keys, nkeys, sizeof(keys[0]), cmp_str);
		sb_str(b, "{");
		for (size_t i = 0; i < nkeys; i++)
		{
			if (i > 0)
				sb_str(b, ",");
			sb_str(b, keys[i]);
			sb_str(b, "=\"");
			sb_escaped(b, json_string_value(json_object_get(obj, keys[i])), true);
			sb_str(b, "\"");
		}
		sb_str(b, "}");
	}
	json_decref(obj);
	return ok;
}

bool
dbmetrics_render(const dbmetrics_row *rows, int n, char **text, size_t *len, int *skipped)
{
	sbuf		b = {*text, *len, *text ? *len + 1 : 0, false};
	const char **done = calloc((size_t) n + 1, sizeof(char *));
	int			ndone = 0;
	int			i = 0;

	*skipped = 0;
	if (!done)
		return false;
	while (i < n)
	{
		const char *name = rows[i].name;
		const char *type = rows[i].type;
		int			j = i;
		bool		seen = false;
		bool		header = false;

		while (j < n && rows[j].name && name && strcmp(rows[j].name, name) == 0)
			j++;
		if (j == i)
			j = i + 1;			/* a NULL name: a group of one */
		for (int k = 0; k < ndone && !seen; k++)
			seen = strcmp(done[k], name ? name : "") == 0;
		if (seen || !valid_metric_name(name) || !type ||
			(strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0))
		{
			*skipped += j - i;
			i = j;
			continue;
		}
		done[ndone++] = name;
		for (int k = i; k < j; k++)
		{
			sbuf		line = {NULL, 0, 0, false};

			if (strcmp(rows[k].type, type) != 0 || !render_labels(&line, rows[k].labels_json))
			{
				free(line.buf);
				(*skipped)++;
				continue;
			}
			if (!header)
			{
				sb_str(&b, "# HELP ");
				sb_str(&b, name);
				sb_str(&b, " ");
				sb_escaped(&b, rows[i].help ? rows[i].help : "", false);
				sb_str(&b, "\n# TYPE ");
				sb_str(&b, name);
				sb_str(&b, " ");
				sb_str(&b, type);
				sb_str(&b, "\n");
				header = true;
			}
			sb_str(&b, name);
			if (line.buf)
				sb_put(&b, line.buf, line.len);
			sb_str(&b, " ");
			sb_value(&b, rows[k].value);
			sb_str(&b, "\n");
			free(line.buf);
		}
		i = j;
	}
	free(done);
	if (b.oom)
		return false;
	*text = b.buf;
	*len = b.len;
	return true;
}

/* --------------------------------------------------------- the database */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Set the statement timeout on the (connected) session; caller holds mu. */
static bool
set_timeout(dbmetrics *dm)
{
	const char *vals[1] = {DBM_TIMEOUT_MS};
	PGresult   *res;
	char		st[6];

	if (pgconn_exec(dm->pg, "dbm_timeout", 1, vals, &res, st, NULL, 0) != PGC_OK)
		return false;
	PQclear(res);
	return true;
}

void
dbmetrics_gauge(dbmetrics *dm, const char *name, double value)
{
	int			k;

	pthread_mutex_lock(&dm->mu);
	for (k = 0; k < dm->ngauges; k++)
		if (strcmp(dm->gauges[k].name, name) == 0)
			break;
	if (k == dm->ngauges && dm->ngauges < DBM_MAX_GAUGES)
		snprintf(dm->gauges[dm->ngauges++].name, sizeof(dm->gauges[0].name), "%s", name);
	if (k < DBM_MAX_GAUGES)
		dm->gauges[k].value = value;
	pthread_mutex_unlock(&dm->mu);
}

bool
dbmetrics_report(dbmetrics *dm)
{
	json_t	   *arr = json_array();
	char	   *payload;
	const char *vals[3];
	PGresult   *res;
	char		st[6];
	char		msg[256];
	pgc_status	rc;

	if (!arr)
		return false;
	if (dm->gauges_fn)
		dm->gauges_fn(dm, dm->gauges_arg);
	pthread_mutex_lock(&calls_mu);
	for (int k = 0; k <= DBMETRICS_MAX_INTEGRATIONS; k++)
	{
		if (k < ncalls || (k == DBMETRICS_MAX_INTEGRATIONS && calls[k].name[0]))
		{
			json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s}, s:f}", "name", "integration_calls_total",
												 "labels", "integration", calls[k].name, "result", "ok",
												 "value", calls[k].ok));
			json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s}, s:f}", "name", "integration_calls_total",
												 "labels", "integration", calls[k].name, "result", "error",
												 "value", calls[k].error));
		}
	}
	pthread_mutex_unlock(&calls_mu);
	pthread_mutex_lock(&dm->mu);
	for (int k = 0; k < dm->ngauges; k++)
		json_array_append_new(arr, json_pack("{s:s, s:f}", "name", dm->gauges[k].name, "value", dm->gauges[k].value));
	payload = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (!payload)
	{
		pthread_mutex_unlock(&dm->mu);
		return false;
	}
	vals[0] = dm->service;
	vals[1] = dm->instance;
	vals[2] = payload;
	rc = set_timeout(dm) ? pgconn_exec(dm->pg, "dbm_report", 3, vals, &res, st, msg, sizeof(msg)) : PGC_UNAVAILABLE;
	pthread_mutex_unlock(&dm->mu);
	free(payload);
	if (rc == PGC_OK)
	{
		PQclear(res);
		return true;
	}
	if (rc == PGC_ERROR)
		log_msg(LOG_WARN, "metrics report refused", "sqlstate=%s error=\"%s\"", st, msg);
	return false;
}

static void
append_line(char **text, size_t *len, const char *line)
{
	size_t		n = strlen(line);
	char	   *nb = realloc(*text, *len + n + 1);

	if (!nb)
		return;
	memcpy(nb + *len, line, n + 1);
	*text = nb;
	*len += n;
}

bool
dbmetrics_append(dbmetrics *dm, char **text, size_t *len)
{
	double		t0 = now_s();
	PGresult   *res = NULL;
	char		st[6];
	char		msg[256];
	char		line[768];
	bool		ok = false;
	int			skipped = 0;

	pthread_mutex_lock(&dm->mu);
	if (set_timeout(dm) &&
		pgconn_exec(dm->pg, "dbm_metrics", 0, NULL, &res, st, msg, sizeof(msg)) == PGC_OK)
	{
		int			n = PQntuples(res);
		dbmetrics_row *rows = calloc((size_t) n + 1, sizeof(*rows));

		if (rows)
		{
			for (int i = 0; i < n; i++)
			{
				rows[i].name = PQgetvalue(res, i, 0);
				rows[i].labels_json = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
				rows[i].value = PQgetisnull(res, i, 2) ? NAN : strtod(PQgetvalue(res, i, 2), NULL);
				rows[i].type = PQgetvalue(res, i, 3);
				rows[i].help = PQgetvalue(res, i, 4);
			}
			ok = dbmetrics_render(rows, n, text, len, &skipped);
			free(rows);
		}
		PQclear(res);
	}
	pthread_mutex_unlock(&dm->mu);
	if (skipped > 0)
		log_msg(LOG_WARN, "database metrics skipped", "rows=%d", skipped);
	snprintf(line, sizeof(line),
			 "# HELP fleet_db_metrics_up 1 when fleet.metrics() answered this scrape.\n"
			 "# TYPE fleet_db_metrics_up gauge\nfleet_db_metrics_up %d\n"
			 "# HELP fleet_db_metrics_scrape_seconds Time to fetch fleet.metrics().\n"
			 "# TYPE fleet_db_metrics_scrape_seconds gauge\nfleet_db_metrics_scrape_seconds %.6f\n"
			 "# HELP fleet_db_metrics_skipped Rows of fleet.metrics() left out as invalid.\n"
			 "# TYPE fleet_db_metrics_skipped gauge\nfleet_db_metrics_skipped %d\n",
			 ok ? 1 : 0, now_s() - t0, skipped);
	append_line(text, len, line);
	return ok;
}

/* ------------------------------------------------------------- lifecycle */

static void *
reporter(void *arg)
{
	dbmetrics  *dm = arg;

	pthread_mutex_lock(&dm->stop_mu);
	while (!dm->stopping)
	{
		struct timespec until;

		pthread_mutex_unlock(&dm->stop_mu);
		(void) dbmetrics_report(dm);
		pthread_mutex_lock(&dm->stop_mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += dm->interval_s;
		while (!dm->stopping && pthread_cond_timedwait(&dm->stop_cv, &dm->stop_mu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&dm->stop_mu);
	return NULL;
}

void
dbmetrics_instance(char *buf, size_t len, const char *fallback_host, long port)
{
	char		host[128];

	if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "%s", fallback_host);
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, len, "%s:%ld", host, port);
}

dbmetrics *
dbmetrics_start(const char *dsn, const char *service, const char *instance,
				int interval_s, dbmetrics_gauges_fn gauges, void *arg)
{
	dbmetrics  *dm = calloc(1, sizeof(*dm));
	char		appname[96];

	if (!dm)
		return NULL;
	snprintf(appname, sizeof(appname), "%s-metrics", service);
	dm->pg = pgconn_new(dsn, appname, statements, sizeof(statements) / sizeof(statements[0]));
	dm->service = strdup(service);
	dm->instance = strdup(instance);
	dm->interval_s = interval_s;
	dm->gauges_fn = gauges;
	dm->gauges_arg = arg;
	pthread_mutex_init(&dm->mu, NULL);
	pthread_mutex_init(&dm->stop_mu, NULL);
	pthread_cond_init(&dm->stop_cv, NULL);
	if (!dm->pg || !dm->service || !dm->instance)
	{
		dbmetrics_free(dm);
		return NULL;
	}
	if (interval_s > 0)
	{
		if (pthread_create(&dm->thread, NULL, reporter, dm) != 0)
		{
			dbmetrics_free(dm);
			return NULL;
		}
		dm->running = true;
	}
	return dm;
}

void
dbmetrics_stop(dbmetrics *dm)
{
	bool		was_running;

	if (!dm)
		return;
	pthread_mutex_lock(&dm->stop_mu);
	was_running = dm->running;
	dm->stopping = true;
	dm->running = false;
	pthread_cond_broadcast(&dm->stop_cv);
	pthread_mutex_unlock(&dm->stop_mu);
	if (was_running)
	{
		pthread_join(dm->thread, NULL);
		(void) dbmetrics_report(dm);	/* the final figures */
	}
	dm->gauges_fn = NULL;
}

void
dbmetrics_free(dbmetrics *dm)
{
	if (!dm)
		return;
	dbmetrics_stop(dm);
	if (dm->pg)
		pgconn_free(dm->pg);
	pthread_mutex_destroy(&dm->mu);
	pthread_mutex_destroy(&dm->stop_mu);
	pthread_cond_destroy(&dm->stop_cv);
	free(dm->service);
	free(dm->instance);
	free(dm);
}
