/*
 * fuzz_osmand.c - libFuzzer target for the OsmAnd HTTP request parser.
 *
 * Input layout (as written by mkseeds): METHOD \n TARGET \n CONTENT-TYPE \n
 * BODY; missing parts are empty.  Target and body are passed as exact-size
 * heap buffers without a terminating NUL, the arena is exactly
 * osm_arena_bound() bytes, and that bound must hold.  Every decoded fix must
 * be one the database accepts (pg_accept.h): attrs that jsonb parses (a
 * number-looking value beyond numeric's range, "1e200000", must not be
 * copied as a number), a device id of valid UTF-8.
 */
#include "../osmand.h"
#include "pg_accept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gw_record recs[16];

static char *
dup_part(const uint8_t *p, size_t n, bool nul)
{
	char	   *s = malloc(n + (nul ? 1 : 0) + (n == 0));

	memcpy(s, p, n);
	if (nul)
		s[n] = '\0';
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[4] = {data, data, data, data};
	size_t		plen[4] = {0, 0, 0, 0};
	size_t		k = 0,
				start = 0;
	char	   *method,
			   *target,
			   *ctype,
			   *body,
			   *abuf;
	size_t		cap;
	gw_arena	ar;
	osm_result	res;
	gw_err		e;

	for (size_t i = 0; i < size && k < 3; i++)
		if (data[i] == '\n')
		{
			part[k] = data + start;
			plen[k] = i - start;
			k++;
			start = i + 1;
		}
	part[k] = data + start;
	plen[k] = size - start;

	method = dup_part(part[0], plen[0], true);
	target = dup_part(part[1], plen[1], false);
	ctype = dup_part(part[2], plen[2], true);
	body = dup_part(part[3], plen[3], false);
	cap = osm_arena_bound(plen[1], plen[3]);
	abuf = malloc(cap);
	gw_arena_init(&ar, abuf, cap);

	e = osm_decode(method, target, plen[1], ctype, body, plen[3], 1700000000000,
				   recs, 16, &ar, &res);
	if (e == GW_ERR_NOSPACE || e == GW_NEED_MORE)
		abort();
	if ((e == GW_OK) != (res.http_status == 200))
		abort();
	if (e != GW_OK && res.n_records != 0)
		abort();
	for (size_t i = 0; i < res.n_records; i++)
	{
		const char *why = NULL;

		if (strlen(recs[i].attrs) != recs[i].attrs_len || recs[i].device[0] == '\0')
			abort();
		/* what the database must accept, or the whole batch would fail */
		if (!pg_jsonb_accepts(recs[i].attrs, recs[i].attrs_len, &why) ||
			!pg_device_accepts(recs[i].device, strlen(recs[i].device)))
		{
			fprintf(stderr, "attrs jsonb would refuse (%s): %s\n", why ? why : "device id", recs[i].attrs);
			abort();
		}
	}

	free(abuf);
	free(method);
	free(target);
	free(ctype);
	free(body);
	return 0;
}
