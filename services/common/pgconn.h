/*
 * pgconn.h - one libpq connection that reconnects by itself.
 *
 * The DSN is a single libpq connection string or URI, so multi-host
 * failover ("host=a,b target_session_attrs=read-write") and every PG*
 * environment variable work unchanged.  After each (re)connect the listed
 * statements are prepared.  A failure that means the connection or the
 * server is gone (connection status bad, SQLSTATE class 08, 57P01-57P03,
 * 25006 read-only after a failover) closes it; the next call reconnects
 * after an exponential backoff with full jitter (100 ms doubling to 5 s).
 *
 * The outcome of a call distinguishes "the statement failed" (data error:
 * the transaction rolled back, nothing stored) from "unknown" (the
 * connection broke around the commit: it may or may not have committed),
 * which the gateway must not acknowledge.
 */
#ifndef FLEET_PGCONN_H
#define FLEET_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct
{
	const char *name;
	const char *sql;
	int			nparams;
} pg_stmt;

typedef enum
{
	PGC_OK,						/* result available */
	PGC_ERROR,					/* statement failed; nothing committed */
	PGC_UNKNOWN,				/* connection lost during the call */
	PGC_UNAVAILABLE				/* not connected (backing off) */
} pgc_status;

typedef struct pgconn pgconn;

pgconn *pgconn_new(const char *dsn, const char *appname, const pg_stmt *stmts, int nstmts);
void pgconn_free(pgconn *c);

/* Connect now if not connected and the backoff allows; true if connected. */
bool pgconn_ensure(pgconn *c);
bool pgconn_is_connected(pgconn *c);

/*
 * Run a prepared statement (text parameters).  On PGC_OK *res holds the
 * result (caller PQclear()s); on PGC_ERROR sqlstate/message are filled.
 */
pgc_status pgconn_exec(pgconn *c, const char *stmt, int nparams,
					   const char *const *values, PGresult **res,
					   char *sqlstate, char *message, size_t msglen);

unsigned long pgconn_reconnects(pgconn *c);
const char *pgconn_host(pgconn *c);

#endif
