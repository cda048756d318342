/*
 * metrics.c - Prometheus text exposition of counters, gauges, histograms.
 */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOUNDS 24

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } metric_type;

typedef struct series
{
	char	   *labels;
	double		value;			/* counter/gauge; histogram sum */
	unsigned long long count;	/* histogram count */
	unsigned long long buckets[MAX_BOUNDS];
	struct series *next;
} series;

struct metric_family
{
	char	   *name;
	char	   *help;
	metric_type type;
	double		bounds[MAX_BOUNDS];
	int			nbounds;
	series	   *series;
	struct metric_family *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static metric_family *families, **families_tail = &families;

const double metrics_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const int	metrics_latency_nbounds = 13;

/* Register a family (in render order). */
static metric_family *
add_family(const char *name, const char *help, metric_type type)
{
	metric_family *f = calloc(1, sizeof(*f));

	if (!f)
		abort();
	f->name = strdup(name);
	f->help = strdup(help);
	f->type = type;
	pthread_mutex_lock(&mu);
	*families_tail = f;
	families_tail = &f->next;
	pthread_mutex_unlock(&mu);
	return f;
}

metric_family *
metrics_counter(const char *name, const char *help)
{
	return add_family(name, help, M_COUNTER);
}

metric_family *
metrics_gauge(const char *name, const char *help)
{
	return add_family(name, help, M_GAUGE);
}

metric_family *
metrics_histogram(const char *name, const char *help, const double *bounds, int nbounds)
{
	metric_family *f = add_family(name, help, M_HISTOGRAM);

	f->nbounds = nbounds > MAX_BOUNDS ? MAX_BOUNDS : nbounds;
	memcpy(f->bounds, bounds, sizeof(double) * f->nbounds);
	return f;
}

/* Find or create a series; caller holds mu. */
static series *
get_series(metric_family *f, const char *labels)
{
	series	   *s;

	if (!labels)
		labels = "";
	for (s = f->series; s; s = s->next)
		if (strcmp(s->labels, labels) == 0)
			return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->labels = strdup(labels);
	s->next = f->series;
	f->series = s;
	return s;
}

void
metrics_add(metric_family *f, const char *labels, double v)
{
	pthread_mutex_lock(&mu);
	get_series(f, labels)->value += v;
	pthread_mutex_unlock(&mu);
}

void
metrics_set(metric_family *f, const char *labels, double v)
{
	pthread_mutex_lock(&mu);
	get_series(f, labels)->value = v;
	pthread_mutex_unlock(&mu);
}

void
metrics_observe(metric_family *f, const char *labels, double v)
{
	series	   *s;

	pthread_mutex_lock(&mu);
	s = get_series(f, labels);
	s->value += v;
	s->count++;
	for (int i = 0; i < f->nbounds; i++)
		if (v <= f->bounds[i])
			s->buckets[i]++;
	pthread_mutex_unlock(&mu);
}

double
metrics_value(metric_family *f, const char *labels)
{
	double		v;

	pthread_mutex_lock(&mu);
	v = get_series(f, labels)->value;
	pthread_mutex_unlock(&mu);
	return v;
}

char *
metrics_escape(const char *in, char *out, size_t outlen)
{
	size_t		o = 0;

	for (; in && *in && o + 3 < outlen; in++)
	{
		if (*in == '\\' || *in == '"')
			out[o++] = '\\';
		if (*in == '\n')
		{
			out[o++] = '\\';
			out[o++] = 'n';
			continue;
		}
		out[o++] = *in;
	}
	out[o] = '\0';
	return out;
}

typedef struct
{
	char	   *buf;
	size_t		len,
				cap;
} sbuf;

/* printf into a growing buffer. */
__attribute__((format(printf, 2, 3)))
static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list		ap;
	int			n;

	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t) n < b->cap - b->len)
		{
			b->len += n;
			return;
		}
		b->cap = b->cap * 2 + (n > 0 ? n : 0) + 256;
		b->buf = realloc(b->buf, b->cap);
		if (!b->buf)
			abort();
	}
}

/* A float the way Prometheus reads it. */
static void
sb_value(sbuf *b, double v)
{
	if (isnan(v))
		sb_printf(b, "NaN");
	else if (isinf(v))
		sb_printf(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		sb_printf(b, "%.0f", v);
	else
		sb_printf(b, "%.9g", v);
}

char *
metrics_render(size_t *len)
{
	sbuf		b = {malloc(4096), 0, 4096};
	static const char *type_names[] = {"counter", "gauge", "histogram"};

	if (!b.buf)
		abort();
	b.buf[0] = '\0';
	pthread_mutex_lock(&mu);
	for (metric_family *f = families; f; f = f->next)
	{
		if (!f->series)
			continue;
		sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_names[f->type]);
		for (series *s = f->series; s; s = s->next)
		{
			const char *sep = s->labels[0] ? "," : "";

			if (f->type != M_HISTOGRAM)
			{
				sb_printf(&b, "%s%s%s%s ", f->name, s->labels[0] ? "{" : "", s->labels, s->labels[0] ? "}" : "");
				sb_value(&b, s->value);
				sb_printf(&b, "\n");
				continue;
			}
			for (int i = 0; i < f->nbounds; i++)
			{
				sb_printf(&b, "%s_bucket{%s%sle=\"", f->name, s->labels, sep);
				sb_value(&b, f->bounds[i]);
				sb_printf(&b, "\"} %llu\n", s->buckets[i]);
			}
			sb_printf(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, s->count);
			sb_printf(&b, "%s_sum%s%s%s ", f->name, s->labels[0] ? "{" : "", s->labels, s->labels[0] ? "}" : "");
			sb_value(&b, s->value);
			sb_printf(&b, "\n%s_count%s%s%s %llu\n", f->name, s->labels[0] ? "{" : "", s->labels,
					  s->labels[0] ? "}" : "", s->count);
		}
	}
	pthread_mutex_unlock(&mu);
	*len = b.len;
	return b.buf;
}
