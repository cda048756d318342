/*
 * mkseeds.c - writes the fuzzers' seed corpora from the shared vectors:
 *   mkseeds VECTOR_DIR OUT_DIR
 * creates OUT_DIR/{teltonika,gt06,osmand}/seed-N, one file per vector row
 * (binary frames unhexed; OsmAnd rows as METHOD\nTARGET\nCTYPE\nBODY) plus
 * one seed per binary protocol holding all its frames back to back, and a
 * few OsmAnd requests with values jsonb would refuse as numbers.
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
	return 0;
}
