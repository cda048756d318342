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
 * A login may be bound to its tenants (fleet.login_tenant, kept by
 * fleet_admin with fleet.bind_login()): fleet.set_tenant() called from SQL
 * then refuses (42501) any other tenant.  Two roles are checked, and each
 * that has bindings must be bound to the tenant: the session user (the
 * login, which no SET ROLE changes) and the role the session has SET ROLE
 * to (so a pooler's login can stay unbound and SET ROLE to per-tenant
 * roles that are bound).  Roles without bindings keep the plain rule: any
 * active tenant.  The pipeline's appliers enter each event's tenant from C
 * and are not bound.
 *
 * fleet.session_role() names the role the session acts as outside any
 * SECURITY DEFINER function (SET ROLE's role, else the login): SECURITY
 * DEFINER functions that answer across tenants for the DBA only ask it
 * (fleet.is_dba(), fleet.sees_all_tenants()).
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
PG_FUNCTION_INFO_V1(fleet_session_role);

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
 * What fleet.set_tenant() needs to know about a tenant, read as the extension
 * owner (the caller, having no tenant context yet, can see neither the
 * tenant row nor the bindings): its status (NULL if absent) and, for the
 * session user and the outer role, whether they are bound to it (bound:
 * has any binding; allowed: one of them is this tenant).
 */
typedef struct TenantLookup
{
	char	   *status;
	bool		session_bound;
	bool		session_allowed;
	bool		role_bound;
	bool		role_allowed;
} TenantLookup;

static void
tenant_lookup(int64 tenant, TenantLookup *out)
{
	FleetOwnerSwitch owner_sw;
	Oid			argtypes[3] = {INT8OID, OIDOID, OIDOID};
	Datum		args[3];
	MemoryContext caller_cxt = CurrentMemoryContext;

	memset(out, 0, sizeof(*out));
	args[0] = Int64GetDatum(tenant);
	args[1] = ObjectIdGetDatum(GetSessionUserId());
	args[2] = ObjectIdGetDatum(GetOuterUserId());
	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(
			"SELECT (SELECT t.status FROM fleet.tenant t WHERE t.tenant_id OPERATOR(pg_catalog.=) $1),"
			" EXISTS (SELECT 1 FROM fleet.login_tenant b WHERE b.login::pg_catalog.oid OPERATOR(pg_catalog.=) $2),"
			" EXISTS (SELECT 1 FROM fleet.login_tenant b WHERE b.login::pg_catalog.oid OPERATOR(pg_catalog.=) $2"
			"          AND b.tenant_id OPERATOR(pg_catalog.=) $1),"
			" EXISTS (SELECT 1 FROM fleet.login_tenant b WHERE b.login::pg_catalog.oid OPERATOR(pg_catalog.=) $3),"
			" EXISTS (SELECT 1 FROM fleet.login_tenant b WHERE b.login::pg_catalog.oid OPERATOR(pg_catalog.=) $3"
			"          AND b.tenant_id OPERATOR(pg_catalog.=) $1)",
			3, argtypes, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "tenant look-up failed");
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *s = SPI_getvalue(tup, desc, 1);
		bool		isnull;

		if (s != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(caller_cxt);

			out->status = pstrdup(s);
			MemoryContextSwitchTo(old);
		}
		out->session_bound = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		out->session_allowed = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		out->role_bound = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		out->role_allowed = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	}
	SPI_finish();
	FleetAsCaller(&owner_sw);
}

/*
 * fleet.set_tenant(tenant bigint, is_local boolean DEFAULT false)
 *
 * Validate the tenant (and, called from SQL, the login's binding) and make
 * it the session's (or, with is_local, the transaction's) tenant context.
 * A binding refusal comes first, so a bound login learns nothing about
 * other tenants' ids.  Called from C (fcinfo->flinfo NULL: the pipeline's
 * appliers entering an event's tenant), bindings do not apply.
 */
Datum
fleet_set_tenant(PG_FUNCTION_ARGS)
{
	int64		tenant;
	bool		is_local;
	TenantLookup lk;
	char		buf[32];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant id must not be null"),
				 errhint("Use fleet.clear_tenant() to leave the tenant context.")));
	tenant = PG_GETARG_INT64(0);
	is_local = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);

	tenant_lookup(tenant, &lk);
	if (fcinfo->flinfo != NULL)
	{
		Oid			refused = InvalidOid;

		if (lk.session_bound && !lk.session_allowed)
			refused = GetSessionUserId();
		else if (lk.role_bound && !lk.role_allowed)
			refused = GetOuterUserId();
		if (OidIsValid(refused))
		{
			char	   *rolname = GetUserNameFromId(refused, true);

			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not act for tenant %lld",
							rolname ? rolname : "?", (long long) tenant),
					 errdetail("The role is bound to other tenants (fleet.login_tenant)."),
					 errhint("A fleet_admin binds a login to a tenant with fleet.bind_login().")));
		}
	}
	if (lk.status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant %lld does not exist", (long long) tenant)));
	if (strcmp(lk.status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant %lld is %s", (long long) tenant, lk.status),
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

/*
 * fleet.session_role(): the role the session acts as outside any SECURITY
 * DEFINER function -- the role of SET ROLE, else the login.
 */
Datum
fleet_session_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
