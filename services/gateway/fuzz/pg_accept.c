/*
 * pg_accept.c - PostgreSQL's acceptance rules for jsonb text and device
 * identifiers, for the fuzz targets and unit tests (see pg_accept.h).
 */
#include "pg_accept.h"

#include <stdint.h>
#include <string.h>

#include "../../common/utf8.h"

#define MAX_DEPTH 512			/* deeper than any attrs document the gateway builds */
#define NUMERIC_MAX_BEFORE 131072	/* digits before the decimal point */
#define NUMERIC_MAX_DSCALE 16383	/* digits after it */
#define EXPONENT_LIMIT 1073741823	/* INT_MAX / 2: numeric_in refuses from here */

typedef struct
{
	const unsigned char *s;
	size_t		n,
				i;
	const char *why;
} lexer;

static bool
fail(lexer *l, const char *why)
{
	if (!l->why)
		l->why = why;
	return false;
}

static void
ws(lexer *l)
{
	while (l->i < l->n && (l->s[l->i] == ' ' || l->s[l->i] == '\t' ||
						   l->s[l->i] == '\n' || l->s[l->i] == '\r'))
		l->i++;
}

static int
hex4(const unsigned char *p)
{
	int			v = 0;

	for (int k = 0; k < 4; k++)
	{
		int			c = p[k],
					d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static bool
string(lexer *l)
{
	int			pending_high = 0;	/* an escaped high surrogate waits for its low half */

	l->i++;						/* the opening quote */
	while (l->i < l->n)
	{
		unsigned char c = l->s[l->i];

		if (c == '"')
		{
			if (pending_high)
				return fail(l, "high surrogate without low surrogate");
			l->i++;
			return true;
		}
		if (c == '\\')
		{
			unsigned char e;

			if (l->i + 1 >= l->n)
				return fail(l, "truncated escape");
			e = l->s[l->i + 1];
			if (e == 'u')
			{
				int			v;

				if (l->n - l->i < 6 || (v = hex4(l->s + l->i + 2)) < 0)
					return fail(l, "bad \\u escape");
				if (v == 0)
					return fail(l, "\\u0000");
				if (v >= 0xD800 && v <= 0xDBFF)
				{
					if (pending_high)
						return fail(l, "two high surrogates");
					pending_high = 1;
				}
				else if (v >= 0xDC00 && v <= 0xDFFF)
				{
					if (!pending_high)
						return fail(l, "low surrogate without high surrogate");
					pending_high = 0;
				}
				else if (pending_high)
					return fail(l, "high surrogate without low surrogate");
				l->i += 6;
				continue;
			}
			if (pending_high)
				return fail(l, "high surrogate without low surrogate");
			if (!strchr("\"\\/bfnrt", e) || e == '\0')
				return fail(l, "bad escape");
			l->i += 2;
			continue;
		}
		if (pending_high)
			return fail(l, "high surrogate without low surrogate");
		if (c < 0x20)
			return fail(l, "raw control character in a string");
		{
			size_t		k = utf8_seq(l->s, l->n, l->i);

			if (k == 0)
				return fail(l, "invalid UTF-8");
			l->i += k;
		}
	}
	return fail(l, "unterminated string");
}

bool
pg_json_number_accepts(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0,
				int_start,
				int_len,
				frac_start = 0,
				frac_len = 0;
	int64_t		exp = 0;
	int64_t		weight;
	bool		nonzero = false;
	int64_t		first_nonzero = 0;	/* decimal position of the first nonzero digit */

	if (i < n && s[i] == '-')
		i++;
	int_start = i;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return false;
	int_len = i - int_start;
	if (i < n && s[i] == '.')
	{
		frac_start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		frac_len = i - frac_start;
		if (frac_len == 0)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		bool		neg = false;
		size_t		d;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			neg = s[i++] == '-';
		d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
		{
			if (exp < EXPONENT_LIMIT)
				exp = exp * 10 + (s[i] - '0');
			i++;
		}
		if (i == d)
			return false;
		if (exp >= EXPONENT_LIMIT)
			return false;
		if (neg)
			exp = -exp;
	}
	if (i != n)
		return false;

	/* display scale: digits written after the point, less the exponent */
	if ((int64_t) frac_len - exp > NUMERIC_MAX_DSCALE)
		return false;
	/* the first nonzero digit's power of ten */
	for (size_t k = 0; k < int_len && !nonzero; k++)
		if (s[int_start + k] != '0')
			nonzero = true, first_nonzero = (int64_t) (int_len - 1 - k);
	for (size_t k = 0; k < frac_len && !nonzero; k++)
		if (s[frac_start + k] != '0')
			nonzero = true, first_nonzero = -(int64_t) (k + 1);
	if (!nonzero)
		return true;
	weight = first_nonzero + exp;
	return weight < NUMERIC_MAX_BEFORE;
}

static bool value(lexer *l, int depth);

static bool
number(lexer *l)
{
	size_t		start = l->i;

	while (l->i < l->n && (strchr("+-.eE", l->s[l->i]) || (l->s[l->i] >= '0' && l->s[l->i] <= '9')) &&
		   l->s[l->i] != '\0')
		l->i++;
	if (!pg_json_number_accepts((const char *) l->s + start, l->i - start))
		return fail(l, "number jsonb refuses (syntax or numeric range)");
	return true;
}

static bool
literal(lexer *l, const char *word)
{
	size_t		k = strlen(word);

	if (l->n - l->i < k || memcmp(l->s + l->i, word, k) != 0)
		return fail(l, "bad literal");
	l->i += k;
	return true;
}

static bool
container(lexer *l, int depth, bool object)
{
	char		close = object ? '}' : ']';

	if (depth > MAX_DEPTH)
		return fail(l, "too deep");
	l->i++;
	ws(l);
	if (l->i < l->n && l->s[l->i] == close)
	{
		l->i++;
		return true;
	}
	for (;;)
	{
		ws(l);
		if (object)
		{
			if (l->i >= l->n || l->s[l->i] != '"')
				return fail(l, "object key is not a string");
			if (!string(l))
				return false;
			ws(l);
			if (l->i >= l->n || l->s[l->i] != ':')
				return fail(l, "missing colon");
			l->i++;
		}
		if (!value(l, depth + 1))
			return false;
		ws(l);
		if (l->i < l->n && l->s[l->i] == ',')
		{
			l->i++;
			continue;
		}
		if (l->i < l->n && l->s[l->i] == close)
		{
			l->i++;
			return true;
		}
		return fail(l, "missing comma or close");
	}
}

static bool
value(lexer *l, int depth)
{
	ws(l);
	if (l->i >= l->n)
		return fail(l, "missing value");
	switch (l->s[l->i])
	{
		case '{':
			return container(l, depth, true);
		case '[':
			return container(l, depth, false);
		case '"':
			return string(l);
		case 't':
			return literal(l, "true");
		case 'f':
			return literal(l, "false");
		case 'n':
			return literal(l, "null");
		default:
			if (l->s[l->i] == '-' || (l->s[l->i] >= '0' && l->s[l->i] <= '9'))
				return number(l);
			return fail(l, "not a JSON value");
	}
}

bool
pg_jsonb_accepts(const char *s, size_t len, const char **why)
{
	lexer		l = {(const unsigned char *) s, len, 0, NULL};
	bool		ok;

	if (memchr(s, '\0', len))
		ok = fail(&l, "NUL byte in the text");
	else
	{
		ws(&l);
		if (l.i >= l.n || l.s[l.i] != '{')
			ok = fail(&l, "not an object");
		else
		{
			ok = value(&l, 0);
			ws(&l);
			if (ok && l.i != l.n)
				ok = fail(&l, "text after the object");
		}
	}
	if (why)
		*why = ok ? NULL : l.why;
	return ok;
}

bool
pg_device_accepts(const char *s, size_t len)
{
	return len >= 1 && len <= 64 && pg_text_accepts(s, len);
}

bool
pg_text_accepts(const char *s, size_t len)
{
	if (memchr(s, '\0', len))
		return false;
	for (size_t i = 0; i < len;)
	{
		size_t		k = utf8_seq((const unsigned char *) s, len, i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}
