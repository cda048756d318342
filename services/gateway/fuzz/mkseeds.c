/*
 * mkseeds.c - writes the fuzzers' seed corpora from the shared vectors:
 *   mkseeds VECTOR_DIR OUT_DIR
 * creates OUT_DIR/{teltonika,gt06,osmand}/seed-N, one file per vector row
 * (binary frames unhexed; OsmAnd rows as METHOD\nTARGET\nCTYPE\nBODY) plus
 * one seed per binary protocol holding all its frames back to back, and a
 * few OsmAnd requests with values jsonb would refuse as numbers; seeds for
 * the journal reader and the sync service's checks are written here too.
 * Seeds go to the build directory only, never into git.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *
slurp(const char *dir, const char *name)
{
	char		path[2048];
	FILE	   *f;
	char	   *buf;
	long		n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!(f = fopen(path, "rb")))
	{
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n)
		exit(1);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
write_file(const char *dir, const char *sub, int n, const void *p, size_t len)
{
	char		path[2048];
	FILE	   *f;

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/seed-%d", dir, sub, n);
	if (!(f = fopen(path, "wb")) || fwrite(p, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

static void
binary(const char *vdir, const char *out, const char *tsvname, const char *sub)
{
	char	   *tsv = slurp(vdir, tsvname),
			   *save = NULL;
	static unsigned char all[1 << 16];
	size_t		all_len = 0;
	int			n = 0;

	for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		unsigned char b[8192];
		size_t		len = 0;

		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (char *p = line; p[0] && p[1] && p[0] != '\t' && len < sizeof b; p += 2)
		{
			unsigned	v;

			if (sscanf(p, "%2x", &v) != 1)
				break;
			b[len++] = (unsigned char) v;
		}
		write_file(out, sub, n++, b, len);
		if (all_len + len <= sizeof all)
		{
			memcpy(all + all_len, b, len);
			all_len += len;
		}
	}
	write_file(out, sub, n, all, all_len);
	free(tsv);
}

static void
osmand(const char *vdir, const char *out)
{
	char	   *tsv = slurp(vdir, "osmand.tsv"),
			   *save = NULL;
	int			n = 0;

	for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *c[4] = {line, "", "", ""};
		int			k = 1;
		char		seed[8192];
		int			len;

		if (line[0] == '#' || strncmp(line, "method\t", 7) == 0)
			continue;
		for (char *p = line; *p && k < 4; p++)
			if (*p == '\t')
			{
				*p = '\0';
				c[k++] = p + 1;
			}
		/* cut the body at the next tab */
		{
			char	   *t = strchr(c[3], '\t');

			if (t)
				*t = '\0';
		}
		len = snprintf(seed, sizeof seed, "%s\n%s\n%s\n%s", c[0], c[1], c[2], c[3]);
		if (len > 0 && (size_t) len < sizeof seed)
			write_file(out, "osmand", n++, seed, (size_t) len);
	}
	free(tsv);
	/* values jsonb would refuse if copied as they look (numbers beyond numeric) */
	{
		static const char *extra[] = {
			"GET\n/?id=d1&lat=1&lon=2&timestamp=1700000000&x=1e200000\n\n",
			"GET\n/?id=d1&lat=1&lon=2&x=-0.5e-99999&y=NaN&z=Infinity\n\n",
			"POST\n/\napplication/json\n{\"device_id\":\"d1\",\"location\":{\"coords\":{\"latitude\":1,\"longitude\":2},\"extras\":{\"x\":1e300,\"y\":\"\\ud83d\\ude00\"}}}",
		};

		for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
			write_file(out, "osmand", n++, extra[i], strlen(extra[i]));
	}
}

/* CRC-32 (zlib's) of p[0..n) */
static unsigned
crc32_of(const unsigned char *p, size_t n)
{
	unsigned	c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++)
	{
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return c ^ 0xFFFFFFFFu;
}

/*
 * Journal seeds (fuzz_journal's layout: flags, rseg, roff u32, split u16,
 * segment bytes): three valid records, with and without a drained
 * position, split over two segments, with a torn tail.
 */
static void
journal_seeds(const char *out)
{
	static const char *payloads[] = {"first", "second record", "3"};
	unsigned char seg[256],
				seed[300];
	size_t		len = 0;
	int			n = 0;
	static const struct
	{
		unsigned char flags,
					rseg;
		unsigned	roff;
		unsigned short split;
		int			torn;
	}			v[] = {
		{0, 0, 0, 0, 0}, {2, 1, 13, 0, 0}, {2, 1, 999999, 0, 0}, {2, 9, 0, 0, 0},
		{3, 2, 0, 13, 0}, {3, 1, 5, 34, 0}, {0, 0, 0, 0, 1}, {4, 0, 0, 0, 0},
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
	{
		unsigned	l = (unsigned) strlen(payloads[i]),
					c = crc32_of((const unsigned char *) payloads[i], l);

		memcpy(seg + len, &l, 4);
		memcpy(seg + len + 4, &c, 4);
		memcpy(seg + len + 8, payloads[i], l);
		len += 8 + l;
	}
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
	{
		size_t		sl = v[i].torn ? len - 2 : len;

		seed[0] = v[i].flags;
		seed[1] = v[i].rseg;
		memcpy(seed + 2, &v[i].roff, 4);
		memcpy(seed + 6, &v[i].split, 2);
		memcpy(seed + 8, seg, sl);
		write_file(out, "journal", n++, seed, 8 + sl);
	}
}

/* Sync seeds: selector byte (0 push, 1 pull, 2 event) then the body. */
static void
sync_seeds(const char *out)
{
	static const struct
	{
		char		sel;
		const char *body;
	}			v[] = {
		{0, "{\"mutations\":[{\"id\":1,\"workflow\":\"stop_status\",\"args\":{\"stop_id\":7,\"status\":\"arrived\"},"
		"\"client_time\":\"2026-03-04T10:00:00Z\",\"base_version\":3,\"hlc\":\"1700000000000:1\"}]}"},
		{0, "{\"mutations\":[{\"id\":2,\"workflow\":\"proof\",\"args\":{\"x\":1e300,\"y\":\"\\ud83d\\ude00\"}}]}"},
		{1, "{\"cursor\":\"abc\",\"max\":500}"},
		{1, ""},
		{2, "{\"key\":\"k1\",\"kind\":\"driver.panic\",\"payload\":{\"a\":[1,2.5,null]},\"occurred_at\":null}"},
		{2, "{\"key\":\"k2\",\"kind\":\"audit.note\",\"payload\":{\"n\":-0.5e-300}}"},
	};
	char		buf[512];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
	{
		size_t		l = strlen(v[i].body);

		buf[0] = v[i].sel;
		memcpy(buf + 1, v[i].body, l);
		write_file(out, "sync", (int) i, buf, l + 1);
	}
}

int
main(int argc, char **argv)
{
	if (argc != 3)
	{
		fprintf(stderr, "usage: mkseeds VECTOR_DIR OUT_DIR\n");
		return 2;
	}
	mkdir(argv[2], 0755);
	binary(argv[1], argv[2], "teltonika.tsv", "teltonika");
	binary(argv[1], argv[2], "gt06.tsv", "gt06");
	osmand(argv[1], argv[2]);
	journal_seeds(argv[2]);
	sync_seeds(argv[2]);
	return 0;
}
