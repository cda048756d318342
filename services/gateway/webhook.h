/*
 * webhook.h - signed JSON batches from telematics providers.
 *
 * POST /webhook/<provider> on the device HTTP port, with headers
 * X-Fleet-Timestamp (unix seconds) and X-Fleet-Signature
 * (sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">).  The gateway does
 * not know the secrets and holds no domain logic: a worker thread passes
 * provider, timestamp, signature and body to fleet.ingest_webhook(), which
 * verifies and ingests in one transaction.  Answers, after the commit:
 *   200  JSON {"positions": [{"idx", "status", "reason"}...], "events": [...]}
 *   401  signature, timestamp or provider refused (SQLSTATE 28000): nothing stored
 *   400  malformed body (SQLSTATE class 22): nothing stored
 *   405  not POST;  404 bad provider name
 *   503  database unreachable, outcome unknown, or too many requests queued
 *        (Retry-After: the provider retries; the database deduplicates)
 * Webhooks are not journaled: their signature can only be checked by the
 * database, so nothing is acknowledged while it is unreachable.
 */
#ifndef FLEET_WEBHOOK_H
#define FLEET_WEBHOOK_H

#include "../common/httpd.h"

#include <stdbool.h>

typedef struct webhook webhook;

webhook *webhook_start(const char *dsn, int max_queue);
/* Handle a request whose path starts with /webhook/ (answers it exactly once). */
void webhook_handle(webhook *w, http_req *r, const char *provider);
/* Answer what is queued, then stop the worker. */
void webhook_stop(webhook *w);
bool webhook_path(const char *path, const char **provider);

#endif
