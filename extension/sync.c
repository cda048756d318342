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
	Oid			saved_uid;
	int			saved_ctx;
	int			guc_level;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(callinfo, 3);
	volatile Datum result = (Datum) 0;
	volatile bool isnull = true;

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

	GetUserIdAndSecContext(&saved_uid, &saved_ctx);
	SetUserIdAndSecContext(owner, saved_ctx | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	guc_level = FleetPinSearchPath();
	PG_TRY();
	{
		if (flinfo.fn_strict && (callinfo->args[0].isnull || callinfo->args[1].isnull || callinfo->args[2].isnull))
			isnull = true;
		else
		{
			result = FunctionCallInvoke(callinfo);
			isnull = callinfo->isnull;
		}
	}
	PG_FINALLY();
	{
		/* on error the (sub)transaction's abort pops the GUC level */
		SetUserIdAndSecContext(saved_uid, saved_ctx);
	}
	PG_END_TRY();
	FleetUnpinSearchPath(guc_level);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
