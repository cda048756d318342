/*-------------------------------------------------------------------------
 *
 * coldcodec.c
 *	  fleet's cold formats for GPS fixes and for the event log: delta-encoded
 *	  columns, zlib (the event format is described above its functions).
 *
 * fleet.cold_encode(fix_time[], lat[], lon[], speed[], heading[], altitude[],
 * accuracy[], seq[], attrs[], received_at[]) packs the fixes of one
 * (tenant, device, vehicle, day) -- sorted by fix time -- into one bytea;
 * fleet.cold_decode(bytea) returns them as rows again, bit for bit.
 *
 * Layout: "FCD1", row count (u32), raw payload length (u32), then the
 * zlib-compressed payload, one column after the other:
 *	 fix_time	 microseconds, delta of delta, zigzag varints;
 *	 lat, lon	 mode byte 1: every value is an exact 1e-7 decimal: scaled
 *				 integers, delta, zigzag varints; mode 0: IEEE bits XOR the
 *				 previous value's bits, varints;
 *	 real cols	 null map, then mode 1: exact 1e-2 decimals as scaled deltas,
 *				 mode 0: IEEE bits XOR previous, varints;
 *	 seq		 null map, delta zigzag varints;
 *	 attrs		 null map, jsonb text with varint lengths;
 *	 received_at microseconds after fix_time, zigzag varints.
 * A null map is one byte: 0 no nulls, 1 all null, 2 a bitmap follows.
 * "Exact" is checked value by value with the decoder's own arithmetic, so
 * the round trip is lossless whatever the data; realistic telemetry takes
 * the scaled path and packs to a few bytes per fix.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <zlib.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_cold_encode);
PG_FUNCTION_INFO_V1(fleet_cold_decode);

#define COLD_MAGIC		"FCD1"
#define COLD_HEADER		12
#define NCOLS			10

enum
{
	C_FIX, C_LAT, C_LON, C_SPEED, C_HEADING, C_ALT, C_ACC, C_SEQ, C_ATTRS, C_RECV
};

static const Oid col_types[NCOLS] = {
	TIMESTAMPTZOID, FLOAT8OID, FLOAT8OID, FLOAT4OID, FLOAT4OID, FLOAT4OID,
	FLOAT4OID, INT8OID, JSONBOID, TIMESTAMPTZOID
};

static const char *const col_names[NCOLS] = {
	"fix_time", "lat", "lon", "speed", "heading", "altitude", "accuracy",
	"seq", "attrs", "received_at"
};

/* ---------- primitive writers and readers ---------- */

static inline uint64
zigzag(int64 v)
{
	return ((uint64) v << 1) ^ (uint64) (v >> 63);
}

static inline int64
unzigzag(uint64 v)
{
	return (int64) (v >> 1) ^ -(int64) (v & 1);
}

static void
put_varint(StringInfo s, uint64 v)
{
	while (v >= 0x80)
	{
		appendStringInfoChar(s, (char) ((v & 0x7F) | 0x80));
		v >>= 7;
	}
	appendStringInfoChar(s, (char) v);
}

typedef struct Reader
{
	const unsigned char *p;
	const unsigned char *end;
} Reader;

static void
corrupt(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupt cold segment: %s", what)));
}

static uint64
get_varint(Reader *r)
{
	uint64		v = 0;
	int			shift = 0;

	for (;;)
	{
		unsigned char b;

		if (r->p >= r->end || shift > 63)
			corrupt("truncated varint");
		b = *r->p++;
		v |= (uint64) (b & 0x7F) << shift;
		if (!(b & 0x80))
			return v;
		shift += 7;
	}
}

static unsigned char
get_byte(Reader *r)
{
	if (r->p >= r->end)
		corrupt("truncated column");
	return *r->p++;
}

/* a length-prefixed string */
static void
put_text(StringInfo s, const char *p, size_t len)
{
	put_varint(s, len);
	appendBinaryStringInfo(s, p, len);
}

static char *
get_text(Reader *r, const char *what)
{
	uint64		l = get_varint(r);
	char	   *out;

	if (l > (uint64) (r->end - r->p))
		corrupt(what);
	out = pnstrdup((const char *) r->p, l);
	r->p += l;
	return out;
}

