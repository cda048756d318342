/*
 * record.c - shared pieces of the gateway protocol layer: error names, the
 * bounded attribute-JSON writer, civil-time conversion, UTF-8 validation
 * and the two CRC-16 variants the binary protocols use.
 *
 * Nothing here allocates; the JSON writer appends to a caller-provided
 * arena and records overflow instead of writing past its end.
 */
#include "record.h"
#include "../common/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *
gw_strerror(gw_err e)
{
	switch (e)
	{
		case GW_OK:
			return "ok";
		case GW_NEED_MORE:
			return "need_more";
		case GW_ERR_TRUNCATED:
			return "truncated";
		case GW_ERR_BAD_LENGTH:
			return "bad_length";
		case GW_ERR_BAD_PREAMBLE:
			return "bad_preamble";
		case GW_ERR_BAD_START:
			return "bad_start";
		case GW_ERR_BAD_STOP:
			return "bad_stop";
		case GW_ERR_BAD_CRC:
			return "bad_crc";
		case GW_ERR_COUNT_MISMATCH:
			return "count_mismatch";
		case GW_ERR_UNKNOWN_CODEC:
			return "unknown_codec";
		case GW_ERR_UNKNOWN_TYPE:
			return "unknown_type";
		case GW_ERR_BAD_IMEI:
			return "bad_imei";
		case GW_ERR_BAD_FIELD:
			return "bad_field";
		case GW_ERR_MISSING_FIELD:
			return "missing_field";
		case GW_ERR_BAD_REQUEST:
			return "bad_request";
		case GW_ERR_BAD_METHOD:
			return "bad_method";
		case GW_ERR_TOO_MANY:
			return "too_many_records";
		case GW_ERR_NOSPACE:
			return "no_space";
	}
	return "unknown_error";
}

/* ---- JSON writer ----------------------------------------------------------- */

static void
put(gw_json *j, const char *s, size_t n)
{
	gw_arena   *a = j->arena;

	if (j->overflow)
		return;
	/* keep one byte for the terminating NUL */
	if (n >= a->cap - a->used)
	{
		j->overflow = true;
		return;
	}
	memcpy(a->buf + a->used, s, n);
	a->used += n;
}

static void
putc1(gw_json *j, char c)
{
	put(j, &c, 1);
}

static void
put_escaped(gw_json *j, const char *s, size_t len)
{
	static const char hexd[] = "0123456789abcdef";
	size_t		run = 0;

	putc1(j, '"');
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
		{
			run++;
			continue;
		}
		put(j, s + i - run, run);
		run = 0;
		if (c == '"')
			put(j, "\\\"", 2);
		else if (c == '\\')
			put(j, "\\\\", 2);
		else if (c == '\n')
			put(j, "\\n", 2);
		else if (c == '\r')
			put(j, "\\r", 2);
		else if (c == '\t')
			put(j, "\\t", 2);
		else
		{
			char		u[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};

			put(j, u, 6);
		}
	}
	put(j, s + len - run, run);
	putc1(j, '"');
}

static void
key(gw_json *j, const char *k, size_t klen)
{
	if (j->n++ > 0)
		putc1(j, ',');
	put_escaped(j, k, klen);
	putc1(j, ':');
}

void
gw_json_begin(gw_json *j, gw_arena *a)
{
	j->arena = a;
	j->start = a->used;
	j->n = 0;
	j->overflow = a->used >= a->cap;
	putc1(j, '{');
}

void
gw_json_int(gw_json *j, const char *k, int64_t v)
{
	char		b[24];
	int			n = snprintf(b, sizeof b, "%" PRId64, v);

	key(j, k, strlen(k));
	put(j, b, (size_t) n);
}

void
gw_json_uint(gw_json *j, const char *k, uint64_t v)
{
	char		b[24];
	int			n = snprintf(b, sizeof b, "%" PRIu64, v);

	key(j, k, strlen(k));
	put(j, b, (size_t) n);
}

void
gw_json_double(gw_json *j, const char *k, double v)
{
	char		b[32];
	int			n;

	if (!isfinite(v))
		return;
	n = snprintf(b, sizeof b, "%.15g", v);
	key(j, k, strlen(k));
	put(j, b, (size_t) n);
}

void
gw_json_bool(gw_json *j, const char *k, bool v)
{
	key(j, k, strlen(k));
	if (v)
		put(j, "true", 4);
	else
		put(j, "false", 5);
}

void
gw_json_str(gw_json *j, const char *k, const char *s, size_t len)
{
	key(j, k, strlen(k));
	put_escaped(j, s, len);
}

void
gw_json_strn(gw_json *j, const char *k, size_t klen, const char *s, size_t len)
{
	key(j, k, klen);
	put_escaped(j, s, len);
}

void
gw_json_hex(gw_json *j, const char *k, const uint8_t *p, size_t len)
{
	static const char hexd[] = "0123456789abcdef";
	char		b[64];
	size_t		n = 0;

	key(j, k, strlen(k));
	putc1(j, '"');
	for (size_t i = 0; i < len; i++)
	{
		b[n++] = hexd[p[i] >> 4];
		b[n++] = hexd[p[i] & 15];
		if (n == sizeof b)
		{
			put(j, b, n);
			n = 0;
		}
	}
	put(j, b, n);
	putc1(j, '"');
}

void
gw_json_raw(gw_json *j, const char *k, size_t klen, const char *v, size_t vlen)
{
	key(j, k, klen);
	put(j, v, vlen);
}

gw_err
gw_json_end(gw_json *j, gw_record *rec)
{
	gw_arena   *a = j->arena;

	putc1(j, '}');
	if (j->overflow)
	{
		/* roll back the partial object */
		if (j->start < a->cap)
			a->used = j->start;
		return GW_ERR_NOSPACE;
	}
	a->buf[a->used] = '\0';
	if (rec)
	{
		rec->attrs = a->buf + j->start;
		rec->attrs_len = a->used - j->start;
	}
	a->used++;					/* keep the NUL */
	return GW_OK;
}

/* ---- records and time ------------------------------------------------------ */

void
gw_record_clear(gw_record *r)
{
	memset(r, 0, sizeof *r);
	r->speed_kmh = NAN;
	r->heading = NAN;
	r->altitude = NAN;
	r->accuracy = NAN;
	r->seq = -1;
	r->attrs = "{}";
	r->attrs_len = 2;
}

/* Howard Hinnant's days_from_civil */
int64_t
gw_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t		era;
	unsigned	yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned) (y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t) doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

bool
gw_civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms, int64_t *out)
{
	if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
		h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60 || ms < 0 || ms > 999)
		return false;
	*out = ((gw_days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400 +
			 h * 3600 + mi * 60 + s) * 1000) + ms;
	return true;
}

bool
gw_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0;

	while (i < len)
	{
		size_t		k = utf8_seq(s, len, i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* ---- CRCs ------------------------------------------------------------------ */

uint16_t
gw_crc16_ibm(const uint8_t *p, size_t len)
{
	uint16_t	crc = 0;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t) ((crc >> 1) ^ 0xA001) : (uint16_t) (crc >> 1);
	}
	return crc;
}

uint16_t
gw_crc16_x25(const uint8_t *p, size_t len)
{
	uint16_t	crc = 0xFFFF;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t) ((crc >> 1) ^ 0x8408) : (uint16_t) (crc >> 1);
	}
	return (uint16_t) (crc ^ 0xFFFF);
}
