/*
 * test_sync.c - unit tests of fleet-sync's request validation and rate
 * limit (no database, no HTTP).  Every refusal names its field.
 */
#include "../validate.h"
#include "../ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, what) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); } } while (0)

/* A push body that must be refused with this status and field. */
static void
push_refused(const char *body, sv_status want, const char *field, const char *what)
{
	char	   *out = NULL;
	int			n = -1;
	sv_problem	p;
	sv_status	st = sv_push(body, strlen(body), 3, &out, &n, &p);

	CHECK(st == want, what);
	CHECK(out == NULL, what);
	if (st == want && field)
	{
		CHECK(strcmp(p.field, field) == 0, what);
		if (strcmp(p.field, field) != 0)
			fprintf(stderr, "  field was \"%s\"\n", p.field);
	}
	free(out);
}

static void
test_push(void)
{
	char	   *out = NULL;
	int			n = 0;
	sv_problem	p;
	const char *ok = "{\"mutations\":[{\"id\":1,\"workflow\":\"stop_status\",\"args\":{\"stop_id\":5,\"status\":\"arrived\"},"
		"\"client_time\":\"2026-01-01T00:00:00Z\",\"base_version\":2,\"hlc\":\"1:0\"},"
		"{\"id\":2,\"workflow\":\"proof_of_delivery\",\"args\":{},\"base_version\":null,\"hlc\":null}]}";
	char	   *pj;

	CHECK(sv_push(ok, strlen(ok), 3, &out, &n, &p) == SV_OK, "valid push accepted");
	CHECK(n == 2, "two mutations counted");
	CHECK(out && out[0] == '[' && strstr(out, "\"stop_status\""), "mutations passed on as an array");
	free(out);

	push_refused("", SV_MALFORMED, "", "empty body");
	push_refused("{\"mutations\": [", SV_MALFORMED, "", "truncated JSON");
	push_refused("{\"a\":1,\"a\":2}", SV_MALFORMED, "", "duplicate keys");
	push_refused("[1,2]", SV_INVALID, "", "not an object");
	push_refused("{}", SV_INVALID, "mutations", "no mutations");
	push_refused("{\"mutations\":{}}", SV_INVALID, "mutations", "mutations not an array");
	push_refused("{\"mutations\":[]}", SV_INVALID, "mutations", "empty mutations");
	push_refused("{\"mutations\":[1]}", SV_INVALID, "mutations[0]", "mutation not an object");
	push_refused("{\"mutations\":[{\"id\":\"1\",\"workflow\":\"w\",\"args\":{}}]}", SV_INVALID, "mutations[0].id", "id as string");
	push_refused("{\"mutations\":[{\"id\":0,\"workflow\":\"w\",\"args\":{}}]}", SV_INVALID, "mutations[0].id", "id zero");
	push_refused("{\"mutations\":[{\"id\":1.5,\"workflow\":\"w\",\"args\":{}}]}", SV_INVALID, "mutations[0].id", "id fractional");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":7,\"args\":{}}]}", SV_INVALID, "mutations[0].workflow", "workflow number");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\"}]}", SV_INVALID, "mutations[0].args", "args missing");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\",\"args\":[]}]}", SV_INVALID, "mutations[0].args", "args array");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\",\"args\":{},\"client_time\":5}]}", SV_INVALID,
				 "mutations[0].client_time", "client_time number");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\",\"args\":{}},{\"id\":2,\"workflow\":\"w\",\"args\":{},\"base_version\":\"3\"}]}",
				 SV_INVALID, "mutations[1].base_version", "base_version string");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\",\"args\":{},\"hlc\":12}]}", SV_INVALID, "mutations[0].hlc", "hlc number");
	push_refused("{\"mutations\":[{\"id\":1,\"workflow\":\"w\",\"args\":{}},{\"id\":2,\"workflow\":\"w\",\"args\":{}},"
				 "{\"id\":3,\"workflow\":\"w\",\"args\":{}},{\"id\":4,\"workflow\":\"w\",\"args\":{}}]}",
				 SV_TOO_MANY, "mutations", "more than the limit");

	sv_push("{\"mutations\":[{\"id\":-1}]}", strlen("{\"mutations\":[{\"id\":-1}]}"), 3, &out, &n, &p);
	pj = sv_problem_json(&p);
	CHECK(pj && strstr(pj, "\"error\":\"invalid_request\"") && strstr(pj, "\"field\":\"mutations[0].id\"") &&
		  strstr(pj, "positive integer"), "problem body names the field");
	free(pj);
}