/* ---------- segment envelope: magic, row count, raw length, zlib ---------- */

static bytea *
seal_segment(StringInfo s, const char *magic, uint32 n)
{
	uLongf		clen = compressBound(s->len);
	bytea	   *out = palloc(VARHDRSZ + COLD_HEADER + clen);
	uint32		l = (uint32) s->len;

	if (compress2((Bytef *) VARDATA(out) + COLD_HEADER, &clen,
				  (const Bytef *) s->data, s->len, Z_BEST_COMPRESSION) != Z_OK)
		elog(ERROR, "zlib compress2 failed");
	memcpy(VARDATA(out), magic, 4);
	memcpy(VARDATA(out) + 4, &n, 4);
	memcpy(VARDATA(out) + 8, &l, 4);
	SET_VARSIZE(out, VARHDRSZ + COLD_HEADER + clen);
	return out;
}

/* check the envelope, inflate the body into *r; returns the row count */
static uint32
open_segment(bytea *seg, const char *magic, Reader *r)
{
	const char *data = VARDATA_ANY(seg);
	Size		len = VARSIZE_ANY_EXHDR(seg);
	uint32		n;
	uint32		rawlen;
	uLongf		got;
	unsigned char *raw;

	if (len < COLD_HEADER || memcmp(data, magic, 4) != 0)
		corrupt("bad header");
	memcpy(&n, data + 4, 4);
	memcpy(&rawlen, data + 8, 4);
	if (n == 0 || n > 100000000 || rawlen > MaxAllocSize)
		corrupt("bad sizes");
	raw = palloc(rawlen + 1);
	got = rawlen;
	if (uncompress(raw, &got, (const Bytef *) data + COLD_HEADER, len - COLD_HEADER) != Z_OK ||
		got != rawlen)
		corrupt("zlib stream does not inflate to the recorded length");
	r->p = raw;
	r->end = raw + rawlen;
	return n;
}

/* ---------- null maps ---------- */

static void
put_nulls(StringInfo s, bool *nulls, int n)
{
	int			k = 0;
	int			i;

	for (i = 0; i < n; i++)
		k += nulls[i] ? 1 : 0;
	if (k == 0)
		appendStringInfoChar(s, 0);
	else if (k == n)
		appendStringInfoChar(s, 1);
	else
	{
		appendStringInfoChar(s, 2);
		for (i = 0; i < n; i += 8)
		{
			unsigned char b = 0;
			int			j;

			for (j = 0; j < 8 && i + j < n; j++)
				if (nulls[i + j])
					b |= 1 << j;
			appendStringInfoChar(s, (char) b);
		}
	}
}

static void
get_nulls(Reader *r, bool *nulls, int n)
{
	unsigned char mode = get_byte(r);
	int			i;

	if (mode == 0 || mode == 1)
	{
		for (i = 0; i < n; i++)
			nulls[i] = (mode == 1);
		return;
	}
	if (mode != 2)
		corrupt("bad null map");
	for (i = 0; i < n; i += 8)
	{
		unsigned char b = get_byte(r);
		int			j;

		for (j = 0; j < 8 && i + j < n; j++)
			nulls[i + j] = (b >> j) & 1;
	}
}

/* ---------- float columns ---------- */

static inline double
unscale8(int64 q)
{
	return (double) q / 1e7;
}

static inline float
unscale4(int64 q)
{
	return (float) ((double) q / 100.0);
}

static void
put_float8(StringInfo s, Datum *v, bool *nulls, int n)
{
	bool		scaled = true;
	int			i;

	for (i = 0; i < n && scaled; i++)
	{
		double		x;
		double		q;

		if (nulls[i])
			continue;
		x = DatumGetFloat8(v[i]);
		q = rint(x * 1e7);
		if (!isfinite(x) || fabs(q) > 4.0e15)
			scaled = false;
		else
		{
			double		back = unscale8((int64) q);

			scaled = memcmp(&back, &x, sizeof(double)) == 0;
		}
	}
	appendStringInfoChar(s, scaled ? 1 : 0);
	if (scaled)
	{
		int64		prev = 0;

		for (i = 0; i < n; i++)
		{
			int64		q;

			if (nulls[i])
				continue;
			q = (int64) rint(DatumGetFloat8(v[i]) * 1e7);
			put_varint(s, zigzag(q - prev));
			prev = q;
		}
	}
	else
	{
		uint64		prev = 0;

		for (i = 0; i < n; i++)
		{
			double		x;
			uint64		bits;

			if (nulls[i])
				continue;
			x = DatumGetFloat8(v[i]);
			memcpy(&bits, &x, sizeof(bits));
			put_varint(s, bits ^ prev);
			prev = bits;
		}
	}
}

