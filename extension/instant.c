/*-------------------------------------------------------------------------
 *
 * instant.c
 *	  Times that enter fleet from outside: RFC 3339 text and the window a
 *	  stored time must lie in.
 *
 * A time sent by a device, an app or a provider (fix times, occurred_at,
 * client_time, webhook times) is stored only when it is a finite instant
 * in the window [FLEET_EARLIEST_INSTANT, now + fleet.future_margin].  The
 * lower bound keeps out the dates a tracker without a GPS lock reports
 * (1970, 1980) and the extremes PostgreSQL accepts but figures cannot use;
 * the upper bound is the clock drift fleet tolerates.
 *
 * Text times must be RFC 3339 date-times, "2026-01-05T08:00:00Z" or with an
 * offset "+02:00", optional fraction (rounded down to microseconds), "T",
 * "t" or a space between date and time.  PostgreSQL's timestamptz input
 * also takes "yesterday", "infinity", "03/04/2026" (read by DateStyle) and
 * zone names, which are either not instants or mean different instants on
 * different servers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_parse_instant);

/* read exactly n digits */
static bool
digits(const char **p, int n, int *out)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		char		c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/*
 * Parse an RFC 3339 date-time; false when s is not one (or its instant is
 * outside what timestamptz holds).
 */
bool
FleetParseInstant(const char *s, TimestampTz *out)
{
	const char *p = s;
	struct pg_tm tm;
	fsec_t		fsec = 0;
	int			tz;
	int			oh,
				om,
				sign;
	Timestamp	result;

	memset(&tm, 0, sizeof(tm));
	if (!digits(&p, 4, &tm.tm_year) || *p++ != '-' ||
		!digits(&p, 2, &tm.tm_mon) || *p++ != '-' ||
		!digits(&p, 2, &tm.tm_mday))
		return false;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!digits(&p, 2, &tm.tm_hour) || *p++ != ':' ||
		!digits(&p, 2, &tm.tm_min) || *p++ != ':' ||
		!digits(&p, 2, &tm.tm_sec))
		return false;
	if (*p == '.')
	{
		int			scale = 100000;
		int			n = 0;

		p++;
		while (*p >= '0' && *p <= '9')
		{
			fsec += (*p - '0') * scale;
			scale /= 10;
			p++;
			n++;
		}
		if (n == 0)
			return false;
	}
	if (*p == 'Z' || *p == 'z')
	{
		tz = 0;
		p++;
	}
	else if (*p == '+' || *p == '-')
	{
		sign = *p++ == '-' ? -1 : 1;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
			return false;
		/* PostgreSQL counts zones in seconds west of Greenwich */
		tz = -sign * (oh * SECS_PER_HOUR + om * SECS_PER_MINUTE);
	}
	else
		return false;
	if (*p != '\0')
		return false;

	if (tm.tm_year < 1 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
		tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] ||
		tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
		return false;
	if (tm2timestamp(&tm, fsec, &tz, &result) != 0 || TIMESTAMP_NOT_FINITE(result) ||
		!IS_VALID_TIMESTAMP(result))
		return false;
	*out = result;
	return true;
}

/* FLEET_EARLIEST_INSTANT as a timestamptz */
TimestampTz
FleetEarliestInstant(void)
{
	/* 2000-01-01 00:00:00 UTC is PostgreSQL's timestamp zero */
	return (TimestampTz) 0;
}

/*
 * What keeps t out of the window [FLEET_EARLIEST_INSTANT, limit], limit
 * being now + fleet.future_margin (FleetLatestInstant): "not a finite
 * time", "before 2000-01-01T00:00:00Z", "later than now +
 * fleet.future_margin"; NULL when it is inside.
 */
const char *
FleetInstantFault(TimestampTz t, TimestampTz limit)
{
	if (TIMESTAMP_NOT_FINITE(t))
		return "not a finite time";
	if (t < FleetEarliestInstant())
		return "before " FLEET_EARLIEST_INSTANT;
	if (t > limit)
		return "later than now + fleet.future_margin";
	return NULL;
}

/* now + fleet.future_margin: the latest instant accepted from outside */
TimestampTz
FleetLatestInstant(void)
{
	return GetCurrentTimestamp() + (int64) fleet_future_margin_ms * 1000;
}

/*
 * fleet.parse_instant(t text) RETURNS timestamptz
 *
 * t as an RFC 3339 date-time; SQLSTATE 22007 when it is not one.  Whether
 * the instant lies in the accepted window is for the ingest that stores it.
 */
Datum
fleet_parse_instant(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz t;

	if (!FleetParseInstant(s, &t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("\"%s\" is not an RFC 3339 date-time", s),
				 errhint("Write an instant with its offset, for example 2026-01-05T08:00:00Z or 2026-01-05T10:00:00.5+02:00.")));
	PG_RETURN_TIMESTAMPTZ(t);
}
