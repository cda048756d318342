/*
 * gt06.c - GT06 / Concox framing and packet decoding (see gt06.h).
 *
 * Every field access is checked against the info length first; optional
 * trailing blocks (LBS, ACC/upload mode, mileage, alarm status) are decoded
 * only when the frame actually carries them.
 */
#include "gt06.h"

#include <string.h>

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t) ((p[0] << 8) | p[1]);
}

static uint32_t
be24(const uint8_t *p)
{
	return ((uint32_t) p[0] << 16) | ((uint32_t) p[1] << 8) | p[2];
}

static uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

gw_err
gt06_frame(const uint8_t *buf, size_t len, size_t *frame_len)
{
	size_t		hl,
				ln,
				total;

	*frame_len = 0;
	if (len == 0)
		return GW_NEED_MORE;
	if (buf[0] != 0x78 && buf[0] != 0x79)
		return GW_ERR_BAD_START;
	if (len < 2)
		return GW_NEED_MORE;
	if (buf[1] != buf[0])
		return GW_ERR_BAD_START;
	hl = buf[0] == 0x79 ? 4 : 3;
	if (len < hl)
		return GW_NEED_MORE;
	ln = hl == 4 ? be16(buf + 2) : buf[2];
	if (ln < 5)
		return GW_ERR_BAD_LENGTH;
	total = hl + ln + 2;
	if (total > GT06_MAX_FRAME)
		return GW_ERR_BAD_LENGTH;
	if (len < total)
		return GW_NEED_MORE;
	if (buf[total - 2] != 0x0D || buf[total - 1] != 0x0A)
		return GW_ERR_BAD_STOP;
	*frame_len = total;
	return GW_OK;
}

static void
make_ack(gt06_result *res)
{
	uint8_t    *r = res->reply;
	uint16_t	crc;

	r[0] = 0x78;
	r[1] = 0x78;
	r[2] = 0x05;
	r[3] = res->proto;
	r[4] = (uint8_t) (res->serial >> 8);
	r[5] = (uint8_t) res->serial;
	crc = gw_crc16_x25(r + 2, 4);
	r[6] = (uint8_t) (crc >> 8);
	r[7] = (uint8_t) crc;
	r[8] = 0x0D;
	r[9] = 0x0A;
	res->reply_len = 10;
}

static gw_err
decode_login(const uint8_t *info, size_t n, gt06_result *res)
{
	char		d[17];
	const char *s = d;

	if (n < 8)
		return GW_ERR_TRUNCATED;
	for (int i = 0; i < 8; i++)
	{
		unsigned	hi = info[i] >> 4,
					lo = info[i] & 15;

		if (hi > 9 || lo > 9)
			return GW_ERR_BAD_IMEI;
		d[2 * i] = (char) ('0' + hi);
		d[2 * i + 1] = (char) ('0' + lo);
	}
	d[16] = '\0';
	if (d[0] == '0')
		s++;					/* 15-digit IMEI padded with a leading 0 */
	strcpy(res->imei, s);
	res->kind = GT06_KIND_LOGIN;
	return GW_OK;
}