static void
get_float8(Reader *r, Datum *v, bool *nulls, int n)
{
	unsigned char mode = get_byte(r);
	int			i;

	if (mode > 1)
		corrupt("bad float mode");
	if (mode == 1)
	{
		int64		prev = 0;

		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				continue;
			prev += unzigzag(get_varint(r));
			v[i] = Float8GetDatum(unscale8(prev));
		}
	}
	else
	{
		uint64		prev = 0;

		for (i = 0; i < n; i++)
		{
			double		x;

			if (nulls[i])
				continue;
			prev ^= get_varint(r);
			memcpy(&x, &prev, sizeof(x));
			v[i] = Float8GetDatum(x);
		}
	}
}

static void
put_float4(StringInfo s, Datum *v, bool *nulls, int n)
{
	bool		scaled = true;
	int			i;

	put_nulls(s, nulls, n);
	for (i = 0; i < n && scaled; i++)
	{
		float		x;
		double		q;

		if (nulls[i])
			continue;
		x = DatumGetFloat4(v[i]);
		q = rint((double) x * 100.0);
		if (!isfinite(x) || fabs(q) > 1.0e15)
			scaled = false;
		else
		{
			float		back = unscale4((int64) q);

			scaled = memcmp(&back, &x, sizeof(float)) == 0;
		}
	}
	appendStringInfoChar(s, scaled ? 1 : 0);
	if (scaled)
	{
		int64		prev = 0;

		for (i = 0; i < n; i++)
		{
			int64		q;

			if (nulls[i])
				continue;
			q = (int64) rint((double) DatumGetFloat4(v[i]) * 100.0);
			put_varint(s, zigzag(q - prev));
			prev = q;
		}
	}
	else
	{
		uint32		prev = 0;

		for (i = 0; i < n; i++)
		{
			float		x;
			uint32		bits;

			if (nulls[i])
				continue;
			x = DatumGetFloat4(v[i]);
			memcpy(&bits, &x, sizeof(bits));
			put_varint(s, bits ^ prev);
			prev = bits;
		}
	}
}

static void
get_float4(Reader *r, Datum *v, bool *nulls, int n)
{
	unsigned char mode;
	int			i;

	get_nulls(r, nulls, n);
	mode = get_byte(r);
	if (mode > 1)
		corrupt("bad float mode");
	if (mode == 1)
	{
		int64		prev = 0;

		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				continue;
			prev += unzigzag(get_varint(r));
			v[i] = Float4GetDatum(unscale4(prev));
		}
	}
	else
	{
		uint32		prev = 0;

		for (i = 0; i < n; i++)
		{
			float		x;
			uint64		d;

			if (nulls[i])
				continue;
			d = get_varint(r);
			if (d > PG_UINT32_MAX)
				corrupt("bad float4 bits");
			prev ^= (uint32) d;
			memcpy(&x, &prev, sizeof(x));
			v[i] = Float4GetDatum(x);
		}
	}
}

/* ---------- argument handling ---------- */

static void
deconstruct_col(ArrayType *a, int c, int *n, Datum **v, bool **nulls)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			count;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", col_names[c])));
	if (ARR_ELEMTYPE(a) != col_types[c])
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s has the wrong element type", col_names[c])));
	get_typlenbyvalalign(col_types[c], &typlen, &typbyval, &typalign);
	deconstruct_array(a, col_types[c], typlen, typbyval, typalign, v, nulls, &count);
	if (*n >= 0 && count != *n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("cold_encode arrays must have equal length"),
				 errdetail("%s has %d elements, expected %d.", col_names[c], count, *n)));
	*n = count;
}

/*
 * fleet.cold_encode(...) RETURNS bytea
 */
