/*
 * fuzz_sync.c - libFuzzer target for the sync service's request checks
 * (validate.c).  The first byte picks push, pull or event (and the
 * mutation limit), the rest is the body, passed as an exact-size heap copy.
 *
 * Asserted: the status is one of the four; on SV_OK every output the
 * service hands to the database is something it accepts: the mutations
 * array and the event payload parse as jsonb (pg_accept.h: strict JSON,
 * valid UTF-8, no \u0000, numbers within numeric's range), the cursor, key,
 * kind and occurred_at are valid UTF-8 without NUL; on an error nothing is
 * output and the problem renders as a JSON object jansson reads back.
 */
#include "../validate.h"
#include "../../gateway/fuzz/pg_accept.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a JSON value text, wrapped in an object for the object-only oracle */
static void
check_jsonb(const char *v)
{
	size_t		n = strlen(v);
	char	   *w = malloc(n + 8);
	const char *why = NULL;

	memcpy(w, "{\"v\":", 5);
	memcpy(w + 5, v, n);
	w[n + 5] = '}';
	if (!pg_jsonb_accepts(w, n + 6, &why))
	{
		fprintf(stderr, "jsonb would refuse (%s): %s\n", why, v);
		abort();
	}
	free(w);
}

static void
check_text(const char *v)
{
	if (v && !pg_text_accepts(v, strlen(v)))
		abort();
}

static void
check_problem(sv_status st, const sv_problem *p)
{
	char	   *j;
	json_t	   *back;

	if (st != p->status || !p->error[0])
		abort();
	j = sv_problem_json(p);
	if (!j)
		abort();
	back = json_loads(j, 0, NULL);
	if (!json_is_object(back))
		abort();
	json_decref(back);
	free(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *body;
	sv_problem	p;
	sv_status	st;
	uint8_t		sel;

	if (size < 1)
		return 0;
	sel = data[0];
	body = malloc(size);
	memcpy(body, data + 1, size - 1);
	memset(&p, 0, sizeof(p));
	switch (sel % 3)
	{
		case 0:
			{
				char	   *m = NULL;
				int			count = -1;

				st = sv_push(body, size - 1, 1 + sel / 3 % 50, &m, &count, &p);
				if (st == SV_OK)
				{
					if (!m || count < 0)
						abort();
					check_jsonb(m);
				}
				else if (m)
					abort();
				free(m);
				break;
			}
		case 1:
			{
				char	   *cursor = NULL;
				int			max = -1;

				st = sv_pull(body, size - 1, 500, 5000, &cursor, &max, &p);
				if (st == SV_OK)
				{
					if (max < 1 || max > 5000)
						abort();
					check_text(cursor);
				}
				free(cursor);
				break;
			}
		default:
			{
				char	   *key = NULL,
						   *kind = NULL,
						   *payload = NULL,
						   *occurred = NULL;

				st = sv_event(body, size - 1, &key, &kind, &payload, &occurred, &p);
				if (st == SV_OK)
				{
					if (!key || !kind || !payload)
						abort();
					check_text(key);
					check_text(kind);
					check_text(occurred);
					check_jsonb(payload);
				}
				free(key);
				free(kind);
				free(payload);
				free(occurred);
				break;
			}
	}
	if (st != SV_OK && st != SV_MALFORMED && st != SV_INVALID && st != SV_TOO_MANY)
		abort();
	if (st != SV_OK)
		check_problem(st, &p);
	free(body);
	return 0;
}
