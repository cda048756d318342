/*
 * batcher.h - coalesce fixes from every connection into batched ingest
 * calls, and acknowledge each submission only when its data is durable.
 *
 * A submission is the set of fixes from one frame or request.  Its
 * callback runs exactly once, from the batcher thread, with one outcome:
 *   GW_STORED     committed by fleet.ingest_positions (duplicates count as
 *                 stored: a device re-sending its buffer is acknowledged)
 *   GW_JOURNALED  the database was unreachable; the fixes are fsync'd in the
 *                 local journal and will be drained in order
 *   GW_UNKNOWN    the connection broke around the commit: no acknowledgement,
 *                 the device's retry is deduplicated by the database
 *   GW_REFUSED    every fix was rejected (unknown device...)
 *   GW_FAILED     not stored and not journaled (journal full: backpressure,
 *                 or shutting down)
 *   GW_INVALID    the database refused some of its fixes with an error that
 *                 is not an outage (a data exception, a constraint, a
 *                 privilege...): those are not stored and not acknowledged,
 *                 the submission's other fixes and every other submission of
 *                 the batch are stored
 * While the journal holds anything, new submissions go to the journal too,
 * so fixes reach the database in the order they were acknowledged.
 *
 * Only an outage is journaled: the connection lost or unavailable (class
 * 08, 57P01-57P03, 25006 after a failover), the server short of resources
 * (class 53), a serialization failure or deadlock (class 40), a canceled
 * statement or lock time-out (57014, 55P03), a system error (class 58).
 * Any other error is about the data: the batch is split in halves until the
 * fixes that fail alone are found; they are refused with the reason
 * db_error_<SQLSTATE>, the rest is stored.  When the journal drain meets
 * such fixes it stores the rest and retries them; once they have failed for
 * dead_letter_after_s seconds (and at least three times) they are moved to
 * dead-letters.jsonl in the journal directory with their error, and the
 * drain goes on.  A drain that makes no progress while the database is
 * connected for stuck_after_s seconds makes batcher_journal_stuck() true.
 */
#ifndef FLEET_BATCHER_H
#define FLEET_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"


typedef enum
{
	GW_STORED, GW_JOURNALED, GW_UNKNOWN, GW_REFUSED, GW_FAILED, GW_INVALID
} gw_outcome;

typedef struct
{
	int			accepted;
	int			duplicate;
	int			conflict;
	int			rejected;
	int			failed;			/* refused by a database error: not stored, not acknowledged */
	char		reason[64];		/* first rejection reason */
} gw_counts;

typedef void (*gw_done_fn) (void *ctx, gw_outcome outcome, const gw_counts *counts);

typedef struct batcher batcher;

typedef struct
{
	const char *dsn;
	const char *journal_dir;
	uint64_t	journal_max_bytes;
	int			max_batch;		/* fixes per ingest call */
	int			max_wait_ms;	/* how long a fix may wait for company */
	int			writers;		/* database connections writing in parallel (lanes by device) */
	int			dead_letter_after_s;	/* journaled fixes refused this long are moved aside */
	int			stuck_after_s;	/* no drain progress this long while connected: stuck */
} batcher_config;

batcher *batcher_start(const batcher_config *cfg, char *err, size_t errlen);
/* Copies the records (attrs included): the caller's arena may be reused. */
void batcher_submit(batcher *b, const gw_record *recs, int n, gw_done_fn cb, void *ctx);
/* Drain what is queued, then stop the thread (pending submissions are answered). */
void batcher_stop(batcher *b);
/* Is every writer lane connected to the database? */
bool batcher_db_ready(batcher *b);
uint64_t batcher_journal_depth(batcher *b);
/* Can data still be acknowledged into the journal (below 90% of its bound)? */
bool batcher_journal_has_room(batcher *b);
/* Has the drain made no progress for stuck_after_s seconds while connected? */
bool batcher_journal_stuck(batcher *b);
const char *gw_outcome_name(gw_outcome o);

#endif
