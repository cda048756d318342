/*
 * osmand.c - OsmAnd / Traccar Client HTTP request decoding (see osmand.h).
 *
 * Query strings and form bodies are split and URL-decoded here into bounded
 * stack buffers (no allocation); decoded text must be valid UTF-8 without
 * NUL so it can go into PostgreSQL text/jsonb unchanged.  JSON bodies are
 * parsed with jansson, which rejects invalid UTF-8, \u0000 and (with the
 * flag used here) duplicate keys.
 */
#include "osmand.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KNOT_KMH 1.852
#define MPS_KMH 3.6
#define MAX_TIME_MS INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */

int
osm_http_status(gw_err e)
{
	switch (e)
	{
		case GW_OK:
			return 200;
		case GW_ERR_BAD_METHOD:
			return 405;
		case GW_ERR_NOSPACE:
			return 500;
		default:
			return 400;
	}
}

size_t
osm_arena_bound(size_t target_len, size_t body_len)
{
	/* every input byte expands to at most 6 output bytes (\u00XX escape) */
	return 8 * (target_len + body_len) + 512;
}

/* ---- small text helpers ---------------------------------------------------- */

static bool
eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int
digits(const char *s, size_t n, size_t *pos, size_t count)
{
	int			v = 0;

	if (n - *pos < count)
		return -1;
	for (size_t i = 0; i < count; i++)
	{
		char		c = s[*pos + i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*pos += count;
	return v;
}

/* a plain decimal number, as strtod would take it but without hex/inf/nan */
static bool
parse_num(const char *s, size_t n, double *out)
{
	char		b[64];
	char	   *end;
	bool		dig = false;

	if (n == 0 || n >= sizeof b)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		c = s[i];

		if (c >= '0' && c <= '9')
			dig = true;
		else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
			return false;
	}
	if (!dig)
		return false;
	memcpy(b, s, n);
	b[n] = '\0';
	*out = strtod(b, &end);
	return end == b + n && isfinite(*out);
}

/*
 * s is a JSON number literal -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * that PostgreSQL's numeric takes: at most 40 characters and an exponent of
 * at most 1000 in magnitude stay far inside its range (131072 digits before
 * the point, 16383 after).  Anything else ("1e200000") becomes a string.
 */
static bool
json_number_literal(const char *s, size_t n)
{
	size_t		i = 0;
	int			exp = 0;

	if (n == 0 || n > 40)
		return false;
	if (s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return false;
	if (i < n && s[i] == '.')
	{
		size_t		d = ++i;

		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		d;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
		{
			if (exp <= 1000)
				exp = exp * 10 + (s[i] - '0');
			i++;
		}
		if (i == d || exp > 1000)
			return false;
	}
	return i == n;
}

bool
osm_parse_time(const char *s, size_t n, int64_t *ms)
{
	size_t		p = 0;
	int			y,
				mo,
				d,
				h,
				mi,
				sec = 0,
				frac = 0;
	int64_t		t;

	if (n == 0)
		return false;

	/* unix seconds or milliseconds, optionally with a fraction */
	if (s[0] >= '0' && s[0] <= '9')
	{
		size_t		i = 0;
		int64_t		v = 0;

		while (i < n && s[i] >= '0' && s[i] <= '9' && i < 16)
			v = v * 10 + (s[i++] - '0');
		if (i == n || s[i] == '.')
		{
			int			fms = 0,
						fd = 0;

			if (i < n)
			{
				size_t		f = ++i;

				while (i < n && s[i] >= '0' && s[i] <= '9')
				{
					if (fd < 3)
					{
						fms = fms * 10 + (s[i] - '0');
						fd++;
					}
					i++;
				}
				if (i == f || i != n)
					return false;
				while (fd < 3)
				{
					fms *= 10;
					fd++;
				}
			}
			if (v < INT64_C(2147483647))
				t = v * 1000 + fms;
			else
				t = v;
			if (t > MAX_TIME_MS)
				return false;
			*ms = t;
			return true;
		}
	}

	/* yyyy-MM-dd[T ]HH:mm[:ss[.fff]][Z|+HH[:]MM|+HH] */
	if ((y = digits(s, n, &p, 4)) < 0 || p >= n || s[p++] != '-' ||
		(mo = digits(s, n, &p, 2)) < 0 || p >= n || s[p++] != '-' ||
		(d = digits(s, n, &p, 2)) < 0 || p >= n ||
		(s[p] != 'T' && s[p] != 't' && s[p] != ' '))
		return false;
	p++;
	if ((h = digits(s, n, &p, 2)) < 0 || p >= n || s[p++] != ':' ||
		(mi = digits(s, n, &p, 2)) < 0)
		return false;
	if (p < n && s[p] == ':')
	{
		p++;
		if ((sec = digits(s, n, &p, 2)) < 0)
			return false;
		if (p < n && (s[p] == '.' || s[p] == ','))
		{
			size_t		f = ++p;
			int			fd = 0;

			while (p < n && s[p] >= '0' && s[p] <= '9')
			{
				if (fd < 3)
				{
					frac = frac * 10 + (s[p] - '0');
					fd++;
				}
				p++;
			}
			if (p == f)
				return false;
			while (fd < 3)
			{
				frac *= 10;
				fd++;
			}
		}
	}
	if (sec == 60)
		sec = 59;				/* leap second: clamp */
	if (!gw_civil_to_ms(y, mo, d, h, mi, sec, frac, &t))
		return false;
	if (p < n)
	{
		if ((s[p] == 'Z' || s[p] == 'z') && p + 1 == n)
			p++;
		else if (s[p] == '+' || s[p] == '-')
		{
			int			sign = s[p++] == '-' ? -1 : 1;
			int			oh,
						om = 0;

			if ((oh = digits(s, n, &p, 2)) < 0 || oh > 23)
				return false;
			if (p < n && s[p] == ':')
				p++;
			if (p < n && (om = digits(s, n, &p, 2)) < 0)
				return false;
			if (om > 59)
				return false;
			t -= (int64_t) sign * (oh * 60 + om) * 60000;
		}
		if (p != n)
			return false;
	}
	if (t > MAX_TIME_MS)
		return false;
	*ms = t;
	return true;
}

/* ---- record builder --------------------------------------------------------- */

typedef struct
{
	gw_record  *rec;
	gw_json		j;
	bool		have_id,
				have_lat,
				have_lon,
				have_time;
} builder;

static void
b_begin(builder *b, gw_record *rec, gw_arena *arena)
{
	memset(b, 0, sizeof *b);
	b->rec = rec;
	gw_record_clear(rec);
	rec->valid = true;
	gw_json_begin(&b->j, arena);
}

static gw_err
b_set_id(builder *b, const char *v, size_t n)
{
	if (n == 0 || n > GW_DEVICE_MAX)
		return GW_ERR_BAD_FIELD;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char) v[i] < 0x20 || v[i] == 0x7F)
			return GW_ERR_BAD_FIELD;
	if (!gw_utf8_valid(v, n))
		return GW_ERR_BAD_FIELD;
	memcpy(b->rec->device, v, n);
	b->rec->device[n] = '\0';
	b->have_id = true;
	return GW_OK;
}

