/*
 * fuzz_journal.c - libFuzzer target for the journal reader: arbitrary bytes
 * as the files of a journal directory, as a crash or a damaged disk could
 * leave them.
 *
 * Input: [u8 flags][u8 rseg][u32 roff][u16 split] then segment bytes.  The
 * bytes go to seg-0000000000000001.jnl and, when flags bit 0 is set, from
 * `split` on to seg-0000000000000002.jnl; when bit 1 is set a "drained"
 * file holds "<rseg> <roff>" (bit 2: raw bytes of the input instead).
 * Then the journal is opened and drained.  Asserted: open succeeds; the
 * depth in bytes never exceeds what the files hold (no wrap); peek and
 * consume empty the journal (depth 0 records and bytes) in a bounded
 * number of steps, every record read within its segment; afterwards the
 * journal still takes an append and gives the same record back.
 */
#include "../journal.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void
put(const char *name, const void *p, size_t n)
{
	char		path[512];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (n && fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
}

/* Remove every file of the directory (the journal may have made new segments). */
static void
clear(void)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	char		path[512];

	if (!d)
		return;
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		flags,
				rseg;
	uint32_t	roff;
	uint16_t	split;
	const uint8_t *seg;
	size_t		seglen,
				s1;
	char		err[256];
	journal    *j;
	const void *recs[64];
	size_t		lens[64];
	int			steps = 0;

	if (!dir[0])
	{
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		snprintf(dir, sizeof(dir), "%s/fleet-fuzz-journal-%d", base, (int) getpid());
	}
	if (size < 8)
		return 0;
	flags = data[0];
	rseg = data[1];
	memcpy(&roff, data + 2, 4);
	memcpy(&split, data + 6, 2);
	seg = data + 8;
	seglen = size - 8;
	s1 = (flags & 1) && split < seglen ? split : seglen;

	if (mkdir(dir, 0700) != 0)
		clear();
	put("seg-0000000000000001.jnl", seg, s1);
	if (flags & 1)
		put("seg-0000000000000002.jnl", seg + s1, seglen - s1);
	if (flags & 4)
		put("drained", seg, seglen < 64 ? seglen : 64);
	else if (flags & 2)
	{
		char		line[64];
		int			n = snprintf(line, sizeof(line), "%u %u\n", (unsigned) rseg, (unsigned) roff);

		put("drained", line, (size_t) n);
	}

	j = journal_open(dir, 64u << 20, err, sizeof(err));
	if (!j)
		abort();
	if (journal_depth_bytes(j) > seglen)
		abort();				/* the depth wrapped */
	if (journal_depth_records(j) > seglen / 9 + 1)
		abort();				/* more records than the bytes can hold */
	while (journal_depth_records(j) > 0)
	{
		int			n = journal_peek(j, 64, recs, lens);

		if (n <= 0 || ++steps > 100000)
			abort();			/* records counted but unreadable: the drain would stall */
		for (int i = 0; i < n; i++)
			if (lens[i] == 0 || lens[i] > seglen)
				abort();
		if (journal_consume(j) != 0)
			abort();
		if (journal_depth_bytes(j) > seglen)
			abort();
	}
	if (journal_depth_bytes(j) != 0)
		abort();
	{
		const char	rec[] = "after";
		const void *rp[1] = {rec};
		size_t		rl[1] = {sizeof(rec)};

		if (journal_append(j, rp, rl, 1) != 0 || journal_peek(j, 64, recs, lens) != 1 ||
			lens[0] != sizeof(rec) || memcmp(recs[0], rec, sizeof(rec)) != 0 ||
			journal_consume(j) != 0 || journal_depth_records(j) != 0)
			abort();
	}
	journal_close(j);
	clear();
	rmdir(dir);
	return 0;
}