static void
test_pull(void)
{
	char	   *cursor = NULL;
	int			max = 0;
	sv_problem	p;

	CHECK(sv_pull("", strlen(""), 500, 5000, &cursor, &max, &p) == SV_OK && cursor == NULL && max == 500, "empty pull body");
	CHECK(sv_pull("{\"cursor\":null,\"max\":7}", strlen("{\"cursor\":null,\"max\":7}"), 500, 5000, &cursor, &max, &p) == SV_OK && !cursor && max == 7,
		  "null cursor, max");
	CHECK(sv_pull("{\"cursor\":\"fleet1:1:c:2:3\"}", strlen("{\"cursor\":\"fleet1:1:c:2:3\"}"), 500, 5000, &cursor, &max, &p) == SV_OK &&
		  cursor && strcmp(cursor, "fleet1:1:c:2:3") == 0, "cursor passed on");
	free(cursor);
	CHECK(sv_pull("{\"cursor\":5}", strlen("{\"cursor\":5}"), 500, 5000, &cursor, &max, &p) == SV_INVALID && strcmp(p.field, "cursor") == 0,
		  "cursor number");
	CHECK(sv_pull("{\"max\":0}", strlen("{\"max\":0}"), 500, 5000, &cursor, &max, &p) == SV_INVALID && strcmp(p.field, "max") == 0, "max 0");
	CHECK(sv_pull("{\"max\":5001}", strlen("{\"max\":5001}"), 500, 5000, &cursor, &max, &p) == SV_INVALID, "max above limit");
	CHECK(sv_pull("{\"max\":\"5\"}", strlen("{\"max\":\"5\"}"), 500, 5000, &cursor, &max, &p) == SV_INVALID, "max string");
	CHECK(sv_pull("nope", strlen("nope"), 500, 5000, &cursor, &max, &p) == SV_MALFORMED, "pull not JSON");
}

static void
test_event(void)
{
	char	   *k,
			   *kind,
			   *pl,
			   *at;
	sv_problem	p;
	const char *ok = "{\"key\":\"panic-1\",\"kind\":\"driver.panic\",\"payload\":{\"lat\":1},\"occurred_at\":\"2026-01-01T00:00:00Z\"}";

	CHECK(sv_event(ok, strlen(ok), &k, &kind, &pl, &at, &p) == SV_OK && strcmp(k, "panic-1") == 0 &&
		  strcmp(kind, "driver.panic") == 0 && strcmp(pl, "{\"lat\":1}") == 0 && at, "valid event");
	free(k);
	free(kind);
	free(pl);
	free(at);
	CHECK(sv_event("{\"kind\":\"driver.panic\"}", strlen("{\"kind\":\"driver.panic\"}"), &k, &kind, &pl, &at, &p) == SV_INVALID && strcmp(p.field, "key") == 0,
		  "event without key");
	CHECK(sv_event("{\"key\":\"a\",\"kind\":1}", strlen("{\"key\":\"a\",\"kind\":1}"), &k, &kind, &pl, &at, &p) == SV_INVALID && strcmp(p.field, "kind") == 0,
		  "event kind number");
	CHECK(sv_event("{\"key\":\"a\",\"kind\":\"x.y\",\"payload\":[]}", strlen("{\"key\":\"a\",\"kind\":\"x.y\",\"payload\":[]}"), &k, &kind, &pl, &at, &p) == SV_INVALID &&
		  strcmp(p.field, "payload") == 0, "payload array");
	CHECK(sv_event("{\"key\":\"a\",\"kind\":\"x.y\",\"occurred_at\":1}", strlen("{\"key\":\"a\",\"kind\":\"x.y\",\"occurred_at\":1}"), &k, &kind, &pl, &at, &p) == SV_INVALID &&
		  strcmp(p.field, "occurred_at") == 0, "occurred_at number");
}

static void
test_ratelimit(void)
{
	ratelimit  *rl = ratelimit_new(2, 3, 16);
	double		wait;
	int			ok = 0;

	for (int i = 0; i < 5; i++)
		ok += ratelimit_take(rl, "tok-a", 100.0, &wait);
	CHECK(ok == 3, "burst of 3 then refused");
	CHECK(!ratelimit_take(rl, "tok-a", 100.0, &wait) && wait > 0.4 && wait <= 0.5, "retry after half a second at 2/s");
	CHECK(ratelimit_take(rl, "tok-b", 100.0, &wait), "another token has its own bucket");
	CHECK(ratelimit_take(rl, "tok-a", 100.6, &wait), "refilled after the wait");
	CHECK(!ratelimit_take(rl, "tok-a", 100.6, &wait), "and empty again");
	ratelimit_free(rl);
	rl = ratelimit_new(0, 1, 4);
	for (int i = 0; i < 100; i++)
		CHECK(ratelimit_take(rl, "x", 1.0, &wait), "rate 0 is off");
	ratelimit_free(rl);
}

/* A body whose error text quotes invalid UTF-8 still gets a JSON problem. */
static void
test_problem_utf8(void)
{
	static const char body[] = "{\"mutations\":[{\"id\":2,\"args\":{\"may\":\"\\ud8\xcd\x98\\ude00\"}}]}";
	sv_problem	p;
	char	   *m = NULL,
			   *j;
	int			count;

	memset(&p, 0, sizeof(p));
	CHECK(sv_push(body, sizeof(body) - 1, 10, &m, &count, &p) == SV_MALFORMED, "broken escape: malformed_json");
	j = sv_problem_json(&p);
	CHECK(j != NULL && strstr(j, "malformed_json") != NULL, "the problem renders as JSON despite raw bytes in the error text");
	free(j);
	free(m);
}

int
main(void)
{
	test_problem_utf8();
	test_push();
	test_pull();
	test_event();
	test_ratelimit();
	if (failures)
	{
		fprintf(stderr, "test_sync: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_sync: all passed\n");
	return 0;
}