Datum
fleet_cold_encode(PG_FUNCTION_ARGS)
{
	Datum	   *v[NCOLS];
	bool	   *nl[NCOLS];
	int			n = -1;
	int			c;
	int			i;
	StringInfoData s;
	int64		prev_t = 0;
	int64		prev_d = 0;
	int64		prev_seq = 0;

	for (c = 0; c < NCOLS; c++)
	{
		if (PG_ARGISNULL(c))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cold_encode: %s must not be NULL", col_names[c])));
		deconstruct_col(PG_GETARG_ARRAYTYPE_P(c), c, &n, &v[c], &nl[c]);
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cold_encode needs at least one fix")));
	for (i = 0; i < n; i++)
		if (nl[C_FIX][i] || nl[C_LAT][i] || nl[C_LON][i] || nl[C_RECV][i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cold_encode: fix_time, lat, lon and received_at must not contain NULL"),
					 errdetail("Element %d has a NULL.", i + 1)));

	initStringInfo(&s);
	/* fix_time: delta of delta */
	for (i = 0; i < n; i++)
	{
		int64		t = DatumGetTimestampTz(v[C_FIX][i]);
		int64		d = t - prev_t;

		put_varint(&s, zigzag(i == 0 ? t : d - prev_d));
		prev_d = (i == 0) ? 0 : d;
		prev_t = t;
	}
	put_float8(&s, v[C_LAT], nl[C_LAT], n);
	put_float8(&s, v[C_LON], nl[C_LON], n);
	for (c = C_SPEED; c <= C_ACC; c++)
		put_float4(&s, v[c], nl[c], n);
	put_nulls(&s, nl[C_SEQ], n);
	for (i = 0; i < n; i++)
	{
		int64		q;

		if (nl[C_SEQ][i])
			continue;
		q = DatumGetInt64(v[C_SEQ][i]);
		put_varint(&s, zigzag(q - prev_seq));
		prev_seq = q;
	}
	put_nulls(&s, nl[C_ATTRS], n);
	for (i = 0; i < n; i++)
	{
		char	   *txt;

		if (nl[C_ATTRS][i])
			continue;
		txt = DatumGetCString(DirectFunctionCall1(jsonb_out, v[C_ATTRS][i]));
		put_text(&s, txt, strlen(txt));
	}
	for (i = 0; i < n; i++)
		put_varint(&s, zigzag(DatumGetTimestampTz(v[C_RECV][i]) - DatumGetTimestampTz(v[C_FIX][i])));

	PG_RETURN_BYTEA_P(seal_segment(&s, COLD_MAGIC, (uint32) n));
}

/*
 * fleet.cold_decode(segment bytea) RETURNS TABLE (fix_time, lat, lon, speed,
 *		heading, altitude, accuracy, seq, attrs, received_at)
 */
Datum
fleet_cold_decode(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *seg = PG_GETARG_BYTEA_PP(0);
	uint32		n;
	Reader		r;
	Datum	   *v[NCOLS];
	bool	   *nl[NCOLS];
	int			c;
	int			i;
	int64		t = 0;
	int64		d = 0;
	int64		seq = 0;

	InitMaterializedSRF(fcinfo, 0);
	n = open_segment(seg, COLD_MAGIC, &r);

	for (c = 0; c < NCOLS; c++)
	{
		v[c] = palloc0(sizeof(Datum) * n);
		nl[c] = palloc0(sizeof(bool) * n);
	}
	for (i = 0; i < (int) n; i++)
	{
		int64		z = unzigzag(get_varint(&r));

		if (i == 0)
			t = z;
		else
		{
			d += z;
			t += d;
		}
		v[C_FIX][i] = TimestampTzGetDatum(t);
	}
	get_float8(&r, v[C_LAT], nl[C_LAT], n);
	get_float8(&r, v[C_LON], nl[C_LON], n);
	for (c = C_SPEED; c <= C_ACC; c++)
		get_float4(&r, v[c], nl[c], n);
	get_nulls(&r, nl[C_SEQ], n);
	for (i = 0; i < (int) n; i++)
	{
		if (nl[C_SEQ][i])
			continue;
		seq += unzigzag(get_varint(&r));
		v[C_SEQ][i] = Int64GetDatum(seq);
	}
	get_nulls(&r, nl[C_ATTRS], n);
	for (i = 0; i < (int) n; i++)
	{
		if (nl[C_ATTRS][i])
			continue;
		v[C_ATTRS][i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(get_text(&r, "truncated attrs")));
	}
	for (i = 0; i < (int) n; i++)
		v[C_RECV][i] = TimestampTzGetDatum(DatumGetTimestampTz(v[C_FIX][i]) + unzigzag(get_varint(&r)));
	if (r.p != r.end)
		corrupt("trailing bytes");

	for (i = 0; i < (int) n; i++)
	{
		Datum		row[NCOLS];
		bool		rn[NCOLS];

		for (c = 0; c < NCOLS; c++)
		{
			row[c] = v[c][i];
			rn[c] = nl[c][i];
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rn);
	}
	return (Datum) 0;
}

/* ---------- the event log's cold format ---------- */

/*
 * fleet.cold_event_encode(event_id[], logged_at[], txid[], class[], kind[],
 * schema_version[], original_version[], source[], idem_key[], occurred_at[],
 * payload[]) packs the events of one (tenant, UTC day) -- sorted by log time
 * then id -- into one bytea; fleet.cold_event_decode(bytea) returns them.
 * Layout: "FCE1", row count (u32), raw payload length (u32), then zlib of:
 *	 event_id	  delta, zigzag varints;
 *	 logged_at	  microseconds, delta, zigzag varints;
 *	 txid		  delta, zigzag varints;
 *	 class, kind, source, idem_key  varint length + bytes each (zlib takes
 *				  the repetition);
 *	 versions	  zigzag varints;
 *	 occurred_at  microseconds before logged_at, zigzag varints;
 *	 payload	  jsonb text, varint length + bytes (jsonb's text form reads
 *				  back to the same jsonb).
 * No column of the event log is nullable, so neither is any here.
 */
#define EV_MAGIC	"FCE1"
#define EV_NCOLS	11

enum
{
	E_ID, E_LOGGED, E_TXID, E_CLASS, E_KIND, E_SV, E_OV, E_SOURCE, E_IDEM, E_OCC, E_PAYLOAD
};

static const Oid ev_types[EV_NCOLS] = {
	INT8OID, TIMESTAMPTZOID, XID8OID, TEXTOID, TEXTOID, INT4OID, INT4OID,
	TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID
};

static const char *const ev_names[EV_NCOLS] = {
	"event_id", "logged_at", "txid", "class", "kind", "schema_version",
	"original_version", "source", "idem_key", "occurred_at", "payload"
};

PG_FUNCTION_INFO_V1(fleet_cold_event_encode);
PG_FUNCTION_INFO_V1(fleet_cold_event_decode);

Datum
fleet_cold_event_encode(PG_FUNCTION_ARGS)
{
	Datum	   *v[EV_NCOLS];
	bool	   *nl[EV_NCOLS];
	int			n = -1;
	int			c;
	int			i;
	StringInfoData s;
	int64		prev;

	for (c = 0; c < EV_NCOLS; c++)
	{
		ArrayType  *a;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			count;

		if (PG_ARGISNULL(c))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cold_event_encode: %s must not be NULL", ev_names[c])));
		a = PG_GETARG_ARRAYTYPE_P(c);
		if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != ev_types[c])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("cold_event_encode: %s must be a one-dimensional array of its column's type", ev_names[c])));
		get_typlenbyvalalign(ev_types[c], &typlen, &typbyval, &typalign);
		deconstruct_array(a, ev_types[c], typlen, typbyval, typalign, &v[c], &nl[c], &count);
		if (n >= 0 && count != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("cold_event_encode arrays must have equal length"),
					 errdetail("%s has %d elements, expected %d.", ev_names[c], count, n)));
		n = count;
		for (i = 0; i < count; i++)
			if (nl[c][i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("cold_event_encode: %s must not contain NULL", ev_names[c]),
						 errdetail("Element %d is NULL.", i + 1)));
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cold_event_encode needs at least one event")));

	initStringInfo(&s);
	prev = 0;
	for (i = 0; i < n; i++)
	{
		int64		x = DatumGetInt64(v[E_ID][i]);

		put_varint(&s, zigzag(x - prev));
		prev = x;
	}
	prev = 0;
	for (i = 0; i < n; i++)
	{
		int64		x = DatumGetTimestampTz(v[E_LOGGED][i]);

		put_varint(&s, zigzag(x - prev));
		prev = x;
	}
	prev = 0;
	for (i = 0; i < n; i++)
	{
		int64		x = (int64) U64FromFullTransactionId(DatumGetFullTransactionId(v[E_TXID][i]));

		put_varint(&s, zigzag(x - prev));
		prev = x;
	}
	for (c = E_CLASS; c <= E_KIND; c++)
		for (i = 0; i < n; i++)
			put_text(&s, VARDATA_ANY(v[c][i]), VARSIZE_ANY_EXHDR(v[c][i]));
	for (c = E_SV; c <= E_OV; c++)
		for (i = 0; i < n; i++)
			put_varint(&s, zigzag(DatumGetInt32(v[c][i])));
	for (c = E_SOURCE; c <= E_IDEM; c++)
		for (i = 0; i < n; i++)
			put_text(&s, VARDATA_ANY(v[c][i]), VARSIZE_ANY_EXHDR(v[c][i]));
	for (i = 0; i < n; i++)
		put_varint(&s, zigzag(DatumGetTimestampTz(v[E_LOGGED][i]) - DatumGetTimestampTz(v[E_OCC][i])));
	for (i = 0; i < n; i++)
	{
		char	   *txt = DatumGetCString(DirectFunctionCall1(jsonb_out, v[E_PAYLOAD][i]));

		put_text(&s, txt, strlen(txt));
	}

	PG_RETURN_BYTEA_P(seal_segment(&s, EV_MAGIC, (uint32) n));
}

