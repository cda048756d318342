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

/*
 * How a float column is packed: mode 1 when every value is an exact decimal
 * of 1/scale (as the decoder computes it) below limit, scaled integers as
 * zigzag deltas; else mode 0, the IEEE bits XOR the previous value's.
 */
typedef struct FloatCodec
{
	double		scale;
	double		limit;
	bool		four;			/* float4 (else float8) */
} FloatCodec;

static const FloatCodec coord_codec = {1e7, 4.0e15, false};	/* lat, lon */
static const FloatCodec real_codec = {100.0, 1.0e15, true};	/* the real columns */

static inline double
float_value(Datum d, const FloatCodec *fc)
{
	return fc->four ? (double) DatumGetFloat4(d) : DatumGetFloat8(d);
}

/* the value the decoder makes of the scaled integer q */
static inline Datum
unscale(int64 q, const FloatCodec *fc)
{
	double		x = (double) q / fc->scale;

	return fc->four ? Float4GetDatum((float) x) : Float8GetDatum(x);
}

static inline uint64
float_bits(Datum d, const FloatCodec *fc)
{
	if (fc->four)
	{
		float		x = DatumGetFloat4(d);
		uint32		b;

		memcpy(&b, &x, sizeof(b));
		return b;
	}
	else
	{
		double		x = DatumGetFloat8(d);
		uint64		b;

		memcpy(&b, &x, sizeof(b));
		return b;
	}
}

static inline Datum
bits_float(uint64 bits, const FloatCodec *fc)
{
	if (fc->four)
	{
		uint32		b = (uint32) bits;
		float		x;

		memcpy(&x, &b, sizeof(x));
		return Float4GetDatum(x);
	}
	else
	{
		double		x;

		memcpy(&x, &bits, sizeof(x));
		return Float8GetDatum(x);
	}
}

/* the non-null values of a float column (its null map, if any, is the caller's) */
static void
put_floats(StringInfo s, Datum *v, bool *nulls, int n, const FloatCodec *fc)
{
	bool		scaled = true;
	int64		prev_q = 0;
	uint64		prev_bits = 0;
	int			i;

	for (i = 0; i < n && scaled; i++)
	{
		double		x;
		double		q;

		if (nulls[i])
			continue;
		x = float_value(v[i], fc);
		q = rint(x * fc->scale);
		scaled = isfinite(x) && fabs(q) <= fc->limit &&
			float_bits(unscale((int64) q, fc), fc) == float_bits(v[i], fc);
	}
	appendStringInfoChar(s, scaled ? 1 : 0);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if (scaled)
		{
			int64		q = (int64) rint(float_value(v[i], fc) * fc->scale);

			put_varint(s, zigzag(q - prev_q));
			prev_q = q;
		}
		else
		{
			uint64		bits = float_bits(v[i], fc);

			put_varint(s, bits ^ prev_bits);
			prev_bits = bits;
		}
	}
}

static void
get_floats(Reader *r, Datum *v, bool *nulls, int n, const FloatCodec *fc)
{
	unsigned char mode = get_byte(r);
	int64		prev_q = 0;
	uint64		prev_bits = 0;
	int			i;

	if (mode > 1)
		corrupt("bad float mode");
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if (mode == 1)
		{
			prev_q += unzigzag(get_varint(r));
			v[i] = unscale(prev_q, fc);
		}
		else
		{
			uint64		d = get_varint(r);

			if (fc->four && d > PG_UINT32_MAX)
				corrupt("bad float4 bits");
			prev_bits ^= d;
			v[i] = bits_float(prev_bits, fc);
		}
	}
}

/* ---------- column runs shared by the formats ---------- */

/*
 * 64-bit integer columns passed by value (bigint, timestamptz, xid8): the
 * non-null values as zigzag deltas of the previous one.  The Datum is the
 * value's bits for all three, so one reader and writer serve them.
 */
static void
put_deltas(StringInfo s, Datum *v, bool *nulls, int n)
{
	int64		prev = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		int64		x;

		if (nulls[i])
			continue;
		x = DatumGetInt64(v[i]);
		put_varint(s, zigzag(x - prev));
		prev = x;
	}
}

static void
get_deltas(Reader *r, Datum *v, bool *nulls, int n)
{
	int64		acc = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		acc += unzigzag(get_varint(r));
		v[i] = Int64GetDatum(acc);
	}
}

/* timestamps as zigzag microseconds a - b (b from another column) */
static void
put_offsets(StringInfo s, Datum *a, Datum *b, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		put_varint(s, zigzag(DatumGetTimestampTz(a[i]) - DatumGetTimestampTz(b[i])));
}

/* out = base + sign * offset, the inverse of put_offsets for sign +1 (out = a) or -1 (out = b) */
static void
get_offsets(Reader *r, Datum *out, Datum *base, int sign, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		out[i] = TimestampTzGetDatum(DatumGetTimestampTz(base[i]) + sign * unzigzag(get_varint(r)));
}

