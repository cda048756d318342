/*
 * utf8.c - UTF-8 sequences as PostgreSQL accepts them: the gateway's
 * decoders refuse device ids and texts that are not (gw_utf8_valid), the
 * sync service scrubs text it quotes back, the fuzz targets check what the
 * decoders hand the database.
 */
#include "utf8.h"

#include <stdint.h>

size_t
utf8_seq(const unsigned char *s, size_t n, size_t i)
{
	unsigned char c = s[i];
	size_t		k;
	uint32_t	cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		k = 1, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		k = 2, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		k = 3, cp = c & 0x07;
	else
		return 0;
	if (n - i - 1 < k)
		return 0;
	for (size_t j = 1; j <= k; j++)
	{
		if ((s[i + j] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i + j] & 0x3F);
	}
	if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		(cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k + 1;
}
