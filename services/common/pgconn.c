/*
 * pgconn.c - a reconnecting libpq connection with prepared statements.
 */
#include "pgconn.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pgconn
{
	char	   *dsn;
	char	   *appname;
	const pg_stmt *stmts;
	int			nstmts;
	PGconn	   *conn;
	double		next_attempt;	/* monotonic seconds */
	double		backoff;
	unsigned long reconnects;
	bool		was_connected;
	unsigned int seed;
};

/* Monotonic clock in seconds. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

pgconn *
pgconn_new(const char *dsn, const char *appname, const pg_stmt *stmts, int nstmts)
{
	pgconn	   *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->dsn = strdup(dsn);
	c->appname = strdup(appname);
	c->stmts = stmts;
	c->nstmts = nstmts;
	c->backoff = 0.1;
	c->seed = (unsigned int) time(NULL) ^ (unsigned int) (size_t) c;
	return c;
}

void
pgconn_free(pgconn *c)
{
	if (!c)
		return;
	if (c->conn)
		PQfinish(c->conn);
	free(c->dsn);
	free(c->appname);
	free(c);
}

/* Drop the connection and schedule the next attempt with jittered backoff. */
static void
drop(pgconn *c, const char *why)
{
	if (c->conn)
	{
		if (c->was_connected)
			log_msg(LOG_WARN, "database connection lost", "reason=\"%s\"", why);
		PQfinish(c->conn);
		c->conn = NULL;
	}
	c->was_connected = false;
	c->next_attempt = now_s() + c->backoff * (rand_r(&c->seed) / (double) RAND_MAX);
	c->backoff = c->backoff * 2 > 5.0 ? 5.0 : c->backoff * 2;
}

bool
pgconn_is_connected(pgconn *c)
{
	return c->conn && PQstatus(c->conn) == CONNECTION_OK;
}

bool
pgconn_ensure(pgconn *c)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {c->dsn, c->appname, NULL};

	/*
	 * An idle connection learns that the server went away (shutdown, admin
	 * termination) only by reading: consume what is there (libpq's socket
	 * never blocks) so readiness reflects reality before the next call.
	 */
	if (pgconn_is_connected(c) && PQisBusy(c->conn) == 0 &&
		(PQconsumeInput(c->conn) == 0 || PQstatus(c->conn) != CONNECTION_OK))
		drop(c, "connection lost while idle");
	if (pgconn_is_connected(c))
		return true;
	if (c->conn)
		drop(c, "bad status");
	if (now_s() < c->next_attempt)
		return false;
	c->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		char		msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->conn));
		for (char *p = msg; *p; p++)
			if (*p == '\n' || *p == '"')
				*p = ' ';
		log_msg(LOG_DEBUG, "database connect failed", "error=\"%s\"", msg);
		drop(c, "connect failed");
		return false;
	}
	for (int i = 0; i < c->nstmts; i++)
	{
		PGresult   *r = PQprepare(c->conn, c->stmts[i].name, c->stmts[i].sql, c->stmts[i].nparams, NULL);

		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			log_msg(LOG_ERROR, "prepare failed", "stmt=%s error=\"%s\"", c->stmts[i].name,
					PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
			PQclear(r);
			drop(c, "prepare failed");
			return false;
		}
		PQclear(r);
	}
	c->was_connected = true;
	c->backoff = 0.1;
	c->reconnects++;
	log_msg(LOG_INFO, "database connected", "host=%s pid=%d", PQhost(c->conn), PQbackendPID(c->conn));
	return true;
}

/* Does this SQLSTATE mean the connection/server is gone or unusable? */
static bool
is_connection_state(const char *st)
{
	return st == NULL || strncmp(st, "08", 2) == 0 ||
		strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0 ||
		strcmp(st, "25006") == 0 || strcmp(st, "53300") == 0;
}

pgc_status
pgconn_exec(pgconn *c, const char *stmt, int nparams, const char *const *values,
			PGresult **res, char *sqlstate, char *message, size_t msglen)
{
	PGresult   *r;
	const char *st;

	*res = NULL;
	sqlstate[0] = '\0';
	if (message && msglen)
		message[0] = '\0';
	if (!pgconn_ensure(c))
		return PGC_UNAVAILABLE;
	r = PQexecPrepared(c->conn, stmt, nparams, values, NULL, NULL, 0);
	if (r && (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK))
	{
		*res = r;
		return PGC_OK;
	}
	st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(sqlstate, 6, "%s", st ? st : "08006");
	if (message && msglen)
		snprintf(message, msglen, "%s", r && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
				 ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(c->conn));
	if (PQstatus(c->conn) != CONNECTION_OK || is_connection_state(st))
	{
		PQclear(r);
		drop(c, sqlstate);
		/* the call may or may not have committed */
		return PGC_UNKNOWN;
	}
	PQclear(r);
	return PGC_ERROR;
}

unsigned long
pgconn_reconnects(pgconn *c)
{
	return c->reconnects > 0 ? c->reconnects - 1 : 0;
}

const char *
pgconn_host(pgconn *c)
{
	return c->conn ? PQhost(c->conn) : "";
}
