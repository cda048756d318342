/*
 * journal.c - append-only, fsync'd, bounded local journal (see journal.h).
 */
#define _GNU_SOURCE
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SEGMENT_BYTES (16u << 20)
#define MAX_RECORD (16u << 20)
#define MAX_SEGMENTS 4096

struct journal
{
	pthread_mutex_t mu;
	char	   *dir;
	uint64_t	max_bytes;
	int			dirfd;
	/* segments present, ascending */
	uint64_t	segs[MAX_SEGMENTS];
	uint64_t	seg_size[MAX_SEGMENTS];
	int			nsegs;
	int			wfd;			/* write fd on the last segment */
	/* drained position */
	uint64_t	rseg,
				roff;
	/* position after the last peek */
	uint64_t	pseg,
				poff;
	uint64_t	precs;
	uint64_t	depth_records;
	uint64_t	truncated;
	bool		position_reset; /* the drained position was invalid at open */
	unsigned char *peekbuf;
	size_t		peekcap;
};

/* Path of segment n. */
static void
seg_path(journal *j, uint64_t n, char *out, size_t len)
{
	snprintf(out, len, "%s/seg-%016" PRIu64 ".jnl", j->dir, n);
}

/* Full read; returns bytes read (short only at EOF), -1 on error. */
static ssize_t
read_full(int fd, void *buf, size_t len, off_t off)
{
	size_t		got = 0;

	while (got < len)
	{
		ssize_t		r = pread(fd, (char *) buf + got, len - got, off + got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

/* Full write at the end of fd. */
static int
write_full(int fd, const void *buf, size_t len)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		w = write(fd, (const char *) buf + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		done += w;
	}
	return 0;
}

/*
 * Walk a segment from off, counting valid records; returns the offset just
 * past the last valid record.
 */
static uint64_t
scan_segment(int fd, uint64_t off, uint64_t size, uint64_t *nrec)
{
	unsigned char hdr[8];
	unsigned char *buf = NULL;
	size_t		cap = 0;

	while (off + 8 <= size)
	{
		uint32_t	len,
					crc;

		if (read_full(fd, hdr, 8, off) != 8)
			break;
		memcpy(&len, hdr, 4);
		memcpy(&crc, hdr + 4, 4);
		if (len == 0 || len > MAX_RECORD || off + 8 + len > size)
			break;
		if (len > cap)
		{
			free(buf);
			cap = len;
			buf = malloc(cap);
			if (!buf)
				break;
		}
		if (read_full(fd, buf, len, off + 8) != (ssize_t) len)
			break;
		if ((uint32_t) crc32(0, buf, len) != crc)
			break;
		off += 8 + len;
		(*nrec)++;
	}
	free(buf);
	return off;
}

/* Persist the drained position atomically. */
static int
save_position(journal *j)
{
	char		tmp[4096],
				path[4096],
				line[64];
	int			fd,
				n;

	snprintf(tmp, sizeof(tmp), "%s/drained.tmp", j->dir);
	snprintf(path, sizeof(path), "%s/drained", j->dir);
	n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", j->rseg, j->roff);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write_full(fd, line, n) < 0 || fsync(fd) < 0)
	{
		close(fd);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0 || fsync(j->dirfd) < 0)
		return -1;
	return 0;
}

/* Open (creating) segment n for appending and make it the write segment. */
static int
open_write_segment(journal *j, uint64_t n)
{
	char		path[4096];

	seg_path(j, n, path, sizeof(path));
	if (j->wfd >= 0)
		close(j->wfd);
	j->wfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->wfd < 0)
		return -1;
	if (j->nsegs == 0 || j->segs[j->nsegs - 1] != n)
	{
		if (j->nsegs == MAX_SEGMENTS)
			return -1;
		j->segs[j->nsegs] = n;
		j->seg_size[j->nsegs] = 0;
		j->nsegs++;
		if (fsync(j->dirfd) < 0)
			return -1;
	}
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

journal *
journal_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
	journal    *j = calloc(1, sizeof(*j));
	DIR		   *d;
	struct dirent *de;
	char		path[4096];
	FILE	   *pf;
	uint64_t   *seg_recs = NULL;	/* valid records per segment */

	if (!j)
		return NULL;
	pthread_mutex_init(&j->mu, NULL);
	j->dir = strdup(dir);
	j->max_bytes = max_bytes;
	j->wfd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		goto fail;
	j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0 || !(d = opendir(dir)))
		goto fail;
	while ((de = readdir(d)) != NULL)
	{
		uint64_t	n;
		char		tail[8];

		char		canon[64];

		/* only canonical names: "seg-1.jnl" must not alias segment 1 */
		if (sscanf(de->d_name, "seg-%16" SCNu64 ".%3s", &n, tail) == 2 &&
			strcmp(tail, "jnl") == 0 && j->nsegs < MAX_SEGMENTS &&
			snprintf(canon, sizeof(canon), "seg-%016" PRIu64 ".jnl", n) > 0 &&
			strcmp(canon, de->d_name) == 0)
			j->segs[j->nsegs++] = n;
	}
	closedir(d);
	qsort(j->segs, j->nsegs, sizeof(uint64_t), cmp_u64);
	seg_recs = calloc(j->nsegs + 1, sizeof(uint64_t));
	if (!seg_recs)
		goto fail;

	snprintf(path, sizeof(path), "%s/drained", dir);
	if ((pf = fopen(path, "r")) != NULL)
	{
		if (fscanf(pf, "%" SCNu64 " %" SCNu64, &j->rseg, &j->roff) != 2)
			j->rseg = j->roff = 0;
		fclose(pf);
	}
	else if (j->nsegs > 0)
		j->rseg = j->segs[0], j->roff = 0;

	/* Validate every segment, truncating a torn tail. */
	for (int i = 0; i < j->nsegs; i++)
	{
		struct stat st;
		int			fd;
		uint64_t	end;

		seg_path(j, j->segs[i], path, sizeof(path));
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			goto fail;
		seg_recs[i] = 0;
		end = scan_segment(fd, 0, st.st_size, &seg_recs[i]);
		if (end < (uint64_t) st.st_size)
		{
			j->truncated += st.st_size - end;
			if (ftruncate(fd, end) < 0 || fsync(fd) < 0)
			{
				close(fd);
				goto fail;
			}
		}
		j->seg_size[i] = end;
		close(fd);
	}

	/*
	 * The drained position must name a present segment and a record
	 * boundary inside it.  Anything else (a damaged or foreign "drained"
	 * file) would make the depth wrap or hide records from the reader:
	 * draining restarts at the earliest place that is surely not past an
	 * undrained record (the database deduplicates what is sent twice).
	 */
	if (j->nsegs > 0)
	{
		int			ri = -1;
		uint64_t	before = 0;

		if (j->rseg < j->segs[0])
			j->rseg = j->segs[0], j->roff = 0;
		for (int i = 0; i < j->nsegs; i++)
			if (j->segs[i] == j->rseg)
				ri = i;
		if (ri < 0)
		{
			j->position_reset = true;
			ri = 0;
			j->rseg = j->segs[0], j->roff = 0;
		}
		else if (j->roff > 0)
		{
			int			fd;
			uint64_t	reached = 0;

			seg_path(j, j->rseg, path, sizeof(path));
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				goto fail;
			if (j->roff <= j->seg_size[ri])
				reached = scan_segment(fd, 0, j->roff, &before);
			close(fd);
			if (j->roff > j->seg_size[ri] || reached != j->roff)
			{
				j->position_reset = true;
				j->roff = 0;
				before = 0;
			}
		}
		for (int i = ri; i < j->nsegs; i++)
			j->depth_records += seg_recs[i];
		j->depth_records -= before;
	}
	if (j->nsegs == 0)
	{
		j->rseg = 1, j->roff = 0;
		if (open_write_segment(j, 1) < 0)
			goto fail;
	}
	else if (open_write_segment(j, j->segs[j->nsegs - 1]) < 0)
		goto fail;
	j->pseg = j->rseg;
	j->poff = j->roff;
	free(seg_recs);
	return j;

fail:
	snprintf(err, errlen, "journal %s: %s", dir, strerror(errno));
	free(seg_recs);
	journal_close(j);
	return NULL;
}

