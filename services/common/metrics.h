/*
 * metrics.h - counters, gauges and histograms rendered in the Prometheus
 * text exposition format (version 0.0.4).
 *
 * A family is registered once (name, help, type); its series are keyed by a
 * preformatted label string such as  route="/v1/push",code="200"  (use
 * metrics_escape() for label values that come from outside).  All calls are
 * thread-safe.
 */
#ifndef FLEET_METRICS_H
#define FLEET_METRICS_H

#include <stddef.h>

typedef struct metric_family metric_family;

metric_family *metrics_counter(const char *name, const char *help);
metric_family *metrics_gauge(const char *name, const char *help);
metric_family *metrics_histogram(const char *name, const char *help,
								 const double *bounds, int nbounds);

void metrics_add(metric_family *f, const char *labels, double v);
void metrics_set(metric_family *f, const char *labels, double v);
void metrics_observe(metric_family *f, const char *labels, double v);
double metrics_value(metric_family *f, const char *labels);

/* Escape a label value (\, " and newline) into out; returns out. */
char *metrics_escape(const char *in, char *out, size_t outlen);

/* Render every family; the caller frees the result. */
char *metrics_render(size_t *len);

/* Latency buckets in seconds, 1 ms .. 10 s. */
extern const double metrics_latency_bounds[];
extern const int metrics_latency_nbounds;

#endif
