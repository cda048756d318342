/*
 * validate.c - request body shapes for fleet-sync.  See validate.h.
 */
#include "validate.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/utf8.h"

static sv_status
problem(sv_problem *p, sv_status st, const char *error, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * Make s valid UTF-8 in place: a byte that does not start a well-formed
 * sequence (jansson's error text quotes raw input; truncation may cut a
 * character) becomes '?', so the problem always renders as JSON.
 */
static void
utf8_scrub(char *str)
{
	unsigned char *s = (unsigned char *) str;
	size_t		n = strlen(str),
				i = 0;

	while (i < n)
	{
		size_t		k = utf8_seq(s, n, i);

		if (k == 0)
			s[i++] = '?';
		else
			i += k;
	}
}

static sv_status
problem(sv_problem *p, sv_status st, const char *error, const char *field, const char *fmt, ...)
{
	va_list		ap;

	p->status = st;
	snprintf(p->error, sizeof(p->error), "%s", error);
	snprintf(p->field, sizeof(p->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	utf8_scrub(p->field);
	utf8_scrub(p->message);
	return st;
}

/* Parse a body that must be a JSON object; an empty body is {} if allowed. */
static json_t *
load_object(const char *body, size_t len, int empty_ok, sv_problem *p)
{
	json_error_t e;
	json_t	   *o;
	size_t		i;

	for (i = 0; i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'); i++)
		;
	if (i == len)
	{
		if (empty_ok)
			return json_object();
		problem(p, SV_MALFORMED, "malformed_json", "", "the request body is empty; a JSON object is expected");
		return NULL;
	}
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
	if (!o)
	{
		problem(p, SV_MALFORMED, "malformed_json", "", "the body is not valid JSON: %s (line %d, column %d)",
				e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(o))
	{
		json_decref(o);
		problem(p, SV_INVALID, "invalid_request", "", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* An optional member: absent or null is fine, else it must be a string of 1..maxlen. */
static int
opt_string(json_t *v, size_t maxlen)
{
	return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= maxlen);
}

/*
 * An optional RFC 3339 date-time: absent, null, or a string shaped
 * YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM).  The database
 * checks the calendar and the accepted window (fleet.parse_instant).
 */
static int
opt_rfc3339(json_t *v)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	const char *s;
	size_t		i;

	if (!v || json_is_null(v))
		return 1;
	if (!json_is_string(v) || json_string_length(v) > 64)
		return 0;
	s = json_string_value(v);
	for (i = 0; shape[i]; i++)
	{
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') :
			shape[i] == 'T' ? !(s[i] == 'T' || s[i] == 't' || s[i] == ' ') : s[i] != shape[i])
			return 0;
	}
	s += i;
	if (*s == '.')
	{
		if (!(s[1] >= '0' && s[1] <= '9'))
			return 0;
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	}
	if (*s == 'Z' || *s == 'z')
		return s[1] == '\0';
	return (*s == '+' || *s == '-') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
		s[3] == ':' && s[4] >= '0' && s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0';
}

sv_status
sv_push(const char *body, size_t len, int max_mutations, char **mutations_json, int *count, sv_problem *p)
{
	json_t	   *o = load_object(body, len, 0, p),
			   *ms;
	size_t		i;
	json_t	   *m;

	*mutations_json = NULL;
	*count = 0;
	if (!o)
		return p->status;
	ms = json_object_get(o, "mutations");
	if (!json_is_array(ms))
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "mutations", "\"mutations\" must be an array of mutations");
	}
	if (json_array_size(ms) == 0)
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "mutations", "\"mutations\" is empty");
	}
	if (json_array_size(ms) > (size_t) max_mutations)
	{
		size_t		n = json_array_size(ms);

		json_decref(o);
		return problem(p, SV_TOO_MANY, "too_many_mutations", "mutations",
					   "%zu mutations in one request; at most %d (push the backlog in pages)", n, max_mutations);
	}
	json_array_foreach(ms, i, m)
	{
		char		f[64];
		json_t	   *v;

		if (!json_is_object(m))
		{
			snprintf(f, sizeof(f), "mutations[%zu]", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be an object", f);
		}
		v = json_object_get(m, "id");
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 999999999999999999LL)
		{
			snprintf(f, sizeof(f), "mutations[%zu].id", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be a positive integer", f);
		}
		v = json_object_get(m, "workflow");
		if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 63)
		{
			snprintf(f, sizeof(f), "mutations[%zu].workflow", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be a workflow name (a string)", f);
		}
		v = json_object_get(m, "args");
		if (!json_is_object(v))
		{
			snprintf(f, sizeof(f), "mutations[%zu].args", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be an object", f);
		}
		if (!opt_rfc3339(json_object_get(m, "client_time")))
		{
			snprintf(f, sizeof(f), "mutations[%zu].client_time", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f,
						   "%s must be an RFC 3339 date-time (2026-01-05T08:00:00Z) or null", f);
		}
		v = json_object_get(m, "base_version");
		if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) >= 1))
		{
			snprintf(f, sizeof(f), "mutations[%zu].base_version", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be a positive integer or null", f);
		}
		if (!opt_string(json_object_get(m, "hlc"), 40))
		{
			snprintf(f, sizeof(f), "mutations[%zu].hlc", i);
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", f, "%s must be a clock string \"<ms>:<counter>\" or null", f);
		}
	}
	*count = (int) json_array_size(ms);
	*mutations_json = json_dumps(ms, JSON_COMPACT);
	json_decref(o);
	if (!*mutations_json)
		return problem(p, SV_INVALID, "invalid_request", "mutations", "the mutations cannot be encoded");
	p->status = SV_OK;
	return SV_OK;
}