void
journal_close(journal *j)
{
	if (!j)
		return;
	if (j->wfd >= 0)
		close(j->wfd);
	if (j->dirfd > 0)
		close(j->dirfd);
	free(j->peekbuf);
	free(j->dir);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

/* Undrained bytes; caller holds mu. */
static uint64_t
depth_locked(journal *j)
{
	uint64_t	total = 0;

	for (int i = 0; i < j->nsegs; i++)
	{
		if (j->segs[i] < j->rseg)
			continue;
		if (j->segs[i] == j->rseg && j->roff >= j->seg_size[i])
			continue;
		total += j->seg_size[i] - (j->segs[i] == j->rseg ? j->roff : 0);
	}
	return total;
}

int
journal_append(journal *j, const void *const *recs, const size_t *lens, int n)
{
	size_t		total = 0;
	unsigned char *buf,
			   *p;
	int			rc = 0;

	for (int i = 0; i < n; i++)
	{
		if (lens[i] == 0 || lens[i] > MAX_RECORD)
			return -2;
		total += 8 + lens[i];
	}
	pthread_mutex_lock(&j->mu);
	if (depth_locked(j) + total > j->max_bytes)
	{
		pthread_mutex_unlock(&j->mu);
		return -1;
	}
	if (j->seg_size[j->nsegs - 1] + total > SEGMENT_BYTES && j->seg_size[j->nsegs - 1] > 0)
	{
		if (j->nsegs == MAX_SEGMENTS || open_write_segment(j, j->segs[j->nsegs - 1] + 1) < 0)
		{
			pthread_mutex_unlock(&j->mu);
			return -2;
		}
	}
	buf = malloc(total);
	if (!buf)
	{
		pthread_mutex_unlock(&j->mu);
		return -2;
	}
	p = buf;
	for (int i = 0; i < n; i++)
	{
		uint32_t	len = lens[i],
					crc = crc32(0, recs[i], lens[i]);

		memcpy(p, &len, 4);
		memcpy(p + 4, &crc, 4);
		memcpy(p + 8, recs[i], lens[i]);
		p += 8 + lens[i];
	}
	if (write_full(j->wfd, buf, total) < 0 || fdatasync(j->wfd) < 0)
	{
		/* drop whatever part was written: it is not acknowledged */
		if (ftruncate(j->wfd, j->seg_size[j->nsegs - 1]) < 0)
			(void) 0;
		rc = -2;
	}
	else
	{
		j->seg_size[j->nsegs - 1] += total;
		j->depth_records += n;
	}
	free(buf);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int
journal_peek(journal *j, int max, const void **recs, size_t *lens)
{
	int			count = 0;
	size_t		used = 0;
	uint64_t	seg = j->rseg,
				off = j->roff;
	size_t		offsets[1024];

	pthread_mutex_lock(&j->mu);
	if (max > 1024)
		max = 1024;
	for (int i = 0; i < j->nsegs && count < max; i++)
	{
		char		path[4096];
		int			fd;

		if (j->segs[i] < seg)
			continue;
		if (j->segs[i] > seg)
			seg = j->segs[i], off = 0;
		seg_path(j, seg, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
		{
			pthread_mutex_unlock(&j->mu);
			return -2;
		}
		while (count < max && off + 8 <= j->seg_size[i])
		{
			unsigned char hdr[8];
			uint32_t	len;

			if (read_full(fd, hdr, 8, off) != 8)
				break;
			memcpy(&len, hdr, 4);
			if (len == 0 || len > MAX_RECORD || off + 8 + len > j->seg_size[i])
				break;			/* validated at open: changed behind our back */
			if (used + len > j->peekcap)
			{
				size_t		cap = (used + len) * 2 + 4096;
				unsigned char *nb = realloc(j->peekbuf, cap);

				if (!nb)
					break;
				j->peekbuf = nb;
				j->peekcap = cap;
			}
			if (read_full(fd, j->peekbuf + used, len, off + 8) != (ssize_t) len)
				break;
			offsets[count] = used;
			lens[count] = len;
			used += len;
			off += 8 + len;
			count++;
		}
		close(fd);
		if (off < j->seg_size[i])
			break;				/* stopped inside this segment */
	}
	for (int i = 0; i < count; i++)
		recs[i] = j->peekbuf + offsets[i];
	j->pseg = seg;
	j->poff = off;
	j->precs = count;
	pthread_mutex_unlock(&j->mu);
	return count;
}

int
journal_consume(journal *j)
{
	int			rc;

	pthread_mutex_lock(&j->mu);
	if (j->precs == 0)
	{
		pthread_mutex_unlock(&j->mu);
		return 0;
	}
	j->rseg = j->pseg;
	j->roff = j->poff;
	j->depth_records -= j->precs;
	j->precs = 0;
	rc = save_position(j);
	/* delete fully drained segments other than the write segment */
	while (rc == 0 && j->nsegs > 1 && j->segs[0] < j->rseg)
	{
		char		path[4096];

		seg_path(j, j->segs[0], path, sizeof(path));
		unlink(path);
		memmove(j->segs, j->segs + 1, sizeof(uint64_t) * (j->nsegs - 1));
		memmove(j->seg_size, j->seg_size + 1, sizeof(uint64_t) * (j->nsegs - 1));
		j->nsegs--;
	}
	/* the reader reached the end of the write segment: start a fresh one */
	if (rc == 0 && j->nsegs == 1 && j->rseg == j->segs[0] && j->roff == j->seg_size[0] && j->roff > 0)
	{
		uint64_t	old = j->segs[0];
		char		path[4096];

		j->nsegs = 0;
		if (open_write_segment(j, old + 1) < 0)
			rc = -1;
		else
		{
			j->rseg = old + 1;
			j->roff = 0;
			rc = save_position(j);
			seg_path(j, old, path, sizeof(path));
			unlink(path);
		}
	}
	pthread_mutex_unlock(&j->mu);
	return rc < 0 ? -2 : 0;
}

uint64_t
journal_depth_bytes(journal *j)
{
	uint64_t	v;

	pthread_mutex_lock(&j->mu);
	v = depth_locked(j);
	pthread_mutex_unlock(&j->mu);
	return v;
}

uint64_t
journal_depth_records(journal *j)
{
	uint64_t	v;

	pthread_mutex_lock(&j->mu);
	v = j->depth_records;
	pthread_mutex_unlock(&j->mu);
	return v;
}

uint64_t
journal_truncated_bytes(journal *j)
{
	return j->truncated;
}

bool
journal_position_was_reset(journal *j)
{
	return j->position_reset;
}
