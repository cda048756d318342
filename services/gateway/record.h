/*
 * record.h - the decoded position fix shared by every tracker protocol
 * parser of the device gateway (Teltonika, GT06, OsmAnd), the error
 * reasons they report, and the small allocation-free helpers they share:
 *
 *   gw_record   one decoded fix.  The device identifier is copied into the
 *               record; the attribute JSON text lives in a caller-provided
 *               arena, so decoding never calls malloc.
 *   gw_arena    a caller-owned byte buffer the parsers append attribute
 *               JSON text to.  Each parser documents a size bound that is
 *               always enough for a frame of a given length.
 *   gw_json     a tiny bounded JSON object writer over an arena.
 *   gw_err      why a frame or request was rejected (gw_strerror() gives a
 *               stable snake_case name for logs and metrics).
 *
 * Time is int64 milliseconds since the Unix epoch, UTC.  Optional numeric
 * fields are NAN when absent; the device sequence number is -1 when absent.
 */
#ifndef FLEET_GW_RECORD_H
#define FLEET_GW_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_DEVICE_MAX 64		/* longest device identifier, in bytes */

typedef struct
{
	char		device[GW_DEVICE_MAX + 1];	/* IMEI (15 digits) or OsmAnd id */
	int64_t		time_ms;		/* fix time, ms since the epoch, UTC */
	double		lat,
				lon;			/* degrees, WGS84 */
	double		speed_kmh;		/* NAN when absent */
	double		heading;		/* degrees 0..360, NAN when absent */
	double		altitude;		/* metres, NAN when absent */
	double		accuracy;		/* metres, NAN when absent */
	bool		valid;			/* the device had a position fix */
	int64_t		seq;			/* device sequence number, -1 when absent */
	const char *attrs;			/* JSON object text in the arena, NUL-terminated */
	size_t		attrs_len;		/* strlen(attrs) */
} gw_record;

typedef enum
{
	GW_OK = 0,
	GW_NEED_MORE,				/* streaming: not a whole frame yet (not an error) */
	GW_ERR_TRUNCATED,			/* data ends before the structure it announces */
	GW_ERR_BAD_LENGTH,			/* a length field is impossible or disagrees */
	GW_ERR_BAD_PREAMBLE,		/* Teltonika preamble not 4 zero bytes */
	GW_ERR_BAD_START,			/* GT06 start bits not 7878 / 7979 */
	GW_ERR_BAD_STOP,			/* GT06 stop bits not 0D0A */
	GW_ERR_BAD_CRC,				/* checksum mismatch */
	GW_ERR_COUNT_MISMATCH,		/* Teltonika record counts differ */
	GW_ERR_UNKNOWN_CODEC,		/* Teltonika codec not supported */
	GW_ERR_UNKNOWN_TYPE,		/* GT06 protocol number not supported */
	GW_ERR_BAD_IMEI,			/* identifier malformed */
	GW_ERR_BAD_FIELD,			/* a field value is out of range / malformed */
	GW_ERR_MISSING_FIELD,		/* a required field (id, lat, lon) absent */
	GW_ERR_BAD_REQUEST,			/* HTTP request malformed (encoding, JSON) */
	GW_ERR_BAD_METHOD,			/* HTTP method not GET/POST */
	GW_ERR_TOO_MANY,			/* more records than the caller's array holds */
	GW_ERR_NOSPACE				/* attribute arena too small */
} gw_err;

const char *gw_strerror(gw_err e);

/* ---- attribute arena ---------------------------------------------------- */

typedef struct
{
	char	   *buf;
	size_t		cap;
	size_t		used;
} gw_arena;

static inline void
gw_arena_init(gw_arena *a, char *buf, size_t cap)
{
	a->buf = buf;
	a->cap = cap;
	a->used = 0;
}

/* ---- bounded JSON object writer ------------------------------------------ */

typedef struct
{
	gw_arena   *arena;
	size_t		start;			/* offset of '{' in the arena */
	int			n;				/* members written */
	bool		overflow;
} gw_json;

void		gw_json_begin(gw_json *j, gw_arena *a);
void		gw_json_int(gw_json *j, const char *key, int64_t v);
void		gw_json_uint(gw_json *j, const char *key, uint64_t v);
void		gw_json_double(gw_json *j, const char *key, double v);	/* skipped if not finite */
void		gw_json_bool(gw_json *j, const char *key, bool v);
void		gw_json_str(gw_json *j, const char *key, const char *s, size_t len);
void		gw_json_hex(gw_json *j, const char *key, const uint8_t *p, size_t len);
/* append a pre-validated JSON value (number literal etc.) verbatim */
void		gw_json_raw(gw_json *j, const char *key, size_t keylen, const char *v, size_t vlen);
void		gw_json_strn(gw_json *j, const char *key, size_t keylen, const char *s, size_t len);

/* close the object; on success point rec->attrs at it and return GW_OK */
gw_err		gw_json_end(gw_json *j, gw_record *rec);

/* ---- small shared helpers ------------------------------------------------- */

/* reset a record: no device, time 0, optional fields absent, attrs "{}" */
void		gw_record_clear(gw_record *r);

/* days since 1970-01-01 of a proleptic Gregorian civil date */
int64_t		gw_days_from_civil(int64_t y, unsigned m, unsigned d);

/* ms since epoch from UTC civil fields; false if a field is out of range */
bool		gw_civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms, int64_t *out);

/* true if s[0..len) is a well-formed UTF-8 sequence (no overlongs/surrogates) */
bool		gw_utf8_valid(const char *s, size_t len);

/* CRC-16/IBM (ARC): poly 0xA001 reflected, init 0 - Teltonika */
uint16_t	gw_crc16_ibm(const uint8_t *p, size_t len);

/* CRC-16/X-25: poly 0x8408 reflected, init 0xFFFF, xorout 0xFFFF - GT06 */
uint16_t	gw_crc16_x25(const uint8_t *p, size_t len);

#endif							/* FLEET_GW_RECORD_H */