sv_status
sv_pull(const char *body, size_t len, int def_max, int max_max, char **cursor, int *max, sv_problem *p)
{
	json_t	   *o = load_object(body, len, 1, p),
			   *v;

	*cursor = NULL;
	*max = def_max;
	if (!o)
		return p->status;
	v = json_object_get(o, "cursor");
	if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= 200))
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "cursor",
					   "\"cursor\" must be the cursor of the previous pull (a string) or null");
	}
	if (json_is_string(v))
		*cursor = strdup(json_string_value(v));
	v = json_object_get(o, "max");
	if (v && !json_is_null(v))
	{
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max_max)
		{
			free(*cursor);
			*cursor = NULL;
			json_decref(o);
			return problem(p, SV_INVALID, "invalid_request", "max", "\"max\" must be an integer from 1 to %d", max_max);
		}
		*max = (int) json_integer_value(v);
	}
	json_decref(o);
	p->status = SV_OK;
	return SV_OK;
}

sv_status
sv_event(const char *body, size_t len, char **key, char **kind, char **payload_json,
		 char **occurred_at, sv_problem *p)
{
	json_t	   *o = load_object(body, len, 0, p),
			   *k,
			   *t,
			   *pl,
			   *at;

	*key = *kind = *payload_json = *occurred_at = NULL;
	if (!o)
		return p->status;
	k = json_object_get(o, "key");
	t = json_object_get(o, "kind");
	pl = json_object_get(o, "payload");
	at = json_object_get(o, "occurred_at");
	if (!json_is_string(k) || json_string_length(k) < 1 || json_string_length(k) > 100)
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "key",
					   "\"key\" must be the event's idempotency key (a string of 1 to 100 characters)");
	}
	if (!json_is_string(t) || json_string_length(t) < 1 || json_string_length(t) > 63)
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "kind", "\"kind\" must be an event kind such as driver.panic");
	}
	if (pl && !json_is_object(pl))
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "payload", "\"payload\" must be an object");
	}
	if (!opt_string(at, 64))
	{
		json_decref(o);
		return problem(p, SV_INVALID, "invalid_request", "occurred_at", "\"occurred_at\" must be a timestamp string or null");
	}
	*key = strdup(json_string_value(k));
	*kind = strdup(json_string_value(t));
	*payload_json = pl ? json_dumps(pl, JSON_COMPACT) : strdup("{}");
	if (json_is_string(at))
		*occurred_at = strdup(json_string_value(at));
	json_decref(o);
	p->status = SV_OK;
	return SV_OK;
}

char *
sv_problem_json(const sv_problem *p)
{
	json_t	   *o = json_pack("{s:s,s:s}", "error", p->error, "message", p->message);
	char	   *s;

	if (p->field[0])
		json_object_set_new(o, "field", json_string(p->field));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
