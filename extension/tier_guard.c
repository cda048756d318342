/*-------------------------------------------------------------------------
 *
 * tier_guard.c
 *	  Legal hold at the DDL level: refuse statements that would destroy held data.
 *
 * guard.c's utility hook calls FleetTierGuard() before every utility
 * statement.  For a role that is not a superuser it refuses, with
 * insufficient_privilege and a detail naming the hold, a statement that
 * would remove or rewrite rows an active legal hold (fleet.legal_hold)
 * covers:
 *	 DROP TABLE of a tiered table, one of its partitions or the cold segments
 *	   (fleet.cold_segment, fleet.cold_event_segment);
 *	 DROP SCHEMA of a schema holding such a table (with or without CASCADE);
 *	 DROP EXTENSION fleet while any hold covers data;
 *	 TRUNCATE of any of those tables;
 *	 ALTER TABLE ... DETACH PARTITION (also CONCURRENTLY and FINALIZE) of a
 *	   partition holding held rows;
 *	 ALTER TABLE ... DROP COLUMN and ALTER COLUMN ... TYPE (with or without
 *	   USING: a cast may lose precision) of a table holding held rows;
 *	 ALTER TABLE ... SET UNLOGGED (a crash would empty the table);
 *	 DROP OWNED BY a role that owns such a table.
 * Whatever the holds, it also refuses removing the legal-hold row trigger
 * (fleet.hold_row_guard) of a table fleet partitions or tiers, so that a
 * hold placed later is enforced: DROP TRIGGER, CREATE OR REPLACE TRIGGER of
 * it, ALTER TABLE ... DISABLE TRIGGER (by name, ALL or USER) and ENABLE
 * REPLICA TRIGGER (which silences it outside replication).
 *
 * A column can also be dropped as a dependent of another object (DROP TYPE,
 * DROP DOMAIN, DROP EXTENSION ... CASCADE): an object access hook refuses
 * the drop of a column or a table whose rows a hold covers, whatever
 * statement leads to it.
 *
 * The answers come from SQL functions in sql/parts/70_tier.sql
 * (fleet.relation_hold(), fleet.schema_hold(), fleet.owned_hold(),
 * fleet.hold_trigger()), run as the extension owner.  DELETE and UPDATE are
 * refused by row triggers, a shortened policy by a trigger on
 * fleet.tier_policy.  Superusers pass: they can remove the extension's
 * triggers anyway, and holding them back would only be theatre.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "fleet.h"

static object_access_hook_type prev_object_access = NULL;

/*
 * Run a text-valued SQL function of fleet as the extension owner (the
 * functions see every tenant's holds); NULL when it returns NULL.  The
 * result is allocated in the caller's memory context.
 */
static char *
ask(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	char	   *result = NULL;
	FleetOwnerSwitch owner_sw;
	MemoryContext caller = CurrentMemoryContext;

	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "legal hold check failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			result = TextDatumGetCString(d);
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	FleetAsCaller(&owner_sw);
	return result;
}

static void
refuse(const char *what, const char *name, const char *hold)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("legal hold: %s %s refused", what, name),
			 errdetail("It holds data that %s covers.", hold),
			 errhint("Release the hold with fleet.release_hold() first.")));
}

/* The active hold covering rows of a relation, described; NULL if none. */
static char *
relation_hold(Oid relid)
{
	Oid			type = REGCLASSOID;
	Datum		arg = ObjectIdGetDatum(relid);

	return ask("SELECT fleet.relation_hold($1)", 1, &type, &arg);
}

static void
check_relation(Oid relid, const char *what)
{
	char	   *hold;

	if (!OidIsValid(relid))
		return;
	hold = relation_hold(relid);
	if (hold)
		refuse(what, get_rel_name(relid), hold);
}

static void
check_rangevar(RangeVar *rv, const char *what)
{
	check_relation(RangeVarGetRelid(rv, NoLock, true), what);
}

/*
 * Refuse removing or silencing the legal-hold row trigger of a tiered table
 * (trigname NULL: every user trigger of the table).
 */
static void
check_hold_trigger(Oid relid, const char *trigname, const char *what)
{
	Oid			types[2] = {REGCLASSOID, NAMEOID};
	Datum		args[2];
	char	   *found;

	if (!OidIsValid(relid))
		return;
	args[0] = ObjectIdGetDatum(relid);
	args[1] = trigname ? DirectFunctionCall1(namein, CStringGetDatum(trigname)) : (Datum) 0;
	found = trigname
		? ask("SELECT fleet.hold_trigger($1, $2)", 2, types, args)
		: ask("SELECT fleet.hold_trigger($1, NULL)", 1, types, args);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("legal hold: %s of trigger %s on %s refused", what, found, get_rel_name(relid)),
				 errdetail("The trigger enforces legal holds on a table fleet partitions or tiers, including holds placed later."),
				 errhint("Only a superuser can remove it.")));
}

static bool
guard_active(void)
{
	if (superuser() || creating_extension || IsBinaryUpgrade)
		return false;
	if (!IsTransactionState() || !OidIsValid(get_extension_oid("fleet", true)))
		return false;
	return true;
}

/*
 * Refuse an ALTER TABLE subcommand that destroys or rewrites held rows or
 * silences the legal-hold trigger.
 */
