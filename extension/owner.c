/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Catalog look-ups about the installed fleet extension itself.
 *
 * Internal queries that must see across tenants (resolving a device to its
 * tenant, validating a tenant id) run as the extension owner through
 * SetUserIdAndSecContext, the way pg_cron does, instead of widening the
 * privileges of the calling role or adding SECURITY DEFINER functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/genam.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "fleet.h"

/*
 * Oid of the role that owns the fleet extension.
 */
Oid
FleetExtensionOwner(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("fleet"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"fleet\" is not installed in this database")));
	return owner;
}
