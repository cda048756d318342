/*
 * journal.h - a local append-only journal for acknowledged-but-unstored data.
 *
 * While the database is unreachable the gateway appends each batch here and
 * fsyncs before it acknowledges the devices; when the database returns the
 * journal drains in order.  Layout: a directory of segment files
 * seg-NNNNNNNNNNNNNNNN.jnl holding records [u32 length][u32 crc32][payload],
 * and a file "drained" with the position (segment, offset) up to which
 * records are known to be stored in the database, replaced atomically
 * (write, fsync, rename, fsync directory).
 *
 * Crash safety: a record is acknowledged only after the fsync that covers it;
 * a torn tail left by a crash mid-append fails its length or CRC check and is
 * truncated on open (it was never acknowledged).  A crash after the database
 * commit but before the drained position is saved re-sends records on the
 * next drain; the database deduplicates them.
 */
#ifndef FLEET_JOURNAL_H
#define FLEET_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct journal journal;

journal *journal_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void journal_close(journal *j);

/* Append n records and fsync. 0: durable; -1: full (backpressure); -2: I/O error. */
int journal_append(journal *j, const void *const *recs, const size_t *lens, int n);

/*
 * Read up to max records from the drained position on.  The pointers stay
 * valid until the next peek, consume or close.  Returns the count (0 when
 * empty), -2 on I/O error.
 */
int journal_peek(journal *j, int max, const void **recs, size_t *lens);

/* The records of the last peek are stored: advance and persist the position. */
int journal_consume(journal *j);

uint64_t journal_depth_bytes(journal *j);
uint64_t journal_depth_records(journal *j);
uint64_t journal_truncated_bytes(journal *j);	/* torn tail dropped at open */
/* The drained position found at open was not a record boundary of a present
 * segment (damaged file): draining restarted at the earliest safe place. */
bool journal_position_was_reset(journal *j);

#endif