static void
check_alter_table(Oid relid, AlterTableCmd *cmd)
{
	switch (cmd->subtype)
	{
		case AT_DetachPartition:
			check_rangevar(((PartitionCmd *) cmd->def)->name,
						   ((PartitionCmd *) cmd->def)->concurrent ?
						   "DETACH PARTITION CONCURRENTLY" : "DETACH PARTITION");
			break;
		case AT_DetachPartitionFinalize:
			check_rangevar(((PartitionCmd *) cmd->def)->name, "DETACH PARTITION FINALIZE");
			break;
		case AT_DropColumn:
			{
				char	   *hold = OidIsValid(relid) ? relation_hold(relid) : NULL;

				if (hold)
					refuse(psprintf("DROP COLUMN %s of", cmd->name), get_rel_name(relid), hold);
				break;
			}
		case AT_AlterColumnType:
			{
				char	   *hold = OidIsValid(relid) ? relation_hold(relid) : NULL;

				if (hold)
					refuse(psprintf("ALTER COLUMN %s TYPE of", cmd->name), get_rel_name(relid), hold);
				break;
			}
		case AT_SetUnLogged:
			check_relation(relid, "SET UNLOGGED");
			break;
		case AT_DisableTrig:
			check_hold_trigger(relid, cmd->name, "DISABLE");
			break;
		case AT_EnableReplicaTrig:
			check_hold_trigger(relid, cmd->name, "ENABLE REPLICA");
			break;
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
			check_hold_trigger(relid, NULL, "DISABLE");
			break;
		default:
			break;
	}
}

/*
 * Refuse the statement if it would destroy held data.
 */
void
FleetTierGuard(Node *parsetree)
{
	ListCell   *lc;

	if (!guard_active())
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
					else if ((stmt->removeType == OBJECT_SCHEMA && IsA(obj, String)) ||
							 (stmt->removeType == OBJECT_EXTENSION && IsA(obj, String) &&
							  strcmp(strVal(obj), "fleet") == 0))
					{
						Oid			type = NAMEOID;
						Datum		arg = DirectFunctionCall1(namein, CStringGetDatum(strVal(obj)));
						char	   *hold = ask("SELECT fleet.schema_hold($1)", 1, &type, &arg);

						if (hold)
							refuse(stmt->removeType == OBJECT_SCHEMA ? "DROP SCHEMA" : "DROP EXTENSION",
								   strVal(obj), hold);
					}
					else if (stmt->removeType == OBJECT_TRIGGER && list_length((List *) obj) >= 2)
					{
						List	   *names = (List *) obj;
						List	   *relname = list_copy_head(names, list_length(names) - 1);
						Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(relname), NoLock, true);

						check_hold_trigger(relid, strVal(llast(names)), "DROP");
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
				Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

				foreach(lc, stmt->cmds)
					check_alter_table(relid, lfirst_node(AlterTableCmd, lc));
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) parsetree;

				if (stmt->replace)
					check_hold_trigger(RangeVarGetRelid(stmt->relation, NoLock, true),
									   stmt->trigname, "CREATE OR REPLACE");
				break;
			}
		case T_DropOwnedStmt:
			{
				DropOwnedStmt *stmt = (DropOwnedStmt *) parsetree;

				foreach(lc, stmt->roles)
				{
					RoleSpec   *spec = lfirst_node(RoleSpec, lc);
					Oid			roleid = get_rolespec_oid(spec, true);
					Oid			type = OIDOID;
					Datum		arg = ObjectIdGetDatum(roleid);
					char	   *hold;

					if (!OidIsValid(roleid))
						continue;
					hold = ask("SELECT fleet.owned_hold($1)", 1, &type, &arg);
					if (hold)
						refuse("DROP OWNED BY", get_rolespec_name(spec), hold);
				}
				break;
			}
		default:
			break;
	}
}

/*
 * Object access hook: refuse dropping a column or a table that holds held
 * rows, whichever statement drops it (a cascade from DROP TYPE, DROP DOMAIN,
 * DROP EXTENSION of another extension ...).  Only tables of a partition tree
 * and the cold segments can hold tiered data; others are passed without a
 * query.
 */
static void
fleet_tier_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == RelationRelationId && guard_active())
	{
		char		relkind = get_rel_relkind(objectId);
		char	   *hold;

		if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
			return;
		if (get_rel_persistence(objectId) == RELPERSISTENCE_TEMP)
			return;
		if (relkind == RELKIND_RELATION && !get_rel_relispartition(objectId) &&
			strcmp(get_rel_name(objectId), "cold_segment") != 0 &&
			strcmp(get_rel_name(objectId), "cold_event_segment") != 0)
			return;
		hold = relation_hold(objectId);
		if (hold)
		{
			if (subId > 0)
				refuse(psprintf("dropping column %s of", get_attname(objectId, subId, false)),
					   get_rel_name(objectId), hold);
			refuse("dropping table", get_rel_name(objectId), hold);
		}
	}
}

/*
 * Install the object access hook (the utility hook is guard.c's).
 */
void
FleetTierGuardInit(void)
{
	prev_object_access = object_access_hook;
	object_access_hook = fleet_tier_object_access;
}
