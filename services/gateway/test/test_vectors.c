/*
 * test_vectors.c - unit tests of the gateway protocol parsers against the
 * real tracker vectors in test/vectors (a fixed copy of ../shared/vectors):
 *
 *   teltonika.tsv + teltonika_expected.json  every frame, every record, every IO
 *   gt06.tsv                                  every frame, fields and reply bytes
 *   osmand.tsv                                every request, status and fields
 *
 * plus corrupt variants derived from the valid frames (each must be rejected
 * with its specific reason and no reply) and stream-framing checks.
 *
 * The vector directory is $FLEET_VECTORS, else FLEET_VECTORS_DEFAULT (set by
 * services/Makefile to <repo>/test/vectors).  Prints "N passed, M failed"
 * and exits non-zero on any failure.
 */
#include "../gt06.h"
#include "../osmand.h"
#include "../teltonika.h"
#include "../fuzz/pg_accept.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FLEET_VECTORS_DEFAULT
#define FLEET_VECTORS_DEFAULT "test/vectors"
#endif

static int	n_pass,
			n_fail;
static const char *cur_row = "";

static void
check(bool ok, const char *fmt,...)
{
	va_list		ap;

	if (ok)
	{
		n_pass++;
		return;
	}
	n_fail++;
	fprintf(stderr, "FAIL [%s] ", cur_row);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- helpers ------------------------------------------------------------- */

static const char *vec_dir;

static char *
slurp(const char *name, size_t *len)
{
	char		path[1024];
	FILE	   *f;
	char	   *buf;
	long		n;

	snprintf(path, sizeof path, "%s/%s", vec_dir, name);
	f = fopen(path, "rb");
	if (!f)
	{
		fprintf(stderr, "cannot open %s (set FLEET_VECTORS)\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n)
		exit(2);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t) n;
	return buf;
}

/* split a line on tabs in place; returns number of columns */
static int
split_tabs(char *line, char **cols, int max)
{
	int			n = 0;

	cols[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == '\t')
		{
			*p = '\0';
			cols[n++] = p + 1;
		}
	return n;
}

static size_t
unhex(const char *hx, uint8_t *out, size_t cap)
{
	size_t		n = strlen(hx) / 2;

	if (n > cap)
		n = cap;
	for (size_t i = 0; i < n; i++)
	{
		unsigned	v;

		sscanf(hx + 2 * i, "%2x", &v);
		out[i] = (uint8_t) v;
	}
	return n;
}

static void
tohex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static void
iso_ms(int64_t ms, char *out, size_t cap, bool with_ms)
{
	time_t		s = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	struct tm	tm;
	int			frac = (int) (ms - (int64_t) s * 1000);

	gmtime_r(&s, &tm);
	if (with_ms)
		snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	else
		snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* independent ISO-8601 UTC parser for expected values: Y-M-DTh:m:s[.fff]Z */
static int64_t
expect_time(const char *s)
{
	struct tm	tm = {0};
	int			ms = 0;
	char		frac[8] = "";

	if (sscanf(s, "%d-%d-%dT%d:%d:%d.%3[0-9]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6)
		return INT64_MIN;
	if (frac[0])
	{
		ms = atoi(frac);
		for (size_t i = strlen(frac); i < 3; i++)
			ms *= 10;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t) timegm(&tm) * 1000 + ms;
}

static bool
near(double a, double b, double tol)
{
	return fabs(a - b) <= tol;
}

static json_t *
attrs_of(const gw_record *r)
{
	json_error_t e;

	return json_loadb(r->attrs, r->attrs_len, JSON_REJECT_DUPLICATES, &e);
}

#define ARENA_SZ (1 << 20)
static char arena_buf[ARENA_SZ];
static gw_record recs[256];

/* ---- Teltonika ----------------------------------------------------------- */

static void
check_tlt_record(const gw_record *r, json_t *exp, const char *imei, int idx)
{
	json_t	   *a = attrs_of(r);
	json_t	   *io = json_object_get(exp, "io");
	const char *k;
	json_t	   *v;
	size_t		n_io_attrs = 0;

	check(a != NULL, "record %d attrs are valid JSON: %s", idx, r->attrs);
	if (!a)
		return;
	check(r->time_ms == json_integer_value(json_object_get(exp, "ts_ms")),
		  "record %d ts %lld", idx, (long long) r->time_ms);
	check(near(r->lat, json_number_value(json_object_get(exp, "lat")), 1e-9) &&
		  near(r->lon, json_number_value(json_object_get(exp, "lon")), 1e-9),
		  "record %d lat/lon %.7f/%.7f", idx, r->lat, r->lon);
	check(r->altitude == json_integer_value(json_object_get(exp, "alt_m")) &&
		  r->heading == json_integer_value(json_object_get(exp, "angle")) &&
		  r->speed_kmh == json_integer_value(json_object_get(exp, "speed_kmh")),
		  "record %d alt/angle/speed %g/%g/%g", idx, r->altitude, r->heading, r->speed_kmh);
	check(json_integer_value(json_object_get(a, "sat")) == json_integer_value(json_object_get(exp, "sats")) &&
		  json_integer_value(json_object_get(a, "priority")) == json_integer_value(json_object_get(exp, "priority")) &&
		  json_integer_value(json_object_get(a, "event")) == json_integer_value(json_object_get(exp, "event_io")),
		  "record %d sat/priority/event: %s", idx, r->attrs);
	if (json_object_get(exp, "generation_type"))
		check(json_integer_value(json_object_get(a, "gen")) ==
			  json_integer_value(json_object_get(exp, "generation_type")), "record %d gen", idx);
	check(r->valid == (json_integer_value(json_object_get(exp, "sats")) != 0),
		  "record %d valid flag", idx);
	check(isnan(r->accuracy) && r->seq == -1, "record %d accuracy/seq absent", idx);
	check(strcmp(r->device, imei ? imei : "") == 0, "record %d device '%s'", idx, r->device);

	json_object_foreach(io, k, v)
	{
		char		key[32];
		json_t	   *got;

		snprintf(key, sizeof key, "io%s", k);
		got = json_object_get(a, key);
		if (json_is_string(v))
			check(json_is_string(got) && strcmp(json_string_value(got), json_string_value(v)) == 0,
				  "record %d %s hex", idx, key);
		else
			check(json_is_integer(got) && json_integer_value(got) == json_integer_value(v),
				  "record %d %s = %lld", idx, key, (long long) json_integer_value(got));
	}
	json_object_foreach(a, k, v)
		if (strncmp(k, "io", 2) == 0)
		n_io_attrs++;
	check(n_io_attrs == json_object_size(io), "record %d io count %zu", idx, n_io_attrs);
	json_decref(a);
}

static void
tlt_corrupt_variants(const uint8_t *f, size_t len)
{
	uint8_t		b[4096];
	tlt_result	res;
	gw_arena	ar;
	gw_err		e;
	size_t		dlen = len - 12;
	uint16_t	crc;

	if (len > sizeof b - 1)
		return;
#define EXPECT_REJECT(buf, n, want, what) do { \
		gw_arena_init(&ar, arena_buf, ARENA_SZ); \
		e = tlt_decode_tcp(buf, n, "1", recs, 256, &ar, &res); \
		check(e == (want) && res.reply_len == 0 && res.n_records == 0, \
			  "%s: got %s, want %s", what, gw_strerror(e), gw_strerror(want)); \
	} while (0)

	/* flipped payload byte -> bad_crc */
	memcpy(b, f, len);
	b[10] ^= 0x40;
	EXPECT_REJECT(b, len, GW_ERR_BAD_CRC, "flipped byte");
	/* flipped CRC byte */
	memcpy(b, f, len);
	b[len - 1] ^= 0x01;
	EXPECT_REJECT(b, len, GW_ERR_BAD_CRC, "flipped crc");
	/* truncated by one byte */
	EXPECT_REJECT(f, len - 1, GW_ERR_TRUNCATED, "truncated");
	/* one trailing byte too many */
	memcpy(b, f, len);
	b[len] = 0;
	EXPECT_REJECT(b, len + 1, GW_ERR_BAD_LENGTH, "trailing byte");
	/* preamble not zero */
	memcpy(b, f, len);
	b[3] = 1;
	EXPECT_REJECT(b, len, GW_ERR_BAD_PREAMBLE, "preamble");
	/* N2 != N1 with a correct CRC -> count_mismatch */
	memcpy(b, f, len);
	b[8 + dlen - 1] ^= 0x80;
	crc = gw_crc16_ibm(b + 8, dlen);
	b[len - 2] = (uint8_t) (crc >> 8);
	b[len - 1] = (uint8_t) crc;
	EXPECT_REJECT(b, len, GW_ERR_COUNT_MISMATCH, "count mismatch");
	/* unknown codec with a correct CRC */
	memcpy(b, f, len);
	b[8] = 0x42;
	crc = gw_crc16_ibm(b + 8, dlen);
	b[len - 2] = (uint8_t) (crc >> 8);
	b[len - 1] = (uint8_t) crc;
	EXPECT_REJECT(b, len, GW_ERR_UNKNOWN_CODEC, "unknown codec");
	/* data_len one larger than the records (CRC fixed) -> bad_length */
	memcpy(b, f, 8 + dlen - 1);
	b[8 + dlen - 1] = 0x00;
	b[8 + dlen] = f[8 + dlen - 1];
	b[7]++;
	if (b[7] == 0)
		b[6]++;
	crc = gw_crc16_ibm(b + 8, dlen + 1);
	b[8 + dlen + 1] = 0;
	b[8 + dlen + 2] = 0;
	b[8 + dlen + 3] = (uint8_t) (crc >> 8);
	b[8 + dlen + 4] = (uint8_t) crc;
	EXPECT_REJECT(b, len + 1, GW_ERR_BAD_LENGTH, "records shorter than data_len");
	/* arena too small -> no_space, nothing returned */
	gw_arena_init(&ar, arena_buf, 8);
	e = tlt_decode_tcp(f, len, "1", recs, 256, &ar, &res);
	check(e == GW_ERR_NOSPACE && res.reply_len == 0 && ar.used == 0, "tiny arena: %s", gw_strerror(e));
#undef EXPECT_REJECT
}

static void
test_teltonika(void)
{
	char	   *tsv = slurp("teltonika.tsv", NULL);
	json_error_t je;
	char		path[1024];
	json_t	   *expected;
	char	   *save = NULL;
	uint8_t		stream[65536];
	size_t		stream_len = 0,
				stream_frames[64],
				n_stream_frames = 0;
	int			rows = 0;

	snprintf(path, sizeof path, "%s/teltonika_expected.json", vec_dir);
	expected = json_load_file(path, 0, &je);
	if (!expected)
	{
		fprintf(stderr, "cannot load %s: %s\n", path, je.text);
		exit(2);
	}

	for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *c[8] = {0};
		uint8_t		f[8192];
		size_t		len,
					flen;
		tlt_result	res;
		gw_arena	ar;
		gw_err		e;
		bool		udp,
					reject;
		json_t	   *exp,
				   *dec;
		char		rhex[32];
		int			ncol;

		if (line[0] == '#' || line[0] == '\0')
			continue;
		ncol = split_tabs(line, c, 8);
		if (ncol < 6)
		{
			check(false, "teltonika row has %d columns", ncol);
			continue;
		}
		rows++;
		cur_row = c[3];
		len = unhex(c[0], f, sizeof f);
		udp = strstr(c[4], "udp") != NULL;
		reject = strstr(c[4], "expect_reject") != NULL;
		exp = json_object_get(expected, c[3]);
		check(exp != NULL, "row present in teltonika_expected.json");
		dec = json_object_get(exp, "decoded");
		gw_arena_init(&ar, arena_buf, tlt_arena_bound(len));

		if (udp)
		{
			e = tlt_decode_udp(f, len, recs, 256, &ar, &res);
			check(e == GW_OK, "udp decode: %s", gw_strerror(e));
			tohex(res.reply, res.reply_len, rhex);
			check(strcmp(rhex, c[5]) == 0, "udp reply %s != %s", rhex, c[5]);
			check(strcmp(res.imei, json_string_value(json_object_get(dec, "imei"))) == 0,
				  "udp imei %s", res.imei);
			check(res.packet_id == json_integer_value(json_object_get(dec, "packet_id")) &&
				  res.avl_packet_id == json_integer_value(json_object_get(dec, "avl_packet_id")),
				  "udp ids");
			/* a truncated datagram is rejected without reply */
			{
				tlt_result	r2;
				gw_arena	a2;

				gw_arena_init(&a2, arena_buf + ARENA_SZ / 2, ARENA_SZ / 2);
				e = tlt_decode_udp(f, len - 1, recs + 128, 128, &a2, &r2);
				check(e == GW_ERR_TRUNCATED && r2.reply_len == 0, "udp short datagram: %s", gw_strerror(e));
			}
		}
		else
		{
			/* stream framing: whole frame recognised, every prefix needs more */
			gw_err		fe = tlt_frame(f, len, &flen);
			bool		prefixes_ok = true;

			if (reject)
				check(fe != GW_OK && fe != GW_NEED_MORE, "corrupt frame refused by framing: %s",
					  gw_strerror(fe));
			else
			{
				check(fe == GW_OK && flen == len, "framing: %s len %zu", gw_strerror(fe), flen);
				for (size_t p = 0; p < len; p++)
					if (tlt_frame(f, p, &flen) != GW_NEED_MORE)
						prefixes_ok = false;
				check(prefixes_ok, "every prefix is NEED_MORE");
				if (stream_len + len <= sizeof stream)
				{
					memcpy(stream + stream_len, f, len);
					stream_len += len;
					stream_frames[n_stream_frames++] = len;
				}
			}
			e = tlt_decode_tcp(f, len, "123456789012345", recs, 256, &ar, &res);
			if (reject)
			{
				check(e != GW_OK && res.reply_len == 0 && res.n_records == 0,
					  "corrupt frame rejected (%s), no reply", gw_strerror(e));
				check(e == GW_ERR_BAD_LENGTH, "reject reason %s", gw_strerror(e));
				continue;
			}
			check(e == GW_OK, "decode: %s", gw_strerror(e));
			if (e != GW_OK)
				continue;
			if (res.kind == TLT_KIND_IMEI)
			{
				uint8_t		r = tlt_imei_reply(true);

				tohex(&r, 1, rhex);
				check(strcmp(res.imei, json_string_value(json_object_get(dec, "imei"))) == 0 &&
					  strcmp(rhex, c[5]) == 0, "imei %s reply %s", res.imei, rhex);
				check(tlt_imei_reply(false) == 0x00, "imei reject byte");
				continue;
			}
			if (res.kind == TLT_KIND_PING)
			{
				check(strcmp(c[5], "-") == 0 && res.reply_len == 0 && res.n_records == 0, "ping");
				continue;
			}
			if (c[5][0] == '-')
			{
				check(res.kind == TLT_KIND_COMMAND && res.reply_len == 0 && res.n_records == 0,
					  "command codec: no ack, no records");
				check(res.count == (unsigned) atoi(c[1]), "command count %u", res.count);
				check(res.cmd_payload_len == 8 && res.cmd_type == 6, "command payload");
				continue;
			}
			tohex(res.reply, res.reply_len, rhex);
			check(strcmp(rhex, c[5]) == 0, "reply %s != %s", rhex, c[5]);
		}

		/* AVL records (TCP and UDP) */
		check(res.kind == TLT_KIND_AVL, "kind avl");
		check(res.count == (unsigned) atoi(c[1]) && res.n_records == (size_t) atoi(c[1]),
			  "record count %u != %s", res.count, c[1]);
		{
			json_t	   *er = json_object_get(dec, "records");
			char		first[256],
						ts[96];

			check(json_array_size(er) == res.n_records, "expected json record count");
			for (size_t i = 0; i < res.n_records && i < json_array_size(er); i++)
				check_tlt_record(&recs[i], json_array_get(er, i), udp ? res.imei : "123456789012345", (int) i);
			iso_ms(recs[0].time_ms, ts, sizeof ts, true);
			snprintf(first, sizeof first, "%s/%.7f/%.7f/%d", ts, recs[0].lat, recs[0].lon,
					 (int) recs[0].speed_kmh);
			check(strcmp(first, c[2]) == 0, "first record %s != %s", first, c[2]);
			check(ar.used <= tlt_arena_bound(len), "arena bound");
		}
		if (!udp)
			tlt_corrupt_variants(f, len);	/* reuses recs and the arena */
	}
	cur_row = "teltonika stream";
	check(rows == 17, "teltonika rows %d", rows);
	/* frame the concatenation of every valid TCP frame, as a server would */
	{
		size_t		off = 0,
					i = 0,
					fl;
		bool		ok = true;

		while (off < stream_len)
		{
			gw_err		e = tlt_frame(stream + off, stream_len - off, &fl);

			if (e != GW_OK || i >= n_stream_frames || fl != stream_frames[i])
			{
				ok = false;
				break;
			}
			off += fl;
			i++;
		}
		check(ok && i == n_stream_frames, "stream framing of %zu frames", n_stream_frames);
	}
	{
		size_t		fl;
		uint8_t		junk[] = {0x00, 0x00, 0x12, 0x34, 0, 0, 0, 0};
		uint8_t		big[] = {0x00, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff};
		uint8_t		longimei[] = {0x01, 0x00};
		uint8_t		badimei[] = {0x00, 0x03, '1', 'x', '3'};
		tlt_result	res;
		gw_arena	ar;

		check(tlt_frame(junk, sizeof junk, &fl) == GW_ERR_BAD_PREAMBLE, "stream bad preamble");
		check(tlt_frame(big, sizeof big, &fl) == GW_ERR_BAD_LENGTH, "stream oversize data_len");
		check(tlt_frame(longimei, sizeof longimei, &fl) == GW_ERR_BAD_LENGTH, "stream oversize imei");
		gw_arena_init(&ar, arena_buf, 64);
		check(tlt_decode_tcp(badimei, sizeof badimei, NULL, recs, 256, &ar, &res) == GW_ERR_BAD_IMEI,
			  "non-digit imei");
	}
	json_decref(expected);
	free(tsv);
}

/* ---- GT06 ------------------------------------------------------------------ */

static void
test_gt06(void)
{
	char	   *tsv = slurp("gt06.tsv", NULL);
	char	   *save = NULL;
	int			rows = 0;
	uint8_t		login[64];
	size_t		login_len = 0;

	for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *c[8] = {0};
		uint8_t		f[512],
					b[512];
		size_t		len,
					fl;
		gt06_result res;
		gw_arena	ar;
		gw_err		e;
		char		rhex[64];
		bool		prefixes_ok = true;

		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (split_tabs(line, c, 8) < 6)
		{
			check(false, "gt06 row columns");
			continue;
		}
		rows++;
		cur_row = c[5];
		len = unhex(c[0], f, sizeof f);
		gw_arena_init(&ar, arena_buf, GT06_ARENA_BOUND);

		check(gt06_frame(f, len, &fl) == GW_OK && fl == len, "framing");
		for (size_t p = 0; p < len; p++)
			if (gt06_frame(f, p, &fl) != GW_NEED_MORE)
				prefixes_ok = false;
		check(prefixes_ok, "every prefix is NEED_MORE");

		e = gt06_decode(f, len, "863586038760942", &recs[0], &ar, &res);
		check((e == GW_OK) == (strcmp(c[2], "True") == 0), "decode %s (crc_ok %s)", gw_strerror(e), c[2]);
		if (e != GW_OK)
			continue;
		{
			unsigned	proto;

			sscanf(c[1], "%x", &proto);
			check(res.proto == proto, "proto %02x", res.proto);
		}
		tohex(res.reply, res.reply_len, rhex);
		check(strcmp(rhex, c[4]) == 0, "reply %s != %s", rhex, c[4]);
		if (res.kind == GT06_KIND_LOGIN)
		{
			check(strcmp(res.imei, c[3]) == 0 && res.n_records == 0, "imei %s", res.imei);
			if (login_len == 0)
			{
				memcpy(login, f, len);
				login_len = len;
			}
		}
		else
		{
			char		ts[96],
						vs[8];
			double		lat,
						lon;
			int			speed,
						course;
			int64_t		t;

			check(res.kind == GT06_KIND_POSITION && res.n_records == 1, "position kind");
			check(sscanf(c[3], "%31[^/]/%lf/%lf/%d/%d/%7s", ts, &lat, &lon, &speed, &course, vs) == 6,
				  "expected fields parse");
			t = expect_time(ts);
			check(recs[0].time_ms == t, "time %lld != %lld", (long long) recs[0].time_ms, (long long) t);
			check(near(recs[0].lat, lat, 5.01e-7) && near(recs[0].lon, lon, 5.01e-7),
				  "lat/lon %.7f/%.7f", recs[0].lat, recs[0].lon);
			check(recs[0].speed_kmh == speed && recs[0].heading == course, "speed/course %g/%g",
				  recs[0].speed_kmh, recs[0].heading);
			check(recs[0].valid == (strcmp(vs, "True") == 0), "valid flag");
			check(strcmp(recs[0].device, "863586038760942") == 0, "device from session");
			{
				json_t	   *a = attrs_of(&recs[0]);

				check(a && json_is_integer(json_object_get(a, "sat")) &&
					  json_is_integer(json_object_get(a, "mcc")) &&
					  json_is_integer(json_object_get(a, "cid")), "attrs %s", recs[0].attrs);
				json_decref(a);
			}
		}

		/* corrupt variants: every one rejected with its reason and no reply */
		memcpy(b, f, len);
		b[len - 5] ^= 0x01;		/* crc */
		e = gt06_decode(b, len, NULL, &recs[0], &ar, &res);
		check(e == GW_ERR_BAD_CRC && res.reply_len == 0, "bad crc: %s", gw_strerror(e));
		memcpy(b, f, len);
		b[4] ^= 0x10;			/* info byte */
		e = gt06_decode(b, len, NULL, &recs[0], &ar, &res);
		check(e == GW_ERR_BAD_CRC && res.reply_len == 0, "flipped info: %s", gw_strerror(e));
		memcpy(b, f, len);
		b[len - 1] = 0x0B;		/* stop bits */
		check(gt06_frame(b, len, &fl) == GW_ERR_BAD_STOP, "framing bad stop");
		e = gt06_decode(b, len, NULL, &recs[0], &ar, &res);
		check(e == GW_ERR_BAD_STOP && res.reply_len == 0, "bad stop: %s", gw_strerror(e));
		e = gt06_decode(f, len - 1, NULL, &recs[0], &ar, &res);
		check(e == GW_ERR_TRUNCATED && res.reply_len == 0, "truncated: %s", gw_strerror(e));
		memcpy(b, f, len);
		b[0] = 0x77;
		check(gt06_frame(b, len, &fl) == GW_ERR_BAD_START, "framing bad start");
	}
	cur_row = "gt06 synthetic";
	check(rows == 7, "gt06 rows %d", rows);
	{
		/* the first login re-wrapped as a 7979 frame, and a heartbeat 0x13 */
		uint8_t		x[80],
					hb[] = {0x78, 0x78, 0x0a, 0x13, 0x40, 0x04, 0x04, 0x00, 0x01, 0x00, 0x07, 0, 0, 0x0d, 0x0a},
					unk[] = {0x78, 0x78, 0x05, 0x99, 0x00, 0x01, 0, 0, 0x0d, 0x0a};
		size_t		n = 0,
					fl,
					ln = login[2];
		uint16_t	crc;
		gt06_result res;
		gw_arena	ar;
		gw_err		e;
		char		rhex[64];

		gw_arena_init(&ar, arena_buf, GT06_ARENA_BOUND);
		x[n++] = 0x79;
		x[n++] = 0x79;
		x[n++] = 0;
		x[n++] = (uint8_t) ln;
		memcpy(x + n, login + 3, ln - 2);
		n += ln - 2;
		crc = gw_crc16_x25(x + 2, n - 2);
		x[n++] = (uint8_t) (crc >> 8);
		x[n++] = (uint8_t) crc;
		x[n++] = 0x0d;
		x[n++] = 0x0a;
		check(gt06_frame(x, n, &fl) == GW_OK && fl == n, "7979 framing");
		e = gt06_decode(x, n, NULL, &recs[0], &ar, &res);
		check(e == GW_OK && res.extended && res.kind == GT06_KIND_LOGIN &&
			  strcmp(res.imei, "123456789012345") == 0, "7979 login: %s", gw_strerror(e));

		crc = gw_crc16_x25(hb + 2, sizeof hb - 6);
		hb[sizeof hb - 4] = (uint8_t) (crc >> 8);
		hb[sizeof hb - 3] = (uint8_t) crc;
		e = gt06_decode(hb, sizeof hb, NULL, &recs[0], &ar, &res);
		tohex(res.reply, res.reply_len, rhex);
		check(e == GW_OK && res.kind == GT06_KIND_STATUS && res.voltage_level == 4 &&
			  res.n_records == 0 && strncmp(rhex, "787805130007", 12) == 0,
			  "heartbeat 0x13: %s reply %s", gw_strerror(e), rhex);

		crc = gw_crc16_x25(unk + 2, sizeof unk - 6);
		unk[sizeof unk - 4] = (uint8_t) (crc >> 8);
		unk[sizeof unk - 3] = (uint8_t) crc;
		e = gt06_decode(unk, sizeof unk, NULL, &recs[0], &ar, &res);
		check(e == GW_ERR_UNKNOWN_TYPE && res.reply_len == 0, "unknown type: %s", gw_strerror(e));
	}
	free(tsv);
}

/* ---- OsmAnd ---------------------------------------------------------------- */

#define NOW_MS INT64_C(1700000000123)

typedef struct
{
	const char *device;
	const char *key;
	const char *json_value;		/* expected attribute value as JSON text */
} attr_expect;

/* the other_expected column of osmand.tsv, spelled out as attribute checks */
static const attr_expect osm_attrs[] = {
	{"902064", "hdop", "6.0"},
	{"861001000719969", "batteryLevel", "87"},
	{"123456789012345", "ignition", "true"},
	{"123456789012345", "rpm", "933"},
	{"123456789012345", "fuel", "24"},
	{"48241179", "batteryLevel", "100"},
	{"48241179", "event", "\"motionchange\""},
	{"48241179", "motion", "false"},
	{"48241179", "activity", "\"still\""},
	{"658765", "mock", "true"},
	{"658765", "batteryLevel", NULL},	/* level -1 => not set */
};

static bool
json_value_eq(json_t *got, const char *text)
{
	json_error_t e;
	json_t	   *want = json_loads(text, JSON_DECODE_ANY, &e);
	bool		ok;

	if (!want)
		return false;
	if (json_is_number(want) && json_is_number(got))
		ok = json_number_value(want) == json_number_value(got);
	else
		ok = json_equal(want, got);
	json_decref(want);
	return ok;
}

static double
expect_num(const char *s)
{
	if (s[0] == '-' && (s[1] == '\0' || s[1] == '('))
		return NAN;
	return strtod(s, NULL);
}

static bool
same_num(double got, double want, double tol)
{
	if (isnan(want))
		return isnan(got);
	return near(got, want, tol);
}

static gw_err
osm(const char *method, const char *target, const char *ct, const char *body, osm_result *res)
{
	static gw_arena ar;
	size_t		bl = body ? strlen(body) : 0;

	gw_arena_init(&ar, arena_buf, osm_arena_bound(strlen(target), bl));
	return osm_decode(method, target, strlen(target), ct, body, bl, NOW_MS, recs, 16, &ar, res);
}

static void
test_osmand(void)
{
	char	   *tsv = slurp("osmand.tsv", NULL);
	char	   *save = NULL;
	int			rows = 0;

	for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *c[17] = {0};
		osm_result	res;
		gw_err		e;
		int			stored;

		if (line[0] == '#' || line[0] == '\0' || strncmp(line, "method\t", 7) == 0)
			continue;
		if (split_tabs(line, c, 17) < 16)
		{
			check(false, "osmand row columns");
			continue;
		}
		rows++;
		cur_row = c[14];
		e = osm(c[0], c[1], c[2], c[3][0] ? c[3] : NULL, &res);
		stored = atoi(c[5]);
		check(res.http_status == atoi(c[4]), "http %d != %s (%s)", res.http_status, c[4], gw_strerror(e));
		check((int) res.n_records == stored, "stored %zu != %d", res.n_records, stored);
		if (stored != 1 || res.n_records != 1)
			continue;
		{
			gw_record  *r = &recs[0];
			int64_t		t = c[7][0] == '(' ? NOW_MS : expect_time(c[7]);
			double		kn = expect_num(c[10]),
						kmh = expect_num(c[11]);
			json_t	   *a = attrs_of(r);

			check(strcmp(r->device, c[6]) == 0, "device %s", r->device);
			check(r->time_ms == t, "time %lld != %lld", (long long) r->time_ms, (long long) t);
			check(near(r->lat, strtod(c[8], NULL), 1e-9) && near(r->lon, strtod(c[9], NULL), 1e-9),
				  "lat/lon %.9f/%.9f", r->lat, r->lon);
			check(same_num(r->speed_kmh, kmh, 1e-6), "speed_kmh %g != %s", r->speed_kmh, c[11]);
			if (!isnan(kn) && strcmp(c[0], "GET") == 0)
				check(near(r->speed_kmh, kn * 1.852, 1e-9), "knots conversion");
			check(same_num(r->heading, expect_num(c[12]), 1e-9), "course %g != %s", r->heading, c[12]);
			check(same_num(r->altitude, expect_num(c[13]), 1e-9), "altitude %g != %s", r->altitude, c[13]);
			check(r->valid && r->seq == -1, "valid, no seq");
			if (strncmp(c[14], "accuracy=", 9) == 0)
				check(near(r->accuracy, strtod(c[14] + 9, NULL), 1e-9), "accuracy %g", r->accuracy);
			check(a != NULL, "attrs are JSON: %s", r->attrs);
			for (size_t i = 0; a && i < sizeof osm_attrs / sizeof osm_attrs[0]; i++)
			{
				const attr_expect *x = &osm_attrs[i];
				json_t	   *g;

				if (strcmp(x->device, r->device) != 0)
					continue;
				g = json_object_get(a, x->key);
				if (x->json_value)
					check(g && json_value_eq(g, x->json_value), "attr %s in %s", x->key, r->attrs);
				else
					check(g == NULL, "attr %s absent in %s", x->key, r->attrs);
			}
			json_decref(a);
		}
	}
	check(rows == 8, "osmand rows %d", rows);

	cur_row = "osmand synthetic";
	{
		osm_result	res;
		gw_err		e;
		int64_t		t;

		/* timestamps */
		check(osm_parse_time("1377177267", 10, &t) && t == INT64_C(1377177267000), "unix seconds");
		check(osm_parse_time("1377177267123", 13, &t) && t == INT64_C(1377177267123), "unix ms");
		check(osm_parse_time("1377177267.5", 12, &t) && t == INT64_C(1377177267500), "unix seconds.frac");
		check(osm_parse_time("2016-01-27T20:55:47+02:00", 25, &t) && t == expect_time("2016-01-27T18:55:47Z"),
			  "offset +02:00");
		check(osm_parse_time("2016-01-27T13:55:47.250-0500", 28, &t) &&
			  t == expect_time("2016-01-27T18:55:47.250Z"), "offset -0500 with ms");
		check(osm_parse_time("2014-06-04 09:10:11", 19, &t) && t == expect_time("2014-06-04T09:10:11Z"),
			  "space form is UTC");
		check(!osm_parse_time("2014-02-30T00:00:00Z", 20, &t), "Feb 30 rejected");
		check(!osm_parse_time("yesterday", 9, &t), "garbage time rejected");
		check(!osm_parse_time("2014-06-04T09:10:11Zjunk", 24, &t), "trailing junk rejected");

		/* status codes */
		e = osm("PUT", "/?id=1&lat=1&lon=2", NULL, NULL, &res);
		check(e == GW_ERR_BAD_METHOD && res.http_status == 405, "PUT -> 405");
		e = osm("GET", "/?id=1&lat=1", NULL, NULL, &res);
		check(e == GW_ERR_MISSING_FIELD && res.http_status == 400 && res.n_records == 0, "no lon -> 400");
		e = osm("GET", "/?id=1&lat=1&lon=abc", NULL, NULL, &res);
		check(e == GW_ERR_BAD_FIELD && res.http_status == 400, "bad lon -> 400");
		e = osm("GET", "/?id=1&lat=91&lon=2", NULL, NULL, &res);
		check(e == GW_ERR_BAD_FIELD && res.http_status == 400, "lat 91 -> 400");
		e = osm("GET", "/?id=1&lat=1&lon=2&x=%zz", NULL, NULL, &res);
		check(e == GW_ERR_BAD_REQUEST && res.http_status == 400, "bad %%-escape -> 400");
		e = osm("GET", "/?id=a%00b&lat=1&lon=2", NULL, NULL, &res);
		check(e == GW_ERR_BAD_REQUEST && res.http_status == 400, "%%00 -> 400");
		e = osm("GET", "/?id=1&lat=1&lon=2&n=%ff%fe", NULL, NULL, &res);
		check(e == GW_ERR_BAD_REQUEST && res.http_status == 400, "invalid utf-8 -> 400");
		e = osm("GET", "/?id=1&lat=1&lon=2&timestamp=nope", NULL, NULL, &res);
		check(e == GW_ERR_BAD_FIELD && res.http_status == 400, "bad timestamp -> 400");
		e = osm("POST", "/", "application/json", "{\"location\":", &res);
		check(e == GW_ERR_BAD_REQUEST && res.http_status == 400, "truncated json -> 400");
		e = osm("POST", "/", "application/json", "{\"device_id\":\"1\",\"device_id\":\"2\",\"location\":{}}", &res);
		check(res.http_status == 400, "duplicate json key -> 400");

		/* form body, encoding, attribute typing */
		e = osm("POST", "/", "application/x-www-form-urlencoded",
				"id=dev%201&location=10.5,-20.25&speed=10&heading=370&driverUniqueId=A%22B&note=a+b&v=1.50&valid=false",
				&res);
		check(e == GW_OK && res.n_records == 1, "form body: %s", gw_strerror(e));
		if (e == GW_OK)
		{
			json_t	   *a = attrs_of(&recs[0]);

			check(strcmp(recs[0].device, "dev 1") == 0 && recs[0].lat == 10.5 && recs[0].lon == -20.25 &&
				  near(recs[0].speed_kmh, 18.52, 1e-9) && near(recs[0].heading, 10, 1e-9) &&
				  !recs[0].valid && recs[0].time_ms == NOW_MS, "form fields");
			check(a && strcmp(json_string_value(json_object_get(a, "driverUniqueId")), "A\"B") == 0 &&
				  strcmp(json_string_value(json_object_get(a, "note")), "a b") == 0 &&
				  json_number_value(json_object_get(a, "v")) == 1.5, "form attrs %s", recs[0].attrs);
			json_decref(a);
		}
		/* JSON batch of two fixes with unix-ms timestamps */
		e = osm("POST", "/", "application/json",
				"{\"device_id\":42,\"location\":[{\"timestamp\":1700000000000,\"coords\":{\"latitude\":1,\"longitude\":2,\"speed\":10}},"
				"{\"timestamp\":\"2023-11-14T22:13:20.050Z\",\"coords\":{\"latitude\":1,\"longitude\":2}}]}", &res);
		check(e == GW_OK && res.n_records == 2 && strcmp(recs[0].device, "42") == 0 &&
			  recs[0].time_ms == INT64_C(1700000000000) && recs[1].time_ms == INT64_C(1700000000050) &&
			  near(recs[0].speed_kmh, 36.0, 1e-9), "json batch: %s", gw_strerror(e));
		e = osm("POST", "/", "application/json", "{\"location\":{\"coords\":{\"latitude\":1,\"longitude\":2}}}", &res);
		check(e == GW_ERR_MISSING_FIELD && res.http_status == 400, "json without device_id -> 400");
	}
	free(tsv);
}

/*
 * The acceptance oracle (fuzz/pg_accept.c) against what PostgreSQL 15 says
 * about these literals, and OsmAnd values that jsonb would refuse as
 * numbers: each decoded request's attrs must pass it.
 */
static void
test_pg_accept(void)
{
	static const struct
	{
		const char *num;
		bool		ok;
	}			nums[] = {
		{"1e1000", true}, {"1e-1000", true}, {"1e131071", true}, {"1e131072", false},
		{"1e-16383", true}, {"1e-16384", false}, {"1e200000", false}, {"0.1e-16383", false},
		{"1.5e131071", true}, {"-0", true}, {"0e99999999", true}, {"0e-20000", false},
		{"0.0e-20000", false}, {"1.000e-16381", false}, {"1.00e-16381", true},
		{"0.001e131074", true}, {"0.001e131075", false}, {"9.99e131071", true},
		{"0e1073741822", true}, {"0e1073741823", false}, {"1e-1073741822", false},
		{"01", false}, {"1.", false}, {".5", false}, {"+1", false}, {"NaN", false}, {"1e", false},
	};
	static const struct
	{
		const char *doc;
		bool		ok;
	}			docs[] = {
		{"{}", true}, {"{\"a\":1}", true}, {"{\"a\":\"\\u0000\"}", false},
		{"{\"a\":\"\\ud800\"}", false}, {"{\"a\":\"\\udc00\\ud800\"}", false},
		{"{\"a\":\"\\ud800\\udc00\"}", true}, {"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"\x01\"}", false}, {"{\"a\":1e200000}", false}, {"{\"a\":[1,{\"b\":null}]}", true},
		{"{\"a\":1,}", false}, {"[1]", false}, {"{\"a\":tru}", false}, {"{\"\xc3\xa9\":\"\xe2\x82\xac\"}", true},
	};
	static const struct
	{
		const char *query;
		const char *attr;		/* the attribute as it must come out */
	}			poison[] = {
		{"x=1e200000", "\"x\":\"1e200000\""},
		{"x=1e-20000", "\"x\":\"1e-20000\""},
		{"x=-1E1001", "\"x\":\"-1E1001\""},
		{"x=1e1000", "\"x\":1e1000"},
		{"x=NaN", "\"x\":\"NaN\""},
		{"x=Infinity", "\"x\":\"Infinity\""},
		{"x=%01%1f", "\"x\":\"\\u0001\\u001f\""},
		{"x=12345678901234567890123456789012345678901", "\"x\":\"12345678901234567890123456789012345678901\""},
	};

	cur_row = "pg_accept";
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		check(pg_json_number_accepts(nums[i].num, strlen(nums[i].num)) == nums[i].ok,
			  "number %s: PostgreSQL says %s", nums[i].num, nums[i].ok ? "ok" : "refused");
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		check(pg_jsonb_accepts(docs[i].doc, strlen(docs[i].doc), NULL) == docs[i].ok,
			  "document %s: PostgreSQL says %s", docs[i].doc, docs[i].ok ? "ok" : "refused");
	check(!pg_device_accepts("\xff", 1) && !pg_device_accepts("", 0) && pg_device_accepts("dev-\xc3\xa9", 6),
		  "device ids: valid UTF-8, not empty");

	cur_row = "osmand poison values";
	for (size_t i = 0; i < sizeof(poison) / sizeof(poison[0]); i++)
	{
		char		target[256];
		osm_result	res;
		gw_err		e;
		const char *why = NULL;

		snprintf(target, sizeof(target), "/?id=dev1&lat=1&lon=2&timestamp=1700000000&%s", poison[i].query);
		e = osm("GET", target, NULL, NULL, &res);
		check(e == GW_OK && res.n_records == 1, "%s decodes (%s)", poison[i].query, gw_strerror(e));
		if (e != GW_OK || res.n_records != 1)
			continue;
		check(pg_jsonb_accepts(recs[0].attrs, recs[0].attrs_len, &why), "%s: attrs %s acceptable (%s)",
			  poison[i].query, recs[0].attrs, why ? why : "");
		check(strstr(recs[0].attrs, poison[i].attr) != NULL, "%s: attrs %s hold %s",
			  poison[i].query, recs[0].attrs, poison[i].attr);
	}
}

int
main(void)
{
	vec_dir = getenv("FLEET_VECTORS");
	if (!vec_dir || !*vec_dir)
		vec_dir = FLEET_VECTORS_DEFAULT;
	printf("vectors: %s\n", vec_dir);

	test_teltonika();
	test_gt06();
	test_osmand();
	test_pg_accept();

	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
