/*-------------------------------------------------------------------------
 *
 * tier_guard.c
 *	  Legal hold at the DDL level: refuse statements that would destroy held data.
 *
 * guard.c's utility hook calls FleetTierGuard() before every utility
 * statement.  For a role that is not a superuser it refuses, with
 * insufficient_privilege, a statement that would remove rows an active
 * legal hold (fleet.legal_hold) covers:
 *	 DROP TABLE of a tiered table, one of its partitions or the cold segments;
 *	 DROP SCHEMA of a schema holding such a table (with or without CASCADE);
 *	 DROP EXTENSION fleet while any hold covers data;
 *	 TRUNCATE of any of those tables;
 *	 ALTER TABLE ... DETACH PARTITION of a partition holding held rows;
 *	 DROP OWNED BY a role that owns such a table.
 * Whether rows are held is answered by fleet.relation_held() /
 * fleet.schema_held() (sql/parts/70_tier.sql).  DELETE and UPDATE are
 * refused by row triggers, a shortened policy by a trigger on
 * fleet.tier_policy.  Superusers pass: they can remove the extension's
 * triggers anyway, and holding them back would only be theatre.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "fleet.h"

/*
 * Run a boolean SQL function of fleet on one argument, as the extension
 * owner (the functions see every tenant's holds).
 */
static bool
ask(const char *sql, Oid argtype, Datum arg)
{
	bool		result = false;
	Oid			saved_uid;
	int			saved_ctx;
	Datum		args[1];

	args[0] = arg;
	FleetAsOwner(&saved_uid, &saved_ctx);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 1, &argtype, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "legal hold check failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	FleetAsCaller(saved_uid, saved_ctx);
	return result;
}

static void
refuse(const char *what, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("legal hold: %s %s refused", what, name),
			 errdetail("It holds data an active legal hold covers."),
			 errhint("Release the hold with fleet.release_hold() first.")));
}

static void
check_relation(Oid relid, const char *what)
{
	if (!OidIsValid(relid))
		return;
	if (ask("SELECT fleet.relation_held($1)", REGCLASSOID, ObjectIdGetDatum(relid)))
		refuse(what, get_rel_name(relid));
}

static void
check_rangevar(RangeVar *rv, const char *what)
{
	check_relation(RangeVarGetRelid(rv, NoLock, true), what);
}

/*
 * Refuse the statement if it would destroy held data.
 */
void
FleetTierGuard(Node *parsetree)
{
	ListCell   *lc;

	if (superuser() || creating_extension || IsBinaryUpgrade)
		return;
	if (!IsTransactionState() || !OidIsValid(get_extension_oid("fleet", true)))
		return;

	switch (nodeTag(parsetree))
	{
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				foreach(lc, stmt->objects)
				{
					Node	   *obj = lfirst(lc);

					if (stmt->removeType == OBJECT_TABLE)
						check_rangevar(makeRangeVarFromNameList((List *) obj), "DROP TABLE");
					else if (stmt->removeType == OBJECT_SCHEMA && IsA(obj, String))
					{
						if (ask("SELECT fleet.schema_held($1)", NAMEOID,
								DirectFunctionCall1(namein, CStringGetDatum(strVal(obj)))))
							refuse("DROP SCHEMA", strVal(obj));
					}
					else if (stmt->removeType == OBJECT_EXTENSION && IsA(obj, String) &&
							 strcmp(strVal(obj), "fleet") == 0)
					{
						if (ask("SELECT fleet.schema_held($1)", NAMEOID,
								DirectFunctionCall1(namein, CStringGetDatum("fleet"))))
							refuse("DROP EXTENSION", "fleet");
					}
				}
				break;
			}
		case T_TruncateStmt:
			{
				TruncateStmt *stmt = (TruncateStmt *) parsetree;

				foreach(lc, stmt->relations)
					check_rangevar(lfirst_node(RangeVar, lc), "TRUNCATE");
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

				foreach(lc, stmt->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_DetachPartition)
						check_rangevar(((PartitionCmd *) cmd->def)->name, "DETACH PARTITION");
				}
				break;
			}
		case T_DropOwnedStmt:
			{
				DropOwnedStmt *stmt = (DropOwnedStmt *) parsetree;

				foreach(lc, stmt->roles)
				{
					RoleSpec   *spec = lfirst_node(RoleSpec, lc);
					Oid			roleid = get_rolespec_oid(spec, true);

					if (OidIsValid(roleid) &&
						ask("SELECT fleet.owned_held($1)", OIDOID, ObjectIdGetDatum(roleid)))
						refuse("DROP OWNED BY", get_rolespec_name(spec));
				}
				break;
			}
		default:
			break;
	}
}