/* non-null text values, varint length + bytes */
static void
put_texts(StringInfo s, Datum *v, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		put_text(s, VARDATA_ANY(v[i]), VARSIZE_ANY_EXHDR(v[i]));
}

static void
get_texts(Reader *r, Datum *v, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		v[i] = CStringGetTextDatum(get_text(r, "truncated text"));
}

/* non-null jsonb values as their text form (which reads back to the same jsonb) */
static void
put_jsonbs(StringInfo s, Datum *v, bool *nulls, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		char	   *txt;

		if (nulls[i])
			continue;
		txt = DatumGetCString(DirectFunctionCall1(jsonb_out, v[i]));
		put_text(s, txt, strlen(txt));
	}
}

static void
get_jsonbs(Reader *r, Datum *v, bool *nulls, int n, const char *what)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		v[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(get_text(r, what)));
	}
}

/* ---------- arguments and results: one skeleton for both formats ---------- */

/* what the encoder and decoder of a format need to know of its columns */
typedef struct ColdFormat
{
	const char *fn;				/* the encoder's SQL name, for messages */
	const char *magic;
	const char *unit;			/* "fix", "event": what a row is */
	int			ncols;
	const Oid  *types;
	const char *const *names;
	bool		not_null;		/* no column may hold a NULL (checked per column) */
	bool		one_shape_error;	/* one message for a wrong dimension or type */
} ColdFormat;

/*
 * The encoder's array arguments as Datums and null flags, all of one length
 * n (returned, at least 1).  The positions encoder reports a wrong dimension
 * and a wrong element type apart, the event encoder in one message: both
 * messages are kept as they were.
 */
static int
take_columns(FunctionCallInfo fcinfo, const ColdFormat *f, Datum **v, bool **nl)
{
	int			n = -1;
	int			c;
	int			i;

	for (c = 0; c < f->ncols; c++)
	{
		ArrayType  *a;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			count;

		if (PG_ARGISNULL(c))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s: %s must not be NULL", f->fn, f->names[c])));
		a = PG_GETARG_ARRAYTYPE_P(c);
		if (f->one_shape_error)
		{
			if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != f->types[c])
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("%s: %s must be a one-dimensional array of its column's type", f->fn, f->names[c])));
		}
		else
		{
			if (ARR_NDIM(a) > 1)
				ereport(ERROR,
						(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						 errmsg("%s must be a one-dimensional array", f->names[c])));
			if (ARR_ELEMTYPE(a) != f->types[c])
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("%s has the wrong element type", f->names[c])));
		}
		get_typlenbyvalalign(f->types[c], &typlen, &typbyval, &typalign);
		deconstruct_array(a, f->types[c], typlen, typbyval, typalign, &v[c], &nl[c], &count);
		if (n >= 0 && count != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("%s arrays must have equal length", f->fn),
					 errdetail("%s has %d elements, expected %d.", f->names[c], count, n)));
		n = count;
		if (f->not_null)
			for (i = 0; i < count; i++)
				if (nl[c][i])
					ereport(ERROR,
							(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							 errmsg("%s: %s must not contain NULL", f->fn, f->names[c]),
							 errdetail("Element %d is NULL.", i + 1)));
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs at least one %s", f->fn, f->unit)));
	return n;
}

/* open a segment of format f; n columns of n rows to decode into, no nulls yet */
static uint32
start_decode(bytea *seg, const ColdFormat *f, Reader *r, Datum **v, bool **nl)
{
	uint32		n = open_segment(seg, f->magic, r);
	int			c;

	for (c = 0; c < f->ncols; c++)
	{
		v[c] = palloc0(sizeof(Datum) * n);
		nl[c] = palloc0(sizeof(bool) * n);
	}
	return n;
}

/* the decoded columns, once the body is read to its end, as result rows */
static void
finish_decode(FunctionCallInfo fcinfo, const ColdFormat *f, Reader *r, Datum **v, bool **nl, uint32 n)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *row = palloc(sizeof(Datum) * f->ncols);
	bool	   *rn = palloc(sizeof(bool) * f->ncols);
	int			c;
	uint32		i;

	if (r->p != r->end)
		corrupt("trailing bytes");
	for (i = 0; i < n; i++)
	{
		for (c = 0; c < f->ncols; c++)
		{
			row[c] = v[c][i];
			rn[c] = nl[c][i];
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rn);
	}
}

/* ---------- the positions' format ---------- */

static const ColdFormat fix_format = {
	"cold_encode", COLD_MAGIC, "fix", NCOLS, col_types, col_names, false, false
};

/*
 * fleet.cold_encode(...) RETURNS bytea
 */
