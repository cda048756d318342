/*
 * pg_accept.h - what PostgreSQL 15 (UTF8 database) accepts, as an oracle
 * for the fuzz targets and unit tests: every attrs document the gateway's
 * decoders build must pass pg_jsonb_accepts(), every device identifier
 * pg_device_accepts(), or the database would refuse the whole batch.
 *
 * The rules are written from the server's behaviour, independently of the
 * gateway's JSON writer: strict JSON (RFC 8259, top level an object), raw
 * string bytes valid UTF-8 and not control characters, no \u0000, escaped
 * surrogates only as a high-low pair, and numbers within numeric's range:
 * at most 131072 digits before the decimal point, at most 16383 after (the
 * display scale: digits written after the point minus the exponent, zero
 * included), an exponent below 2^30 - 1 in magnitude.
 */
#ifndef FLEET_PG_ACCEPT_H
#define FLEET_PG_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>

/* s[0..len) is a JSON object jsonb_in accepts; else why names the problem */
bool		pg_jsonb_accepts(const char *s, size_t len, const char **why);

/* one JSON number literal numeric_in (via jsonb) accepts */
bool		pg_json_number_accepts(const char *s, size_t len);

/* text: valid UTF-8 without NUL (what a text parameter takes) */
bool		pg_text_accepts(const char *s, size_t len);

/* a device identifier text: 1..64 bytes, valid UTF-8, no NUL */
bool		pg_device_accepts(const char *s, size_t len);

#endif
