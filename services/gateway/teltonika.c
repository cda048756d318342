/*
 * teltonika.c - Teltonika TCP/UDP framing and Codec 8 / 8E / 16 AVL
 * decoding (see teltonika.h for the wire format).
 *
 * All reads go through a bounds-checked cursor (rd_*): once a read would
 * pass the end, the cursor is marked failed and every later read returns 0,
 * so structural errors surface as GW_ERR_TRUNCATED without ever touching
 * memory outside the frame.
 */
#include "teltonika.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* latest accepted fix time: 9999-12-31T23:59:59.999Z */
#define TLT_MAX_TIME_MS INT64_C(253402300799999)

typedef struct
{
	const uint8_t *p;
	size_t		pos;
	size_t		end;
	bool		fail;
} rd;

static bool
rd_has(rd *r, size_t n)
{
	if (r->fail || n > r->end - r->pos)
	{
		r->fail = true;
		return false;
	}
	return true;
}

static uint64_t
rd_u(rd *r, size_t n)
{
	uint64_t	v = 0;

	if (!rd_has(r, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | r->p[r->pos + i];
	r->pos += n;
	return v;
}

static const uint8_t *
rd_take(rd *r, size_t n)
{
	const uint8_t *q;

	if (!rd_has(r, n))
		return NULL;
	q = r->p + r->pos;
	r->pos += n;
	return q;
}

static uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t) ((p[0] << 8) | p[1]);
}

size_t
tlt_arena_bound(size_t len)
{
	/*
	 * Worst case per wire byte: a codec 8 IO element of 2 bytes becomes
	 * ',"io255":255' (12 chars); per record the fixed members take < 64
	 * chars for >= 30 wire bytes.  8 chars per byte covers both.
	 */
	return 8 * len + 256;
}

static void
set_device(gw_record *rec, const char *device)
{
	if (device)
	{
		size_t		n = strnlen(device, GW_DEVICE_MAX);

		memcpy(rec->device, device, n);
		rec->device[n] = '\0';
	}
}

/* one Codec 8 / 8E / 16 AVL record */
static gw_err
decode_record(rd *r, uint8_t codec, const char *device, gw_record *rec, gw_arena *arena)
{
	bool		ext = codec == 0x8E;
	size_t		idw = (codec == 0x8E || codec == 0x10) ? 2 : 1;
	size_t		cw = ext ? 2 : 1;
	uint64_t	ts;
	int32_t		lon,
				lat;
	int16_t		alt;
	unsigned	angle,
				sats,
				speed,
				prio,
				event,
				gen = 0;
	gw_json		j;
	char		k[16];

	gw_record_clear(rec);
	set_device(rec, device);

	ts = rd_u(r, 8);
	prio = (unsigned) rd_u(r, 1);
	lon = (int32_t) (uint32_t) rd_u(r, 4);
	lat = (int32_t) (uint32_t) rd_u(r, 4);
	alt = (int16_t) (uint16_t) rd_u(r, 2);
	angle = (unsigned) rd_u(r, 2);
	sats = (unsigned) rd_u(r, 1);
	speed = (unsigned) rd_u(r, 2);
	event = (unsigned) rd_u(r, idw);
	if (codec == 0x10)
		gen = (unsigned) rd_u(r, 1);
	(void) rd_u(r, cw);			/* N of total IO: informational */
	if (r->fail)
		return GW_ERR_TRUNCATED;
	if (ts > (uint64_t) TLT_MAX_TIME_MS)
		return GW_ERR_BAD_FIELD;

	rec->time_ms = (int64_t) ts;
	rec->lat = lat / 1e7;
	rec->lon = lon / 1e7;
	rec->altitude = alt;
	rec->heading = angle;
	rec->speed_kmh = speed;
	rec->valid = sats != 0 && fabs(rec->lat) <= 90.0 && fabs(rec->lon) <= 180.0;

	gw_json_begin(&j, arena);
	gw_json_uint(&j, "sat", sats);
	gw_json_uint(&j, "priority", prio);
	gw_json_uint(&j, "event", event);
	if (codec == 0x10)
		gw_json_uint(&j, "gen", gen);

	for (size_t width = 1; width <= 8; width *= 2)
	{
		uint64_t	n = rd_u(r, cw);

		for (uint64_t i = 0; i < n && !r->fail; i++)
		{
			unsigned	id = (unsigned) rd_u(r, idw);
			uint64_t	v = rd_u(r, width);

			if (r->fail)
				break;
			snprintf(k, sizeof k, "io%u", id);
			gw_json_uint(&j, k, v);
		}
	}
	if (ext)
	{
		uint64_t	n = rd_u(r, 2);

		for (uint64_t i = 0; i < n && !r->fail; i++)
		{
			unsigned	id = (unsigned) rd_u(r, 2);
			size_t		vl = (size_t) rd_u(r, 2);
			const uint8_t *v = rd_take(r, vl);

			if (r->fail)
				break;
			snprintf(k, sizeof k, "io%u", id);
			gw_json_hex(&j, k, v, vl);
		}
	}
	if (r->fail)
	{
		(void) gw_json_end(&j, NULL);
		return GW_ERR_TRUNCATED;
	}
	return gw_json_end(&j, rec);
}

