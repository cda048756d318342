/*-------------------------------------------------------------------------
 *
 * jsonb_build.c
 *	  jsonb objects built in C, field by field, with the values
 *	  jsonb_build_object() and to_jsonb() would give them.
 *
 * A driver-app push stores, per mutation, a result to return to duplicates
 * and a trail payload; built by SQL they were one jsonb_build_object() call
 * each, which looks up every argument's type and output function per row.
 * These helpers fill JsonbValues directly: an int64 becomes a number, a
 * NULL becomes JSON null, a jsonb is embedded as it is, a timestamptz
 * becomes the string to_jsonb() makes (the session's TimeZone, ISO 8601),
 * and an object's keys are sorted and deduplicated as jsonb always does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "fleet.h"

/* the value of the next key of an object being built, for a FleetJv* function to fill */
JsonbValue *
FleetJsonbField(FleetJsonbFields *f, const char *key)
{
	if (f->n >= FLEET_JSONB_MAX_FIELDS)
		elog(ERROR, "a jsonb object built in C has more than %d keys", FLEET_JSONB_MAX_FIELDS);
	f->keys[f->n] = key;
	return &f->vals[f->n++];
}

/* the object; with strip, keys whose value is null are left out */
Datum
FleetJsonbFieldsObject(FleetJsonbFields *f, bool strip)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < f->n; i++)
	{
		JsonbValue	k;

		if (strip && f->vals[i].type == jbvNull)
			continue;
		k.type = jbvString;
		k.val.string.val = (char *) f->keys[i];
		k.val.string.len = strlen(f->keys[i]);
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &f->vals[i]);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/* jb->key (of an object); false if absent */
bool
FleetJsonbKey(Jsonb *jb, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(&jb->root, key, strlen(key), out) != NULL;
}

void
FleetJvNull(JsonbValue *v)
{
	v->type = jbvNull;
}

void
FleetJvInt64(JsonbValue *v, int64 x)
{
	v->type = jbvNumeric;
	v->val.numeric = int64_to_numeric(x);
}

/* a numeric as to_jsonb() has it: a number, unless it is not one (NaN, infinity) */
void
FleetJvNumeric(JsonbValue *v, Numeric x)
{
	if (numeric_is_nan(x) || numeric_is_inf(x))
		FleetJvString(v, DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(x))));
	else
	{
		v->type = jbvNumeric;
		v->val.numeric = x;
	}
}

/* a string; NULL is JSON null */
void
FleetJvString(JsonbValue *v, const char *s)
{
	if (s == NULL)
	{
		v->type = jbvNull;
		return;
	}
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = strlen(s);
}

/* a text datum */
void
FleetJvText(JsonbValue *v, Datum t)
{
	text	   *x = DatumGetTextPP(t);

	v->type = jbvString;
	v->val.string.val = VARDATA_ANY(x);
	v->val.string.len = VARSIZE_ANY_EXHDR(x);
}

/* a timestamptz as to_jsonb() writes it */
void
FleetJvTimestamptz(JsonbValue *v, TimestampTz ts)
{
	char		buf[MAXDATELEN + 1];

	FleetJvString(v, pstrdup(JsonEncodeDateTime(buf, TimestampTzGetDatum(ts), TIMESTAMPTZOID, NULL)));
}

/* a jsonb datum embedded as it is; (Datum) 0 is JSON null */
void
FleetJvJsonb(JsonbValue *v, Datum jb)
{
	Jsonb	   *j;

	if (jb == (Datum) 0)
	{
		v->type = jbvNull;
		return;
	}
	j = DatumGetJsonbP(jb);
	if (JB_ROOT_IS_SCALAR(j))
	{
		if (!JsonbExtractScalar(&j->root, v))
			elog(ERROR, "jsonb scalar expected");
		return;
	}
	v->type = jbvBinary;
	v->val.binary.data = &j->root;
	v->val.binary.len = VARSIZE(j) - VARHDRSZ;
}
