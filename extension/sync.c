/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Offline sync: running a workflow's custom merge function as the role
 *	  that registered it.
 *
 * fleet.sync_push() runs as the extension owner (it appends evidence no app
 * role may write).  A custom merge function registered by fleet_admin must
 * not inherit that: fleet.sync_call_merge() calls it with the privileges of
 * the role recorded by fleet.set_sync_rule(), the way the event pipeline
 * runs handlers and upcasters as their owners.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/regproc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_call_merge);

/* one call of a merge function, for FleetAsRole */
typedef struct MergeCall
{
	FunctionCallInfo callinfo;
	Datum		result;
} MergeCall;

static void
merge_invoke(void *arg)
{
	MergeCall  *c = arg;

	c->result = FunctionCallInvoke(c->callinfo);
}

/*
 * fleet.sync_call_merge(fn regprocedure, owner oid, workflow text,
 *                       client jsonb, server jsonb) RETURNS jsonb
 *
 * Call fn(workflow, client, server) as owner.  The owner must still exist
 * and be allowed to execute fn; a NULL result is returned as NULL.
 */
Datum
fleet_sync_call_merge(PG_FUNCTION_ARGS)
{
	Oid			fn;
	Oid			owner;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(callinfo, 3);
	MergeCall	call = {callinfo, (Datum) 0};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("merge function and its owner must not be null")));
	fn = PG_GETARG_OID(0);
	owner = PG_GETARG_OID(1);

	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fn)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("custom merge function %u does not exist", fn)));
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that registered custom merge function %s no longer exists",
						format_procedure(fn))));
	if (pg_proc_aclcheck(fn, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not execute custom merge function %s",
						GetUserNameFromId(owner, false), format_procedure(fn))));

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*callinfo, &flinfo, 3, PG_GET_COLLATION(), NULL, NULL);
	callinfo->args[0].value = PG_GETARG_DATUM(2);
	callinfo->args[0].isnull = PG_ARGISNULL(2);
	callinfo->args[1].value = PG_GETARG_DATUM(3);
	callinfo->args[1].isnull = PG_ARGISNULL(3);
	callinfo->args[2].value = PG_GETARG_DATUM(4);
	callinfo->args[2].isnull = PG_ARGISNULL(4);

	/* a strict function is not called with a NULL argument */
	if (flinfo.fn_strict && (callinfo->args[0].isnull || callinfo->args[1].isnull || callinfo->args[2].isnull))
		PG_RETURN_NULL();
	/* an error unwinds the role and search_path with the (sub)transaction */
	FleetAsRole(owner, SECURITY_RESTRICTED_OPERATION, merge_invoke, &call);

	if (callinfo->isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(call.result);
}