/*
 * The codec..N2 part shared by TCP and UDP: body[0] codec, body[1] N1,
 * records, body[blen-1] N2.
 */
static gw_err
decode_avl(const uint8_t *body, size_t blen, const char *device,
		   gw_record *recs, size_t max_recs, gw_arena *arena, tlt_result *res)
{
	uint8_t		codec,
				n1,
				n2;
	rd			r;
	size_t		arena_mark = arena->used;

	if (blen < 3)
		return GW_ERR_BAD_LENGTH;
	codec = body[0];
	n1 = body[1];
	n2 = body[blen - 1];
	if (n1 != n2)
		return GW_ERR_COUNT_MISMATCH;

	r.p = body;
	r.pos = 2;
	r.end = blen - 1;
	r.fail = false;
	res->codec = codec;
	res->count = n1;

	switch (codec)
	{
		case 0x08:
		case 0x8E:
		case 0x10:
			if (n1 > max_recs)
				return GW_ERR_TOO_MANY;
			for (unsigned i = 0; i < n1; i++)
			{
				gw_err		e = decode_record(&r, codec, device, &recs[i], arena);

				if (e != GW_OK)
				{
					arena->used = arena_mark;
					return e;
				}
			}
			res->kind = TLT_KIND_AVL;
			res->n_records = n1;
			break;
		case 0x0C:
		case 0x0D:
		case 0x0E:
			for (unsigned i = 0; i < n1; i++)
			{
				uint8_t		type = (uint8_t) rd_u(&r, 1);
				size_t		size = (size_t) rd_u(&r, 4);
				const uint8_t *payload = rd_take(&r, size);

				if (r.fail)
					return GW_ERR_TRUNCATED;
				if (i == 0)
				{
					res->cmd_type = type;
					res->cmd_payload = payload;
					res->cmd_payload_len = size;
				}
			}
			res->kind = TLT_KIND_COMMAND;
			break;
		default:
			return GW_ERR_UNKNOWN_CODEC;
	}
	if (r.pos != r.end)
	{
		arena->used = arena_mark;
		res->kind = TLT_KIND_NONE;
		res->n_records = 0;
		return GW_ERR_BAD_LENGTH;	/* records do not fill data_len exactly */
	}
	return GW_OK;
}