static gw_err
b_set_lat(builder *b, double v)
{
	if (!isfinite(v) || v < -90.0 || v > 90.0)
		return GW_ERR_BAD_FIELD;
	b->rec->lat = v;
	b->have_lat = true;
	return GW_OK;
}

static gw_err
b_set_lon(builder *b, double v)
{
	if (!isfinite(v) || v < -180.0 || v > 180.0)
		return GW_ERR_BAD_FIELD;
	b->rec->lon = v;
	b->have_lon = true;
	return GW_OK;
}

static void
b_set_heading(builder *b, double v)
{
	b->rec->heading = (isfinite(v) && v >= 0) ? fmod(v, 360.0) : NAN;
}

static gw_err
b_end(builder *b)
{
	if (!b->have_id || !b->have_lat || !b->have_lon)
	{
		(void) gw_json_end(&b->j, NULL);	/* caller rolls the arena back */
		return GW_ERR_MISSING_FIELD;
	}
	return gw_json_end(&b->j, b->rec);
}

/* ---- query string / form parameters --------------------------------------- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* URL-decode s[0..n) into out (cap bytes); '+' is a space */
static gw_err
url_decode(const char *s, size_t n, char *out, size_t cap, size_t *outlen)
{
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		char		c = s[i];

		if (o >= cap)
			return GW_ERR_BAD_REQUEST;
		if (c == '%')
		{
			int			hi,
						lo;

			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
				return GW_ERR_BAD_REQUEST;
			c = (char) (hi * 16 + lo);
			i += 2;
		}
		else if (c == '+')
			c = ' ';
		if (c == '\0')
			return GW_ERR_BAD_REQUEST;
		out[o++] = c;
	}
	if (!gw_utf8_valid(out, o))
		return GW_ERR_BAD_REQUEST;
	*outlen = o;
	return GW_OK;
}

