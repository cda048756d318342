/*
 * gt06.h - GT06 / Concox binary protocol (TCP): framing, CRC-16/X-25,
 * login, heartbeat/status and position packets, and the server replies.
 *
 * Frame:  7878 | len(1) | proto | info | serial(2) | crc(2) | 0D0A
 *         7979 | len(2) | proto | info | serial(2) | crc(2) | 0D0A
 * len counts proto..crc; the CRC covers len..serial.
 *
 * Supported protocol numbers:
 *   0x01 login (IMEI as 8 BCD bytes, optional type id / timezone)
 *   0x13 status / heartbeat, 0x23 heartbeat (GT06N)
 *   0x10 GPS, 0x12 GPS+LBS, 0x22 GPS+LBS (2G/3G), 0x16 / 0x26 alarm with GPS
 * Every supported packet is acknowledged with
 *   7878 05 <proto> <serial> <crc> 0D0A
 * Position times are the device clock, taken as UTC.
 */
#ifndef FLEET_GW_GT06_H
#define FLEET_GW_GT06_H

#include "record.h"

#define GT06_MAX_FRAME 1024		/* largest frame accepted, bytes */

typedef enum
{
	GT06_KIND_NONE = 0,
	GT06_KIND_LOGIN,			/* imei filled */
	GT06_KIND_STATUS,			/* heartbeat: status fields filled */
	GT06_KIND_POSITION			/* one record filled */
} gt06_kind;

typedef struct
{
	gt06_kind	kind;
	uint8_t		proto;
	uint16_t	serial;
	bool		extended;		/* 7979 frame */
	char		imei[17];		/* LOGIN: 15 (or 16) digits */
	size_t		n_records;		/* 0 or 1 */
	/* STATUS */
	uint8_t		terminal_info;
	uint8_t		voltage_level;
	uint8_t		gsm_signal;
	uint8_t		reply[10];		/* reply_len 0 = none */
	size_t		reply_len;
} gt06_result;

/*
 * Stream framing: GW_OK with *frame_len, GW_NEED_MORE, or an error (the
 * stream is corrupt: close the connection).  Checks start bits, the length
 * field and the stop bits; CRC is checked by gt06_decode().
 */
gw_err		gt06_frame(const uint8_t *buf, size_t len, size_t *frame_len);

/*
 * Decode one whole frame.  `device` is the IMEI the connection logged in
 * with (copied into position records; may be NULL before login).
 * On error no reply is produced and no record is valid.
 */
gw_err		gt06_decode(const uint8_t *frame, size_t len, const char *device,
						gw_record *rec, gw_arena *arena, gt06_result *res);

/* an arena of this many bytes always holds one frame's attributes */
#define GT06_ARENA_BOUND 512

#endif							/* FLEET_GW_GT06_H */
