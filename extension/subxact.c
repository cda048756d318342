/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a piece of work in a subtransaction of its own, keeping its
 *	  error instead of raising it.
 *
 * Event handlers (pipeline.c), upcasters (ingest_events.c) and a driver
 * app's mutations (sync_batch.c) each run code that may fail for one item
 * while the rest of the batch goes on: the failed item's writes are rolled
 * back with its subtransaction and its error is kept to be recorded.  The
 * caller's memory context and resource owner are restored either way, and
 * the error is copied into the caller's memory context.  A subtransaction's
 * abort also restores the user id and security context it started with, so
 * work that switched to another role needs no clean-up of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "fleet.h"

/*
 * Run fn(arg) in an internal subtransaction.  NULL if it committed; else
 * the error, the subtransaction rolled back.
 */
ErrorData *
FleetTrySubtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return edata;
}
