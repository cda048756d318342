/*
 * fuzz_gt06.c - libFuzzer target for the GT06 parser: the input is framed
 * as a TCP stream with gt06_frame() and each frame decoded, and the whole
 * input is also decoded as one frame.  Exact-size heap copies and a heap
 * arena of GT06_ARENA_BOUND bytes let ASan catch any out-of-bounds access.
 * A copy with framing and CRC fixed up is decoded too, to get past the CRC.
 * Every decoded fix must be one the database accepts (pg_accept.h).
 */
#include "../gt06.h"
#include "pg_accept.h"

#include <stdlib.h>
#include <string.h>

static void
decode_one(const uint8_t *p, size_t n)
{
	uint8_t    *copy = malloc(n ? n : 1);
	char	   *abuf = malloc(GT06_ARENA_BOUND);
	gw_arena	ar;
	gt06_result res;
	gw_record	rec;
	gw_err		e;

	memcpy(copy, p, n);
	gw_arena_init(&ar, abuf, GT06_ARENA_BOUND);
	e = gt06_decode(copy, n, "863586038760942", &rec, &ar, &res);
	if (e == GW_ERR_NOSPACE || e == GW_NEED_MORE)
		abort();
	if (e != GW_OK && (res.reply_len != 0 || res.n_records != 0))
		abort();
	if (e == GW_OK && (res.reply_len != 10 || res.reply[0] != 0x78 || res.reply[9] != 0x0A))
		abort();
	if (e == GW_OK && res.n_records == 1 && strlen(rec.attrs) != rec.attrs_len)
		abort();
	/* what the database must accept, or the whole batch would fail */
	if (e == GW_OK && res.n_records == 1 &&
		(!pg_jsonb_accepts(rec.attrs, rec.attrs_len, NULL) ||
		 !pg_device_accepts(rec.device, strlen(rec.device))))
		abort();
	free(abuf);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		off = 0;

	while (off < size)
	{
		size_t		fl;
		uint8_t    *copy = malloc(size - off);
		gw_err		e;

		memcpy(copy, data + off, size - off);
		e = gt06_frame(copy, size - off, &fl);
		free(copy);
		if (e != GW_OK)
			break;
		if (fl == 0 || fl > size - off)
			abort();
		decode_one(data + off, fl);
		off += fl;
	}
	decode_one(data, size);

	/* a copy with start bits, length, CRC and stop bits fixed up */
	if (size >= 10 && size <= GT06_MAX_FRAME)
	{
		uint8_t    *fixed = malloc(size);
		uint16_t	crc;
		bool		ext = size - 5 > 0xFF;

		memcpy(fixed, data, size);
		fixed[0] = fixed[1] = ext ? 0x79 : 0x78;
		if (ext)
		{
			fixed[2] = (uint8_t) ((size - 6) >> 8);
			fixed[3] = (uint8_t) (size - 6);
		}
		else
			fixed[2] = (uint8_t) (size - 5);
		crc = gw_crc16_x25(fixed + 2, size - 6);
		fixed[size - 4] = (uint8_t) (crc >> 8);
		fixed[size - 3] = (uint8_t) crc;
		fixed[size - 2] = 0x0D;
		fixed[size - 1] = 0x0A;
		decode_one(fixed, size);
		free(fixed);
	}
	return 0;
}