static bool
imei_ok(const uint8_t *p, size_t n)
{
	if (n < 1 || n > TLT_IMEI_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

gw_err
tlt_frame(const uint8_t *buf, size_t len, size_t *frame_len)
{
	uint16_t	n;
	uint32_t	dlen;

	*frame_len = 0;
	if (len == 0)
		return GW_NEED_MORE;
	if (buf[0] == 0xFF)
	{
		*frame_len = 1;
		return GW_OK;
	}
	if (len < 2)
		return GW_NEED_MORE;
	n = be16(buf);
	if (n != 0)
	{
		/* IMEI frame */
		if (n > TLT_IMEI_MAX)
			return GW_ERR_BAD_LENGTH;
		if (len < 2 + (size_t) n)
			return GW_NEED_MORE;
		*frame_len = 2 + (size_t) n;
		return GW_OK;
	}
	if (len < 4)
		return GW_NEED_MORE;
	if (buf[2] != 0 || buf[3] != 0)
		return GW_ERR_BAD_PREAMBLE;
	if (len < 8)
		return GW_NEED_MORE;
	dlen = be32(buf + 4);
	if (dlen < 3 || dlen > TLT_MAX_DATA_LEN)
		return GW_ERR_BAD_LENGTH;
	if (len < 12 + (size_t) dlen)
		return GW_NEED_MORE;
	*frame_len = 12 + (size_t) dlen;
	return GW_OK;
}

static void
result_init(tlt_result *res)
{
	memset(res, 0, sizeof *res);
}

gw_err
tlt_decode_tcp(const uint8_t *frame, size_t len, const char *device,
			   gw_record *recs, size_t max_recs, gw_arena *arena, tlt_result *res)
{
	uint32_t	dlen,
				crc_field;
	gw_err		e;

	result_init(res);
	if (len == 0)
		return GW_ERR_TRUNCATED;
	if (len == 1 && frame[0] == 0xFF)
	{
		res->kind = TLT_KIND_PING;
		return GW_OK;
	}
	if (len < 2)
		return GW_ERR_TRUNCATED;
	if (be16(frame) != 0)
	{
		size_t		n = be16(frame);

		if (len < 2 + n)
			return GW_ERR_TRUNCATED;
		if (len > 2 + n || n > TLT_IMEI_MAX)
			return GW_ERR_BAD_LENGTH;
		if (!imei_ok(frame + 2, n))
			return GW_ERR_BAD_IMEI;
		memcpy(res->imei, frame + 2, n);
		res->imei[n] = '\0';
		res->kind = TLT_KIND_IMEI;
		return GW_OK;
	}
	if (len < 12)
		return GW_ERR_TRUNCATED;
	if (be32(frame) != 0)
		return GW_ERR_BAD_PREAMBLE;
	dlen = be32(frame + 4);
	if (dlen < 3 || dlen > TLT_MAX_DATA_LEN)
		return GW_ERR_BAD_LENGTH;
	if (len < 12 + (size_t) dlen)
		return GW_ERR_TRUNCATED;
	if (len > 12 + (size_t) dlen)
		return GW_ERR_BAD_LENGTH;
	crc_field = be32(frame + 8 + dlen);
	if (crc_field != gw_crc16_ibm(frame + 8, dlen))
		return GW_ERR_BAD_CRC;

	e = decode_avl(frame + 8, dlen, device, recs, max_recs, arena, res);
	if (e != GW_OK)
	{
		result_init(res);
		return e;
	}
	if (res->kind == TLT_KIND_AVL)
	{
		res->reply[0] = 0;
		res->reply[1] = 0;
		res->reply[2] = 0;
		res->reply[3] = (uint8_t) res->count;
		res->reply_len = 4;
	}
	return GW_OK;
}

gw_err
tlt_decode_udp(const uint8_t *dgram, size_t len,
			   gw_record *recs, size_t max_recs, gw_arena *arena, tlt_result *res)
{
	size_t		ln,
				imei_len;
	gw_err		e;
	char		imei[TLT_IMEI_MAX + 1];

	result_init(res);
	if (len < 8)
		return GW_ERR_TRUNCATED;
	ln = be16(dgram);
	if (ln > len - 2)
		return GW_ERR_TRUNCATED;
	if (ln < len - 2)
		return GW_ERR_BAD_LENGTH;
	imei_len = be16(dgram + 6);
	if (imei_len > len - 8)
		return GW_ERR_TRUNCATED;
	if (!imei_ok(dgram + 8, imei_len))
		return GW_ERR_BAD_IMEI;
	memcpy(imei, dgram + 8, imei_len);
	imei[imei_len] = '\0';

	e = decode_avl(dgram + 8 + imei_len, len - 8 - imei_len, imei, recs, max_recs, arena, res);
	if (e != GW_OK)
	{
		result_init(res);
		return e;
	}
	if (res->kind != TLT_KIND_AVL)
	{
		/* command responses do not travel over UDP */
		result_init(res);
		return GW_ERR_UNKNOWN_CODEC;
	}
	memcpy(res->imei, imei, imei_len + 1);
	res->packet_id = be16(dgram + 2);
	res->packet_type = dgram[4];
	res->avl_packet_id = dgram[5];
	res->reply[0] = 0x00;
	res->reply[1] = 0x05;
	res->reply[2] = dgram[2];
	res->reply[3] = dgram[3];
	res->reply[4] = 0x01;
	res->reply[5] = dgram[5];
	res->reply[6] = (uint8_t) res->count;
	res->reply_len = 7;
	return GW_OK;
}
