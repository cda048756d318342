/*
 * fuzz_teltonika.c - libFuzzer target for the Teltonika parser.
 *
 * The input is treated three ways: as a TCP receive buffer cut into frames
 * by tlt_frame() and decoded frame by frame, as one TCP frame given whole
 * to tlt_decode_tcp(), and as one UDP datagram.  Each decode gets an arena
 * of exactly tlt_arena_bound() bytes on the heap, so ASan sees any write
 * past it, and the documented bound must hold (never GW_ERR_NOSPACE).
 * Inputs are copied to exact-size heap buffers so over-reads are caught.
 * A copy with length and CRC fixed up is decoded too, to get past the CRC.
 * Every decoded fix must be one the database accepts (pg_accept.h).
 */
#include "../teltonika.h"
#include "pg_accept.h"

#include <stdlib.h>
#include <string.h>

static gw_record recs[TLT_MAX_RECORDS];

static void
check_result(gw_err e, const tlt_result *res, const gw_arena *ar)
{
	if (e == GW_ERR_NOSPACE || e == GW_NEED_MORE)
		abort();				/* the arena bound is documented to suffice */
	if (e != GW_OK)
	{
		if (res->reply_len != 0 || res->n_records != 0)
			abort();
		return;
	}
	if (res->kind == TLT_KIND_AVL && res->reply_len == 0)
		abort();
	for (size_t i = 0; i < res->n_records; i++)
	{
		const gw_record *r = &recs[i];

		if (r->attrs < ar->buf || r->attrs + r->attrs_len >= ar->buf + ar->used ||
			r->attrs[r->attrs_len] != '\0' || strlen(r->attrs) != r->attrs_len ||
			r->attrs[0] != '{' || r->attrs[r->attrs_len - 1] != '}')
			abort();
		/* what the database must accept, or the whole batch would fail */
		if (!pg_jsonb_accepts(r->attrs, r->attrs_len, NULL) ||
			!pg_device_accepts(r->device, strlen(r->device)))
			abort();
	}
}

static void
decode_one(const uint8_t *p, size_t n, bool udp)
{
	uint8_t    *copy = malloc(n ? n : 1);
	size_t		cap = tlt_arena_bound(n);
	char	   *abuf = malloc(cap);
	gw_arena	ar;
	tlt_result	res;
	gw_err		e;

	memcpy(copy, p, n);
	gw_arena_init(&ar, abuf, cap);
	if (udp)
		e = tlt_decode_udp(copy, n, recs, TLT_MAX_RECORDS, &ar, &res);
	else
		e = tlt_decode_tcp(copy, n, "352093086403655", recs, TLT_MAX_RECORDS, &ar, &res);
	check_result(e, &res, &ar);
	free(abuf);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		off = 0;

	/* stream framing */
	while (off < size)
	{
		size_t		fl;
		uint8_t    *copy = malloc(size - off);
		gw_err		e;

		memcpy(copy, data + off, size - off);
		e = tlt_frame(copy, size - off, &fl);
		free(copy);
		if (e != GW_OK)
			break;
		if (fl == 0 || fl > size - off)
			abort();
		decode_one(data + off, fl, false);
		off += fl;
	}
	decode_one(data, size, false);
	decode_one(data, size, true);

	/*
	 * Most mutations break the CRC; decode a copy with the CRC fixed up so
	 * the record decoder behind it is reached through TCP as well.
	 */
	if (size >= 12 && size <= 12 + (size_t) TLT_MAX_DATA_LEN)
	{
		uint8_t    *fixed = malloc(size);
		uint16_t	crc = gw_crc16_ibm(data + 8, size - 12);

		memcpy(fixed, data, size);
		fixed[4] = fixed[5] = 0;
		fixed[6] = (uint8_t) ((size - 12) >> 8);
		fixed[7] = (uint8_t) (size - 12);
		fixed[size - 4] = fixed[size - 3] = 0;
		fixed[size - 2] = (uint8_t) (crc >> 8);
		fixed[size - 1] = (uint8_t) crc;
		decode_one(fixed, size, false);
		free(fixed);
	}
	return 0;
}
