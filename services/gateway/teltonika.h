/*
 * teltonika.h - Teltonika (FMxxx) TCP and UDP protocol: stream framing,
 * IMEI handshake, keep-alive, and AVL data packets in Codec 8, Codec 8
 * Extended (0x8E) and Codec 16, plus structural validation of the GPRS
 * command codecs 12/13/14 (acknowledged without a record-count reply).
 *
 * TCP stream, after the device connects:
 *   IMEI frame   u16 length | ASCII IMEI       server replies 01 (accept) / 00
 *   keep-alive   0xFF                          no reply
 *   AVL packet   00000000 | u32 data_len | codec | N1 | records | N2 | u32 CRC
 *                data_len covers codec..N2; CRC-16/IBM over the same bytes.
 *                server replies u32 big-endian N (records accepted)
 * UDP datagram:  u16 len | u16 packet_id | u8 0x01 | u8 avl_packet_id |
 *                u16 imei_len | imei | codec | N1 | records | N2 (no CRC)
 *                server replies 0005 | packet_id | 01 | avl_packet_id | u8 N
 *
 * The parsers never read outside [buf, buf+len) and never allocate: records
 * go to a caller array, attribute JSON to a caller arena (size it with
 * tlt_arena_bound()).  A rejected frame yields a gw_err reason and no reply.
 */
#ifndef FLEET_GW_TELTONIKA_H
#define FLEET_GW_TELTONIKA_H

#include "record.h"

#define TLT_MAX_DATA_LEN 65536	/* largest data_len accepted on TCP */
#define TLT_MAX_RECORDS 255		/* record count is one byte */
#define TLT_IMEI_MAX 20			/* longest accepted IMEI frame payload */

typedef enum
{
	TLT_KIND_NONE = 0,
	TLT_KIND_IMEI,				/* login: imei filled, caller sends tlt_imei_reply() */
	TLT_KIND_PING,				/* 0xFF keep-alive: no reply */
	TLT_KIND_AVL,				/* position records: reply filled */
	TLT_KIND_COMMAND			/* codec 12/13/14 command response: no reply */
} tlt_kind;

typedef struct
{
	tlt_kind	kind;
	uint8_t		codec;			/* 0x08, 0x8E, 0x10, 0x0C.. (AVL/COMMAND) */
	unsigned	count;			/* N1 = N2: records in the packet */
	size_t		n_records;		/* gw_records filled (positions only) */
	char		imei[TLT_IMEI_MAX + 1];	/* IMEI frame, or UDP header IMEI */
	uint16_t	packet_id;		/* UDP only */
	uint8_t		packet_type;	/* UDP only (0x01 per spec; not enforced) */
	uint8_t		avl_packet_id;	/* UDP only */
	uint8_t		reply[8];		/* bytes to send back; reply_len 0 = none */
	size_t		reply_len;
	/* KIND_COMMAND: first response, pointing into the frame */
	uint8_t		cmd_type;
	const uint8_t *cmd_payload;
	size_t		cmd_payload_len;
} tlt_result;

/*
 * Stream framing.  Looks at the start of a TCP receive buffer and returns:
 *   GW_OK         a whole frame of *frame_len bytes is at buf[0..]
 *   GW_NEED_MORE  the frame is not complete yet (read more, call again)
 *   any GW_ERR_*  the stream is corrupt: close the connection
 * Only the framing fields (preamble, lengths) are checked here; CRC and
 * content are checked by tlt_decode_tcp().
 */
gw_err		tlt_frame(const uint8_t *buf, size_t len, size_t *frame_len);

/*
 * Decode one whole TCP frame (as delimited by tlt_frame).  `device` is the
 * IMEI the connection logged in with, copied into every record (may be NULL
 * for the IMEI frame itself).  On GW_OK *res describes the frame; on error
 * res->reply_len is 0 and no records are valid.
 */
gw_err		tlt_decode_tcp(const uint8_t *frame, size_t len, const char *device,
						   gw_record *recs, size_t max_recs, gw_arena *arena,
						   tlt_result *res);

/* Decode one UDP datagram; records carry the IMEI from the datagram header. */
gw_err		tlt_decode_udp(const uint8_t *dgram, size_t len,
						   gw_record *recs, size_t max_recs, gw_arena *arena,
						   tlt_result *res);

/* the one-byte answer to an IMEI frame: 0x01 accept, 0x00 reject */
static inline uint8_t
tlt_imei_reply(bool accept)
{
	return accept ? 0x01 : 0x00;
}

/* an arena of this many bytes always holds the attributes of a frame of len bytes */
size_t		tlt_arena_bound(size_t len);

#endif							/* FLEET_GW_TELTONIKA_H */