Datum
fleet_cold_event_decode(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *seg = PG_GETARG_BYTEA_PP(0);
	uint32		n;
	Reader		r;
	Datum	   *v[EV_NCOLS];
	int			c;
	int			i;
	int64		acc;

	InitMaterializedSRF(fcinfo, 0);
	n = open_segment(seg, EV_MAGIC, &r);
	for (c = 0; c < EV_NCOLS; c++)
		v[c] = palloc0(sizeof(Datum) * n);

	acc = 0;
	for (i = 0; i < (int) n; i++)
		v[E_ID][i] = Int64GetDatum(acc += unzigzag(get_varint(&r)));
	acc = 0;
	for (i = 0; i < (int) n; i++)
		v[E_LOGGED][i] = TimestampTzGetDatum(acc += unzigzag(get_varint(&r)));
	acc = 0;
	for (i = 0; i < (int) n; i++)
	{
		acc += unzigzag(get_varint(&r));
		v[E_TXID][i] = FullTransactionIdGetDatum(FullTransactionIdFromU64((uint64) acc));
	}
	for (c = E_CLASS; c <= E_KIND; c++)
		for (i = 0; i < (int) n; i++)
			v[c][i] = CStringGetTextDatum(get_text(&r, "truncated text"));
	for (c = E_SV; c <= E_OV; c++)
		for (i = 0; i < (int) n; i++)
			v[c][i] = Int32GetDatum((int32) unzigzag(get_varint(&r)));
	for (c = E_SOURCE; c <= E_IDEM; c++)
		for (i = 0; i < (int) n; i++)
			v[c][i] = CStringGetTextDatum(get_text(&r, "truncated text"));
	for (i = 0; i < (int) n; i++)
		v[E_OCC][i] = TimestampTzGetDatum(DatumGetTimestampTz(v[E_LOGGED][i]) - unzigzag(get_varint(&r)));
	for (i = 0; i < (int) n; i++)
		v[E_PAYLOAD][i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(get_text(&r, "truncated payload")));
	if (r.p != r.end)
		corrupt("trailing bytes");

	for (i = 0; i < (int) n; i++)
	{
		Datum		row[EV_NCOLS];
		bool		rn[EV_NCOLS] = {0};

		for (c = 0; c < EV_NCOLS; c++)
			row[c] = v[c][i];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rn);
	}
	return (Datum) 0;
}
