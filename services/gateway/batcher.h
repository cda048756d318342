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
 * While the journal holds anything, new submissions go to the journal too,
 * so fixes reach the database in the order they were acknowledged.
 */
#ifndef FLEET_BATCHER_H
#define FLEET_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"


typedef enum
{
	GW_STORED, GW_JOURNALED, GW_UNKNOWN, GW_REFUSED, GW_FAILED
} gw_outcome;

typedef struct
{
	int			accepted;
	int			duplicate;
	int			conflict;
	int			rejected;
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
const char *gw_outcome_name(gw_outcome o);

#endif