static gw_err
decode_position(const uint8_t *info, size_t n, const char *device, uint8_t proto,
				gw_record *rec, gw_arena *arena, gt06_result *res)
{
	int64_t		t;
	uint32_t	rlat,
				rlon;
	uint16_t	flags;
	size_t		p;
	gw_json		j;
	gw_err		e;

	if (n < 18)
		return GW_ERR_TRUNCATED;
	if (!gw_civil_to_ms(2000 + info[0], info[1], info[2], info[3], info[4], info[5], 0, &t))
		return GW_ERR_BAD_FIELD;

	gw_record_clear(rec);
	if (device)
	{
		size_t		dl = strnlen(device, GW_DEVICE_MAX);

		memcpy(rec->device, device, dl);
		rec->device[dl] = '\0';
	}
	rec->time_ms = t;
	rlat = be32(info + 7);
	rlon = be32(info + 11);
	rec->speed_kmh = info[15];
	flags = be16(info + 16);
	rec->lat = rlat / 1800000.0;
	rec->lon = rlon / 1800000.0;
	if (rec->lat > 90.0 || rec->lon > 180.0)
		return GW_ERR_BAD_FIELD;
	if (!(flags & (1 << 10)))
		rec->lat = -rec->lat;
	if (flags & (1 << 11))
		rec->lon = -rec->lon;
	rec->heading = flags & 0x3FF;
	rec->valid = (flags & (1 << 12)) != 0;

	gw_json_begin(&j, arena);
	gw_json_uint(&j, "sat", info[6] & 0x0F);
	p = 18;
	if (proto == 0x12 || proto == 0x22)
	{
		/* LBS: MCC(2, bit 15 = 2-byte MNC) MNC(1|2) LAC(2) CellID(3) */
		if (n >= p + 2)
		{
			uint16_t	mcc = be16(info + p);
			size_t		mncw = (mcc & 0x8000) ? 2 : 1;

			if (n >= p + 2 + mncw + 5)
			{
				uint16_t	mnc = mncw == 2 ? be16(info + p + 2) : info[p + 2];

				gw_json_uint(&j, "mcc", mcc & 0x7FFF);
				gw_json_uint(&j, "mnc", mnc);
				gw_json_uint(&j, "lac", be16(info + p + 2 + mncw));
				gw_json_uint(&j, "cid", be24(info + p + 4 + mncw));
				p += 2 + mncw + 5;
			}
		}
		if (proto == 0x22 && n >= p + 3)
		{
			gw_json_bool(&j, "ignition", info[p] != 0);
			gw_json_uint(&j, "upload_mode", info[p + 1]);
			gw_json_bool(&j, "archive", info[p + 2] != 0);
			p += 3;
			if (n >= p + 4)
			{
				gw_json_uint(&j, "odometer", be32(info + p));
				p += 4;
			}
		}
	}
	else if (proto == 0x16 || proto == 0x26)
	{
		/* LBS block with its own length byte (counting itself), then status */
		if (n >= p + 1)
		{
			size_t		lbs = info[p];

			if (lbs >= 1 && n >= p + lbs + 5)
			{
				const uint8_t *s = info + p + lbs;

				gw_json_uint(&j, "status", s[0]);
				gw_json_bool(&j, "ignition", (s[0] & 0x02) != 0);
				gw_json_uint(&j, "power_level", s[1]);
				gw_json_uint(&j, "gsm", s[2]);
				gw_json_uint(&j, "alarm", s[3]);
			}
		}
	}
	e = gw_json_end(&j, rec);
	if (e != GW_OK)
		return e;
	res->kind = GT06_KIND_POSITION;
	res->n_records = 1;
	return GW_OK;
}

gw_err
gt06_decode(const uint8_t *frame, size_t len, const char *device,
			gw_record *rec, gw_arena *arena, gt06_result *res)
{
	size_t		hl,
				ln,
				total,
				n;
	const uint8_t *info;
	gw_err		e;
	size_t		mark = arena->used;

	memset(res, 0, sizeof *res);
	if (len < 2)
		return GW_ERR_TRUNCATED;
	if ((frame[0] != 0x78 && frame[0] != 0x79) || frame[1] != frame[0])
		return GW_ERR_BAD_START;
	res->extended = frame[0] == 0x79;
	hl = res->extended ? 4 : 3;
	if (len < hl)
		return GW_ERR_TRUNCATED;
	ln = res->extended ? be16(frame + 2) : frame[2];
	if (ln < 5)
		return GW_ERR_BAD_LENGTH;
	total = hl + ln + 2;
	if (len < total)
		return GW_ERR_TRUNCATED;
	if (len > total || total > GT06_MAX_FRAME)
		return GW_ERR_BAD_LENGTH;
	if (frame[len - 2] != 0x0D || frame[len - 1] != 0x0A)
		return GW_ERR_BAD_STOP;
	if (be16(frame + len - 4) != gw_crc16_x25(frame + 2, len - 6))
		return GW_ERR_BAD_CRC;

	res->proto = frame[hl];
	res->serial = be16(frame + len - 6);
	info = frame + hl + 1;
	n = ln - 5;

	switch (res->proto)
	{
		case 0x01:
			e = decode_login(info, n, res);
			break;
		case 0x13:
			if (n < 3)
				return GW_ERR_TRUNCATED;
			res->terminal_info = info[0];
			res->voltage_level = info[1];
			res->gsm_signal = info[2];
			res->kind = GT06_KIND_STATUS;
			e = GW_OK;
			break;
		case 0x23:
			/* terminal info(1) voltage(2) gsm(1) language(2) */
			if (n < 4)
				return GW_ERR_TRUNCATED;
			res->terminal_info = info[0];
			res->gsm_signal = info[3];
			res->kind = GT06_KIND_STATUS;
			e = GW_OK;
			break;
		case 0x10:
		case 0x12:
		case 0x16:
		case 0x22:
		case 0x26:
			e = decode_position(info, n, device, res->proto, rec, arena, res);
			break;
		default:
			e = GW_ERR_UNKNOWN_TYPE;
			break;
	}
	if (e != GW_OK)
	{
		uint8_t		proto = res->proto;

		arena->used = mark;
		memset(res, 0, sizeof *res);
		res->proto = proto;
		return e;
	}
	make_ack(res);
	return GW_OK;
}