static bool
truthy(const char *v, size_t n)
{
	return eq(v, n, "true") || eq(v, n, "1");
}

static gw_err
handle_param(builder *b, const char *k, size_t kl, const char *v, size_t vl)
{
	double		x;
	gw_record  *r = b->rec;

	if (eq(k, kl, "id") || eq(k, kl, "deviceid"))
		return b_set_id(b, v, vl);
	if (eq(k, kl, "lat"))
		return parse_num(v, vl, &x) ? b_set_lat(b, x) : GW_ERR_BAD_FIELD;
	if (eq(k, kl, "lon"))
		return parse_num(v, vl, &x) ? b_set_lon(b, x) : GW_ERR_BAD_FIELD;
	if (eq(k, kl, "location"))
	{
		const char *comma = memchr(v, ',', vl);
		double		la,
					lo;
		gw_err		e;

		if (!comma || !parse_num(v, (size_t) (comma - v), &la) ||
			!parse_num(comma + 1, vl - (size_t) (comma - v) - 1, &lo))
			return GW_ERR_BAD_FIELD;
		if ((e = b_set_lat(b, la)) != GW_OK)
			return e;
		return b_set_lon(b, lo);
	}
	if (eq(k, kl, "timestamp"))
	{
		if (!osm_parse_time(v, vl, &r->time_ms))
			return GW_ERR_BAD_FIELD;
		b->have_time = true;
		return GW_OK;
	}
	if (eq(k, kl, "valid"))
	{
		r->valid = truthy(v, vl);
		return GW_OK;
	}
	if (eq(k, kl, "speed"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		r->speed_kmh = x >= 0 ? x * KNOT_KMH : NAN;
		return GW_OK;
	}
	if (eq(k, kl, "bearing") || eq(k, kl, "heading"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		b_set_heading(b, x);
		return GW_OK;
	}
	if (eq(k, kl, "altitude"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		r->altitude = x;
		return GW_OK;
	}
	if (eq(k, kl, "accuracy"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		r->accuracy = x >= 0 ? x : NAN;
		return GW_OK;
	}
	if (eq(k, kl, "hdop"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		gw_json_double(&b->j, "hdop", x);
		return GW_OK;
	}
	if (eq(k, kl, "batt"))
	{
		if (!parse_num(v, vl, &x))
			return GW_ERR_BAD_FIELD;
		gw_json_double(&b->j, "batteryLevel", x);
		return GW_OK;
	}
	if (eq(k, kl, "charge"))
	{
		gw_json_bool(&b->j, "charge", truthy(v, vl));
		return GW_OK;
	}
	/* anything else: number, boolean or string attribute */
	if (json_number_literal(v, vl))
		gw_json_raw(&b->j, k, kl, v, vl);
	else if (eq(v, vl, "true") || eq(v, vl, "false"))
		gw_json_raw(&b->j, k, kl, v, vl);
	else
		gw_json_strn(&b->j, k, kl, v, vl);
	return GW_OK;
}

/* split "k=v&k2=v2" and feed each decoded pair to handle_param */
static gw_err
parse_params(builder *b, const char *s, size_t n)
{
	size_t		i = 0;
	char		kbuf[OSM_MAX_KEY];
	char		vbuf[OSM_MAX_VALUE];

	while (i < n)
	{
		size_t		start = i,
					eqpos,
					kl,
					vl;
		const char *amp = memchr(s + i, '&', n - i);
		size_t		end = amp ? (size_t) (amp - s) : n;
		const char *eqp;
		gw_err		e;

		i = end + 1;
		if (end == start)
			continue;
		eqp = memchr(s + start, '=', end - start);
		eqpos = eqp ? (size_t) (eqp - s) : end;
		if (eqpos == start)
			return GW_ERR_BAD_REQUEST;	/* "=value" with no name */
		if ((e = url_decode(s + start, eqpos - start, kbuf, sizeof kbuf, &kl)) != GW_OK)
			return e;
		if (kl == 0)
			return GW_ERR_BAD_REQUEST;
		vl = 0;
		if (eqp && (e = url_decode(s + eqpos + 1, end - eqpos - 1, vbuf, sizeof vbuf, &vl)) != GW_OK)
			return e;
		if ((e = handle_param(b, kbuf, kl, vbuf, vl)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* ---- JSON (Traccar Client) -------------------------------------------------- */

static bool
jnum(json_t *v, double *out)
{
	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return isfinite(*out);
}

static void
attr_scalar(builder *b, const char *k, json_t *v)
{
	if (json_is_integer(v))
		gw_json_int(&b->j, k, json_integer_value(v));
	else if (json_is_real(v))
		gw_json_double(&b->j, k, json_real_value(v));
	else if (json_is_boolean(v))
		gw_json_bool(&b->j, k, json_is_true(v));
	else if (json_is_string(v))
		gw_json_str(&b->j, k, json_string_value(v), json_string_length(v));
}

static gw_err
json_location(builder *b, json_t *loc, json_t *root)
{
	json_t	   *v,
			   *coords;
	double		x;
	gw_err		e;

	if (!json_is_object(loc))
		return GW_ERR_BAD_REQUEST;

	v = json_object_get(root, "device_id");
	if (!v)
		v = json_object_get(root, "id");
	if (json_is_string(v))
	{
		if ((e = b_set_id(b, json_string_value(v), json_string_length(v))) != GW_OK)
			return e;
	}
	else if (json_is_integer(v))
	{
		char		idb[24];
		int			n = snprintf(idb, sizeof idb, "%lld", (long long) json_integer_value(v));

		if ((e = b_set_id(b, idb, (size_t) n)) != GW_OK)
			return e;
	}
	else if (v)
		return GW_ERR_BAD_FIELD;

	if ((v = json_object_get(loc, "timestamp")) != NULL)
	{
		if (json_is_string(v))
		{
			if (!osm_parse_time(json_string_value(v), json_string_length(v), &b->rec->time_ms))
				return GW_ERR_BAD_FIELD;
		}
		else if (json_is_integer(v))
		{
			char		tb[24];
			int			n = snprintf(tb, sizeof tb, "%lld", (long long) json_integer_value(v));

			if (!osm_parse_time(tb, (size_t) n, &b->rec->time_ms))
				return GW_ERR_BAD_FIELD;
		}
		else
			return GW_ERR_BAD_FIELD;
		b->have_time = true;
	}

	coords = json_object_get(loc, "coords");
	if (!json_is_object(coords))
		return GW_ERR_MISSING_FIELD;
	if ((v = json_object_get(coords, "latitude")) != NULL)
	{
		if (!jnum(v, &x) || (e = b_set_lat(b, x)) != GW_OK)
			return GW_ERR_BAD_FIELD;
	}
	if ((v = json_object_get(coords, "longitude")) != NULL)
	{
		if (!jnum(v, &x) || (e = b_set_lon(b, x)) != GW_OK)
			return GW_ERR_BAD_FIELD;
	}
	if ((v = json_object_get(coords, "accuracy")) != NULL && jnum(v, &x) && x >= 0)
		b->rec->accuracy = x;
	if ((v = json_object_get(coords, "speed")) != NULL && jnum(v, &x) && x >= 0)
		b->rec->speed_kmh = x * MPS_KMH;
	if ((v = json_object_get(coords, "heading")) != NULL && jnum(v, &x))
		b_set_heading(b, x);
	if ((v = json_object_get(coords, "altitude")) != NULL && jnum(v, &x))
		b->rec->altitude = x;

	if ((v = json_object_get(loc, "event")) != NULL && json_is_string(v))
		attr_scalar(b, "event", v);
	if ((v = json_object_get(loc, "is_moving")) != NULL && json_is_boolean(v))
		attr_scalar(b, "motion", v);
	if ((v = json_object_get(loc, "odometer")) != NULL && json_is_number(v))
		attr_scalar(b, "odometer", v);
	if ((v = json_object_get(loc, "mock")) != NULL && json_is_boolean(v))
		attr_scalar(b, "mock", v);
	if ((v = json_object_get(loc, "activity")) != NULL && json_is_object(v))
	{
		json_t	   *t = json_object_get(v, "type");

		if (json_is_string(t))
			attr_scalar(b, "activity", t);
	}
	if ((v = json_object_get(loc, "battery")) != NULL && json_is_object(v))
	{
		json_t	   *lv = json_object_get(v, "level"),
				   *ch = json_object_get(v, "is_charging");

		if (jnum(lv, &x) && x >= 0)
			gw_json_int(&b->j, "batteryLevel", (int64_t) llround(fmin(x, 1.0) * 100));
		if (json_is_boolean(ch))
			attr_scalar(b, "charge", ch);
	}
	if ((v = json_object_get(loc, "extras")) != NULL && json_is_object(v))
	{
		const char *k;
		json_t	   *ev;

		json_object_foreach(v, k, ev)
		{
			if (json_is_boolean(ev) || json_is_number(ev) || json_is_string(ev))
				attr_scalar(b, k, ev);
		}
	}
	return GW_OK;
}

static gw_err
decode_json(const char *body, size_t body_len, int64_t now_ms, gw_record *recs,
			size_t max_recs, gw_arena *arena, size_t *nrec)
{
	json_error_t jerr;
	json_t	   *root = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
	json_t	   *loc;
	gw_err		e = GW_OK;
	size_t		n = 0,
				mark = arena->used;

	if (!root)
		return GW_ERR_BAD_REQUEST;
	if (!json_is_object(root))
	{
		json_decref(root);
		return GW_ERR_BAD_REQUEST;
	}
	loc = json_object_get(root, "location");
	if (json_is_object(loc))
	{
		if (max_recs < 1)
			e = GW_ERR_TOO_MANY;
		else
		{
			builder		b;

			b_begin(&b, &recs[0], arena);
			e = json_location(&b, loc, root);
			if (e == GW_OK)
			{
				if (!b.have_time)
					recs[0].time_ms = now_ms;
				e = b_end(&b);
			}
			n = 1;
		}
	}
	else if (json_is_array(loc) && json_array_size(loc) > 0)
	{
		size_t		i;
		json_t	   *el;

		if (json_array_size(loc) > max_recs)
			e = GW_ERR_TOO_MANY;
		else
			json_array_foreach(loc, i, el)
		{
			builder		b;

			b_begin(&b, &recs[i], arena);
			e = json_location(&b, el, root);
			if (e == GW_OK)
			{
				if (!b.have_time)
					recs[i].time_ms = now_ms;
				e = b_end(&b);
			}
			if (e != GW_OK)
				break;
			n++;
		}
	}
	else
		e = loc ? GW_ERR_BAD_REQUEST : GW_ERR_MISSING_FIELD;
	json_decref(root);
	if (e != GW_OK)
	{
		arena->used = mark;
		return e;
	}
	*nrec = n;
	return GW_OK;
}

/* ---- entry point --------------------------------------------------------------- */

static bool
ctype_is(const char *ct, const char *what)
{
	size_t		n = strlen(what);

	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, what, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static bool
looks_json(const char *body, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		if (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')
			continue;
		return body[i] == '{' || body[i] == '[';
	}
	return false;
}

gw_err
osm_decode(const char *method, const char *target, size_t target_len,
		   const char *content_type, const char *body, size_t body_len,
		   int64_t now_ms, gw_record *recs, size_t max_recs,
		   gw_arena *arena, osm_result *res)
{
	gw_err		e;
	size_t		mark = arena->used;

	memset(res, 0, sizeof *res);
	if (!body)
		body_len = 0;
	if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0))
		e = GW_ERR_BAD_METHOD;
	else if (body_len > 0 && (ctype_is(content_type, "application/json") ||
							  ((!content_type || !*content_type) && looks_json(body, body_len))))
		e = decode_json(body, body_len, now_ms, recs, max_recs, arena, &res->n_records);
	else if (max_recs < 1)
		e = GW_ERR_TOO_MANY;
	else if (body_len > 0 && content_type && *content_type &&
			 !ctype_is(content_type, "application/x-www-form-urlencoded") &&
			 !ctype_is(content_type, "text/plain"))
		e = GW_ERR_BAD_REQUEST;
	else
	{
		builder		b;
		const char *q = target ? memchr(target, '?', target_len) : NULL;

		b_begin(&b, &recs[0], arena);
		e = GW_OK;
		if (q)
		{
			size_t		qs = (size_t) (q - target) + 1;
			const char *hash = memchr(target + qs, '#', target_len - qs);
			size_t		qe = hash ? (size_t) (hash - target) : target_len;

			e = parse_params(&b, target + qs, qe - qs);
		}
		if (e == GW_OK && body_len > 0)
			e = parse_params(&b, body, body_len);
		if (e == GW_OK)
		{
			if (!b.have_time)
				recs[0].time_ms = now_ms;
			e = b_end(&b);
		}
		else
			(void) gw_json_end(&b.j, NULL);
		if (e == GW_OK)
			res->n_records = 1;
	}
	if (e != GW_OK)
	{
		arena->used = mark;
		res->n_records = 0;
	}
	res->http_status = osm_http_status(e);
	return e;
}
