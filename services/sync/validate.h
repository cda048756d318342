/*
 * validate.h - shapes and sizes of the sync service's request bodies.
 *
 * Pure functions (no database, no HTTP): each parses a request body with
 * jansson and either fills the values passed on to the database or names
 * the problem.  A request that fails here never reaches the database, so
 * nothing is stored.
 *
 *   push    {"mutations": [{"id": 1, "workflow": "stop_status",
 *             "args": {...}, "client_time": "...", "base_version": 3,
 *             "hlc": "<ms>:<counter>"}, ...]}
 *   pull    {"cursor": "..." | null, "max": 500}   (empty body: {})
 *   event   {"key": "...", "kind": "driver.panic", "payload": {...},
 *            "occurred_at": "..." | null}
 */
#ifndef FLEET_SYNC_VALIDATE_H
#define FLEET_SYNC_VALIDATE_H

#include <stddef.h>

typedef enum
{
	SV_OK = 0,
	SV_MALFORMED,				/* not JSON: 400 malformed_json */
	SV_INVALID,					/* JSON of the wrong shape or types: 400 invalid_request */
	SV_TOO_MANY					/* more mutations than allowed: 413 too_many_mutations */
} sv_status;

typedef struct
{
	sv_status	status;
	char		error[32];		/* machine-readable code */
	char		field[64];		/* the offending field, e.g. mutations[3].id */
	char		message[256];	/* for people */
} sv_problem;

/* Push: *mutations_json (malloc'd, compact) is what fleet.sync_push gets. */
sv_status sv_push(const char *body, size_t len, int max_mutations,
				  char **mutations_json, int *count, sv_problem *p);

/* Pull: *cursor is malloc'd or NULL (full copy); *max defaults to def_max. */
sv_status sv_pull(const char *body, size_t len, int def_max, int max_max,
				  char **cursor, int *max, sv_problem *p);

/* Event: every output malloc'd; *occurred_at may be NULL (now). */
sv_status sv_event(const char *body, size_t len, char **key, char **kind,
				   char **payload_json, char **occurred_at, sv_problem *p);

/* The problem as a JSON error body (malloc'd). */
char *sv_problem_json(const sv_problem *p);

#endif
