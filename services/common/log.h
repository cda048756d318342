/*
 * log.h - one-line structured logging (logfmt) for fleet's services.
 *
 * Every line: ts=... level=... svc=... msg="..." followed by key=value
 * pairs.  Values with spaces or quotes are quoted and escaped.  Thread-safe:
 * a line is formatted into a buffer and written with one write(2).
 */
#ifndef FLEET_LOG_H
#define FLEET_LOG_H

#include <stdarg.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_init(const char *service, log_level min_level);
log_level log_parse_level(const char *s);

/*
 * log_msg(LOG_INFO, "batch committed", "rows=%d dur_ms=%.1f", n, ms)
 * The third argument is a printf format for the key=value tail (may be NULL).
 */
void log_msg(log_level level, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
