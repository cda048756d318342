/*
 * log.c - one-line structured logging (logfmt) to stderr.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *log_service = "fleet";
static log_level log_min = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

/* Set the service name and the lowest level written. */
void
log_init(const char *service, log_level min_level)
{
	log_service = service;
	log_min = min_level;
}

/* "debug", "info", "warn", "error" -> level; unknown -> info. */
log_level
log_parse_level(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (log_level) i;
	return LOG_INFO;
}

/* Append s to buf as a quoted logfmt value. */
static size_t
put_quoted(char *buf, size_t pos, size_t cap, const char *s)
{
	if (pos < cap)
		buf[pos++] = '"';
	for (; *s && pos + 2 < cap; s++)
	{
		if (*s == '"' || *s == '\\')
			buf[pos++] = '\\';
		if (*s == '\n')
		{
			buf[pos++] = '\\';
			buf[pos++] = 'n';
			continue;
		}
		buf[pos++] = *s;
	}
	if (pos < cap)
		buf[pos++] = '"';
	return pos;
}

/* Format and write one log line. */
void
log_msg(log_level level, const char *msg, const char *kvfmt, ...)
{
	char		buf[4096];
	size_t		pos;
	struct timespec ts;
	struct tm	tm;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	pos = strftime(buf, sizeof(buf), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	pos += snprintf(buf + pos, sizeof(buf) - pos, ".%03ldZ level=%s svc=%s msg=",
					ts.tv_nsec / 1000000, level_names[level], log_service);
	pos = put_quoted(buf, pos, sizeof(buf) - 2, msg);
	if (kvfmt && *kvfmt && pos < sizeof(buf) - 2)
	{
		va_list		ap;
		int			n;

		buf[pos++] = ' ';
		va_start(ap, kvfmt);
		n = vsnprintf(buf + pos, sizeof(buf) - pos - 1, kvfmt, ap);
		va_end(ap);
		if (n > 0)
			pos += (size_t) n < sizeof(buf) - pos - 1 ? (size_t) n : sizeof(buf) - pos - 2;
	}
	buf[pos++] = '\n';
	(void) !write(STDERR_FILENO, buf, pos);
}
