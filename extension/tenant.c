/*-------------------------------------------------------------------------
 *
 * tenant.c
 *	  The tenant context: which tenant the current session acts for.
 *
 * Every tenant-owned table carries row-level security policies comparing
 * tenant_id with fleet.current_tenant().  The value lives in the setting
 * fleet.tenant, so it follows the normal setting rules: SET LOCAL semantics
 * with fleet.set_tenant(id, true), rollback on abort, RESET/DISCARD ALL
 * clears it (which keeps pooled connections from leaking a tenant).
 *
 * The setting cannot be assigned with a plain SET: its check hook only lets
 * fleet.set_tenant() (which first validates that the tenant exists and is
 * active) or a clearing assignment through.  A session with no tenant
 * context gets NULL from fleet.current_tenant(), which matches no row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_set_tenant);
PG_FUNCTION_INFO_V1(fleet_clear_tenant);
PG_FUNCTION_INFO_V1(fleet_current_tenant);

static char *tenant_setting = NULL;		/* raw value of fleet.tenant */
static bool tenant_is_set = false;		/* parsed form, kept by assign hook */
static int64 tenant_value = 0;
static bool in_set_tenant = false;		/* true only inside set_tenant */

static bool check_tenant(char **newval, void **extra, GucSource source);
static void assign_tenant(const char *newval, void *extra);
static bool parse_tenant(const char *s, int64 *out);

/*
 * Define fleet.tenant.
 */
void
FleetTenantInit(void)
{
	DefineCustomStringVariable("fleet.tenant",
							   gettext_noop("Tenant the session acts for; set it with fleet.set_tenant()."),
							   gettext_noop("Row-level security on every tenant-owned table compares tenant_id with this value. Empty means no tenant: no rows are visible or writable."),
							   &tenant_setting,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   check_tenant, assign_tenant, NULL);
}

/*
 * Parse a decimal tenant id; false if it is not a positive bigint.
 */
static bool
parse_tenant(const char *s, int64 *out)
{
	char	   *end;
	long long	v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return false;
	*out = (int64) v;
	return true;
}

/*
 * Only fleet.set_tenant() (or a parallel worker copying its leader's state)
 * may put a tenant into the setting; anyone may clear it.
 */
static bool
check_tenant(char **newval, void **extra, GucSource source)
{
	int64		v;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!in_set_tenant && !InitializingParallelWorker)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("fleet.tenant can only be set through fleet.set_tenant()");
		GUC_check_errhint("Call SELECT fleet.set_tenant(tenant_id) instead.");
		return false;
	}
	if (!parse_tenant(*newval, &v))
	{
		GUC_check_errmsg("invalid tenant id \"%s\"", *newval);
		return false;
	}
	return true;
}

/*
 * Keep the parsed tenant id next to the setting.
 */
static void
assign_tenant(const char *newval, void *extra)
{
	int64		v = 0;

	tenant_is_set = parse_tenant(newval, &v);
	tenant_value = tenant_is_set ? v : 0;
}

/*
 * Is a tenant context set in this session?
 */
bool
FleetTenantIsSet(void)
{
	return tenant_is_set;
}

/*
 * The current tenant id; errors if there is none.
 */
int64
FleetCurrentTenant(void)
{
	if (!tenant_is_set)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no tenant context is set"),
				 errhint("Call SELECT fleet.set_tenant(tenant_id) first.")));
	return tenant_value;
}

/*
 * Look up a tenant's status as the extension owner (the caller, having no
 * tenant context yet, cannot see the row).  Returns NULL if absent.
 */
static char *
tenant_status(int64 tenant)
{
	FleetOwnerSwitch owner_sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	char	   *status = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;

	args[0] = Int64GetDatum(tenant);
	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT status FROM fleet.tenant WHERE tenant_id OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "tenant look-up failed");
	if (SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		MemoryContext old = MemoryContextSwitchTo(caller_cxt);

		status = pstrdup(s);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	FleetAsCaller(&owner_sw);
	return status;
}

/*
 * fleet.set_tenant(tenant bigint, is_local boolean DEFAULT false)
 *
 * Validate the tenant and make it the session's (or, with is_local, the
 * transaction's) tenant context.
 */
Datum
fleet_set_tenant(PG_FUNCTION_ARGS)
{
	int64		tenant;
	bool		is_local;
	char	   *status;
	char		buf[32];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant id must not be null"),
				 errhint("Use fleet.clear_tenant() to leave the tenant context.")));
	tenant = PG_GETARG_INT64(0);
	is_local = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);

	status = tenant_status(tenant);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant %lld does not exist", (long long) tenant)));
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant %lld is %s", (long long) tenant, status),
				 errdetail("Only active tenants can be acted for.")));

	snprintf(buf, sizeof(buf), INT64_FORMAT, tenant);
	in_set_tenant = true;
	PG_TRY();
	{
		(void) set_config_option("fleet.tenant", buf, PGC_USERSET, PGC_S_SESSION,
								 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
								 true, 0, false);
	}
	PG_FINALLY();
	{
		in_set_tenant = false;
	}
	PG_END_TRY();

	PG_RETURN_INT64(tenant);
}

/*
 * fleet.clear_tenant(): leave the tenant context.
 */
Datum
fleet_clear_tenant(PG_FUNCTION_ARGS)
{
	(void) set_config_option("fleet.tenant", "", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	PG_RETURN_VOID();
}

/*
 * fleet.current_tenant(): the tenant context, or NULL.
 */
Datum
fleet_current_tenant(PG_FUNCTION_ARGS)
{
	if (!tenant_is_set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(tenant_value);
}