Datum
fleet_cold_encode(PG_FUNCTION_ARGS)
{
	Datum	   *v[NCOLS];
	bool	   *nl[NCOLS];
	int			n;
	int			c;
	int			i;
	StringInfoData s;
	int64		prev_t = 0;
	int64		prev_d = 0;

	n = take_columns(fcinfo, &fix_format, v, nl);
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
	put_floats(&s, v[C_LAT], nl[C_LAT], n, &coord_codec);
	put_floats(&s, v[C_LON], nl[C_LON], n, &coord_codec);
	for (c = C_SPEED; c <= C_ACC; c++)
	{
		put_nulls(&s, nl[c], n);
		put_floats(&s, v[c], nl[c], n, &real_codec);
	}
	put_nulls(&s, nl[C_SEQ], n);
	put_deltas(&s, v[C_SEQ], nl[C_SEQ], n);
	put_nulls(&s, nl[C_ATTRS], n);
	put_jsonbs(&s, v[C_ATTRS], nl[C_ATTRS], n);
	put_offsets(&s, v[C_RECV], v[C_FIX], n);

	PG_RETURN_BYTEA_P(seal_segment(&s, COLD_MAGIC, (uint32) n));
}

/*
 * fleet.cold_decode(segment bytea) RETURNS TABLE (fix_time, lat, lon, speed,
 *		heading, altitude, accuracy, seq, attrs, received_at)
 */
Datum
fleet_cold_decode(PG_FUNCTION_ARGS)
{
	bytea	   *seg = PG_GETARG_BYTEA_PP(0);
	uint32		n;
	Reader		r;
	Datum	   *v[NCOLS];
	bool	   *nl[NCOLS];
	int			c;
	int			i;
	int64		t = 0;
	int64		d = 0;

	InitMaterializedSRF(fcinfo, 0);
	n = start_decode(seg, &fix_format, &r, v, nl);
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
	get_floats(&r, v[C_LAT], nl[C_LAT], n, &coord_codec);
	get_floats(&r, v[C_LON], nl[C_LON], n, &coord_codec);
	for (c = C_SPEED; c <= C_ACC; c++)
	{
		get_nulls(&r, nl[c], n);
		get_floats(&r, v[c], nl[c], n, &real_codec);
	}
	get_nulls(&r, nl[C_SEQ], n);
	get_deltas(&r, v[C_SEQ], nl[C_SEQ], n);
	get_nulls(&r, nl[C_ATTRS], n);
	get_jsonbs(&r, v[C_ATTRS], nl[C_ATTRS], n, "truncated attrs");
	get_offsets(&r, v[C_RECV], v[C_FIX], 1, n);
	finish_decode(fcinfo, &fix_format, &r, v, nl, n);
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

static const ColdFormat event_format = {
	"cold_event_encode", EV_MAGIC, "event", EV_NCOLS, ev_types, ev_names, true, true
};

PG_FUNCTION_INFO_V1(fleet_cold_event_encode);
PG_FUNCTION_INFO_V1(fleet_cold_event_decode);

Datum
fleet_cold_event_encode(PG_FUNCTION_ARGS)
{
	Datum	   *v[EV_NCOLS];
	bool	   *nl[EV_NCOLS];
	int			n;
	int			c;
	int			i;
	StringInfoData s;

	n = take_columns(fcinfo, &event_format, v, nl);

	initStringInfo(&s);
	put_deltas(&s, v[E_ID], nl[E_ID], n);
	put_deltas(&s, v[E_LOGGED], nl[E_LOGGED], n);
	put_deltas(&s, v[E_TXID], nl[E_TXID], n);
	for (c = E_CLASS; c <= E_KIND; c++)
		put_texts(&s, v[c], n);
	for (c = E_SV; c <= E_OV; c++)
		for (i = 0; i < n; i++)
			put_varint(&s, zigzag(DatumGetInt32(v[c][i])));
	for (c = E_SOURCE; c <= E_IDEM; c++)
		put_texts(&s, v[c], n);
	put_offsets(&s, v[E_LOGGED], v[E_OCC], n);
	put_jsonbs(&s, v[E_PAYLOAD], nl[E_PAYLOAD], n);

	PG_RETURN_BYTEA_P(seal_segment(&s, EV_MAGIC, (uint32) n));
}

Datum
fleet_cold_event_decode(PG_FUNCTION_ARGS)
{
	bytea	   *seg = PG_GETARG_BYTEA_PP(0);
	uint32		n;
	Reader		r;
	Datum	   *v[EV_NCOLS];
	bool	   *nl[EV_NCOLS];
	int			c;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	n = start_decode(seg, &event_format, &r, v, nl);
	get_deltas(&r, v[E_ID], nl[E_ID], n);
	get_deltas(&r, v[E_LOGGED], nl[E_LOGGED], n);
	get_deltas(&r, v[E_TXID], nl[E_TXID], n);
	for (c = E_CLASS; c <= E_KIND; c++)
		get_texts(&r, v[c], n);
	for (c = E_SV; c <= E_OV; c++)
		for (i = 0; i < (int) n; i++)
			v[c][i] = Int32GetDatum((int32) unzigzag(get_varint(&r)));
	for (c = E_SOURCE; c <= E_IDEM; c++)
		get_texts(&r, v[c], n);
	get_offsets(&r, v[E_OCC], v[E_LOGGED], -1, n);
	get_jsonbs(&r, v[E_PAYLOAD], nl[E_PAYLOAD], n, "truncated payload");
	finish_decode(fcinfo, &event_format, &r, v, nl, n);
	return (Datum) 0;
}
