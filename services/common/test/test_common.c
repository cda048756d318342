/*
 * test_common.c - unit tests of the services' common pieces: the journal
 * (durability, order, torn tails, bounds, segment rotation) and the
 * Prometheus metrics text, and the rendering of fleet.metrics() rows
 * (checked by a strict line parser of the text format, and by promtool
 * when it is installed).
 */
#include "../journal.h"
#include "../metrics.h"
#include "../dbmetrics.h"

#include <math.h>
#include <regex.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...) do { \
	if (cond) passed++; \
	else { failed++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		   fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

/* Append records "rec-<i>" for i in [from, to). */
static int
append_range(journal *j, int from, int to)
{
	char		bufs[64][32];
	const void *recs[64];
	size_t		lens[64];

	while (from < to)
	{
		int			n = 0;

		for (; n < 64 && from < to; n++, from++)
		{
			lens[n] = snprintf(bufs[n], sizeof(bufs[n]), "rec-%d", from);
			recs[n] = bufs[n];
		}
		if (journal_append(j, recs, lens, n) != 0)
			return -1;
	}
	return 0;
}

/* Drain up to max records, checking they are rec-<expect...>; returns count. */
static int
drain_check(journal *j, int expect, int max, int *bad)
{
	const void *recs[256];
	size_t		lens[256];
	int			total = 0;

	while (total < max)
	{
		int			want = max - total > 256 ? 256 : max - total;
		int			n = journal_peek(j, want, recs, lens);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
		{
			char		exp[32];
			size_t		el = snprintf(exp, sizeof(exp), "rec-%d", expect + total + i);

			if (el != lens[i] || memcmp(exp, recs[i], el) != 0)
				(*bad)++;
		}
		journal_consume(j);
		total += n;
	}
	return total;
}

static void
test_journal(void)
{
	char		dir[] = "/tmp/fleet-journal-XXXXXX";
	char		err[256],
				path[512];
	journal    *j;
	int			bad = 0;

	if (!mkdtemp(dir))
	{
		CHECK(0, "mkdtemp");
		return;
	}
	j = journal_open(dir, 64 << 20, err, sizeof(err));
	CHECK(j != NULL, "open: %s", err);
	CHECK(append_range(j, 0, 1000) == 0, "append 1000");
	CHECK(journal_depth_records(j) == 1000, "depth 1000, got %llu", (unsigned long long) journal_depth_records(j));
	journal_close(j);

	/* reopen: everything is still there, in order */
	j = journal_open(dir, 64 << 20, err, sizeof(err));
	CHECK(journal_depth_records(j) == 1000, "depth after reopen");
	CHECK(drain_check(j, 0, 300, &bad) == 300 && bad == 0, "drained 300 in order");
	journal_close(j);

	/* a drained position survives reopen; peek without consume re-delivers */
	j = journal_open(dir, 64 << 20, err, sizeof(err));
	CHECK(journal_depth_records(j) == 700, "700 left after reopen, got %llu", (unsigned long long) journal_depth_records(j));
	{
		const void *recs[10];
		size_t		lens[10];

		CHECK(journal_peek(j, 10, recs, lens) == 10 && memcmp(recs[0], "rec-300", 7) == 0, "peek from 300");
	}
	journal_close(j);			/* "crash" before consume */
	j = journal_open(dir, 64 << 20, err, sizeof(err));
	bad = 0;
	CHECK(drain_check(j, 300, 700, &bad) == 700 && bad == 0, "un-consumed peek re-delivered, all 700 in order");
	CHECK(journal_depth_records(j) == 0 && journal_depth_bytes(j) == 0, "empty after drain");

	/* a torn tail (crash mid-append) is dropped on open, earlier records kept */
	CHECK(append_range(j, 0, 10) == 0, "append 10");
	journal_close(j);
	{
		int			found = 0;

		for (int n = 1; n < 20 && !found; n++)
		{
			int			fd;

			snprintf(path, sizeof(path), "%s/seg-%016d.jnl", dir, n);
			fd = open(path, O_WRONLY | O_APPEND);
			if (fd >= 0)
			{
				off_t		end = lseek(fd, 0, SEEK_END);

				if (end > 0)
				{
					(void) !write(fd, "\x40\x00\x00\x00garbage", 11);
					found = 1;
				}
				close(fd);
			}
		}
		CHECK(found, "found the write segment to tear");
	}
	j = journal_open(dir, 64 << 20, err, sizeof(err));
	CHECK(journal_depth_records(j) == 10, "torn tail dropped, 10 kept, got %llu", (unsigned long long) journal_depth_records(j));
	CHECK(journal_truncated_bytes(j) == 11, "11 torn bytes truncated");
	bad = 0;
	CHECK(drain_check(j, 0, 10, &bad) == 10 && bad == 0, "10 records intact");
	journal_close(j);

	/* bounded: a full journal refuses (backpressure) */
	j = journal_open(dir, 1000, err, sizeof(err));
	{
		int			rc = append_range(j, 0, 200);

		CHECK(rc == -1, "full journal refuses appends");
		CHECK(journal_depth_bytes(j) <= 1000, "depth within bound");
	}
	bad = 0;
	drain_check(j, 0, 1000, &bad);
	CHECK(bad == 0, "what was accepted drains in order");
	CHECK(append_range(j, 0, 5) == 0, "accepts again once drained");
	drain_check(j, 0, 5, &bad);
	journal_close(j);

	/* segment rotation: 40 MB across segments, drained segments removed */
	j = journal_open(dir, 256 << 20, err, sizeof(err));
	{
		static char big[1 << 20];
		const void *recs[1] = {big};
		size_t		lens[1] = {sizeof(big)};
		int			ok = 1,
					segs = 0;
		const void *out[4];
		size_t		olens[4];
		int			n,
					got = 0;

		for (int i = 0; i < 40 && ok; i++)
		{
			memset(big, 'a' + i % 26, sizeof(big));
			ok = journal_append(j, recs, lens, 1) == 0;
		}
		CHECK(ok, "40 x 1 MB appended");
		while ((n = journal_peek(j, 4, out, olens)) > 0)
		{
			for (int i = 0; i < n; i++)
				if (olens[i] != sizeof(big) || ((const char *) out[i])[100] != 'a' + (got + i) % 26)
					ok = 0;
			got += n;
			journal_consume(j);
		}
		CHECK(ok && got == 40, "40 big records back in order (%d)", got);
		for (int n2 = 1; n2 < 100; n2++)
		{
			snprintf(path, sizeof(path), "%s/seg-%016d.jnl", dir, n2);
			if (access(path, F_OK) == 0)
				segs++;
		}
		CHECK(segs == 1, "drained segments removed (%d left)", segs);
	}
	journal_close(j);
	{
		char		cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void) !system(cmd);
	}
}

/* Write the "drained" file of dir. */
static void
write_drained(const char *dir, const char *text)
{
	char		path[512];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/drained", dir);
	f = fopen(path, "w");
	if (f)
	{
		fputs(text, f);
		fclose(f);
	}
}

/*
 * A damaged drained position (past a segment's end, inside a record, in a
 * segment that does not exist) never makes the depth wrap nor hides a
 * record: draining restarts at the segment's (or the journal's) start.
 */
static void
test_journal_bad_position(void)
{
	static const char *bad[] = {"1 999999\n", "1 5\n", "7 0\n", "1 18446744073709551615\n", "x y\n"};

	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
	{
		char		dir[] = "/tmp/fleet-journal-XXXXXX";
		char		err[256],
					cmd[600];
		journal    *j;
		int			badrec = 0;

		if (!mkdtemp(dir))
		{
			CHECK(0, "mkdtemp");
			return;
		}
		j = journal_open(dir, 1 << 20, err, sizeof(err));
		CHECK(j && append_range(j, 0, 10) == 0, "append 10");
		journal_close(j);
		write_drained(dir, bad[b]);
		j = journal_open(dir, 1 << 20, err, sizeof(err));
		CHECK(j != NULL, "open with drained=%s", bad[b]);
		if (!j)
			continue;
		CHECK(journal_depth_records(j) == 10, "drained=%s: 10 pending, got %llu", bad[b],
			  (unsigned long long) journal_depth_records(j));
		CHECK(journal_depth_bytes(j) < 1000, "drained=%s: depth %llu bytes does not wrap", bad[b],
			  (unsigned long long) journal_depth_bytes(j));
		CHECK(journal_position_was_reset(j) == (b != 4), "drained=%s: reset reported", bad[b]);
		CHECK(append_range(j, 10, 12) == 0, "drained=%s: appends still fit", bad[b]);
		CHECK(drain_check(j, 0, 100, &badrec) == 12 && badrec == 0, "drained=%s: all 12 in order", bad[b]);
		CHECK(journal_depth_records(j) == 0 && journal_depth_bytes(j) == 0, "drained=%s: empty after", bad[b]);
		journal_close(j);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void) !system(cmd);
	}

	/* a valid position at a record boundary is kept */
	{
		char		dir[] = "/tmp/fleet-journal-XXXXXX";
		char		err[256],
					cmd[600];
		journal    *j;
		int			badrec = 0;

		if (!mkdtemp(dir))
			return;
		j = journal_open(dir, 1 << 20, err, sizeof(err));
		CHECK(j && append_range(j, 0, 10) == 0, "append 10");
		CHECK(drain_check(j, 0, 3, &badrec) == 3, "drain 3");
		journal_close(j);
		j = journal_open(dir, 1 << 20, err, sizeof(err));
		CHECK(j && !journal_position_was_reset(j) && journal_depth_records(j) == 7, "valid position kept");
		CHECK(j && drain_check(j, 3, 100, &badrec) == 7 && badrec == 0, "rest in order");
		journal_close(j);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void) !system(cmd);
	}
}

static void
test_metrics(void)
{
	metric_family *c = metrics_counter("fleet_test_total", "A test counter.");
	metric_family *g = metrics_gauge("fleet_test_depth", "A test gauge.");
	metric_family *h = metrics_histogram("fleet_test_seconds", "A test histogram.",
										 metrics_latency_bounds, metrics_latency_nbounds);
	char		esc[64];
	size_t		len;
	char	   *text;

	metrics_add(c, "code=\"200\"", 2);
	metrics_add(c, "code=\"200\"", 1);
	metrics_set(g, NULL, 7);
	metrics_observe(h, "route=\"/x\"", 0.003);
	metrics_observe(h, "route=\"/x\"", 20);
	text = metrics_render(&len);
	CHECK(strstr(text, "# HELP fleet_test_total A test counter.\n# TYPE fleet_test_total counter\n") != NULL, "help/type");
	CHECK(strstr(text, "fleet_test_total{code=\"200\"} 3\n") != NULL, "counter value");
	CHECK(strstr(text, "fleet_test_depth 7\n") != NULL, "gauge without labels");
	CHECK(strstr(text, "fleet_test_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n") != NULL, "bucket");
	CHECK(strstr(text, "fleet_test_seconds_bucket{route=\"/x\",le=\"+Inf\"} 2\n") != NULL, "+Inf bucket");
	CHECK(strstr(text, "fleet_test_seconds_count{route=\"/x\"} 2\n") != NULL, "count");
	CHECK(len > 0 && text[len - 1] == '\n', "ends with newline");
	CHECK(strcmp(metrics_escape("a\"b\\c\nd", esc, sizeof(esc)), "a\\\"b\\\\c\\nd") == 0, "label escaping");
	free(text);
}

/*
 * A strict check of Prometheus text format 0.0.4 as dbmetrics renders it:
 * every line is a HELP, a TYPE (counter or gauge, once per family, before
 * its samples) or a sample name{label="value",...} value with valid names,
 * escapes and a float; families are contiguous.  Returns the number of
 * bad lines (printed).
 */
static int
strict_parse(const char *text)
{
	regex_t		help,
				type,
				sample;
	char		families[64][128];
	int			nfam = 0,
				bad = 0;
	char		current[128] = "";
	const char *p = text;

	regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* ([^\\\\\n]|\\\\\\\\|\\\\n)*$", REG_EXTENDED | REG_NOSUB);
	regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$", REG_EXTENDED);
	regcomp(&sample,
			"^([a-zA-Z_:][a-zA-Z0-9_:]*)"
			"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\\\\\|\\\\\"|\\\\n)*\""
			"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\\\\\|\\\\\"|\\\\n)*\")*\\})?"
			" (NaN|[+-]Inf|[-+]?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?)$", REG_EXTENDED);
	while (*p)
	{
		const char *nl = strchr(p, '\n');
		char		line[2048];
		regmatch_t	m[2];
		size_t		n;

		if (!nl)
		{
			fprintf(stderr, "no final newline\n");
			bad++;
			break;
		}
		n = (size_t) (nl - p) < sizeof(line) - 1 ? (size_t) (nl - p) : sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		if (strncmp(line, "# HELP ", 7) == 0)
		{
			if (regexec(&help, line, 0, NULL, 0) != 0)
				bad++, fprintf(stderr, "bad HELP: %s\n", line);
		}
		else if (regexec(&type, line, 2, m, 0) == 0)
		{
			char		name[128];

			snprintf(name, sizeof(name), "%.*s", (int) (m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			for (int i = 0; i < nfam; i++)
				if (strcmp(families[i], name) == 0)
					bad++, fprintf(stderr, "family again: %s\n", name);
			if (nfam < 64)
				snprintf(families[nfam++], sizeof(families[0]), "%s", name);
			snprintf(current, sizeof(current), "%s", name);
		}
		else if (regexec(&sample, line, 2, m, 0) == 0)
		{
			if ((int) strlen(current) != m[1].rm_eo - m[1].rm_so || strncmp(current, line, strlen(current)) != 0)
				bad++, fprintf(stderr, "sample outside its family: %s\n", line);
		}
		else
			bad++, fprintf(stderr, "bad line: %s\n", line);
		p = nl + 1;
	}
	regfree(&help);
	regfree(&type);
	regfree(&sample);
	return bad;
}

static void
test_dbmetrics_render(void)
{
	const dbmetrics_row rows[] = {
		{"fleet_event_backlog", "{\"class\": \"financial\"}", 3, "gauge", "Events \\ waiting\nnow"},
		{"fleet_event_backlog", "{\"class\": \"audit\"}", 0, "gauge", "Events \\ waiting\nnow"},
		{"fleet_view_age_seconds", "{\"view\": \"fleet.a\\\"b\", \"workflow\": \"x\\\\y\\nz\"}", INFINITY, "gauge", "Age"},
		{"fleet_pipeline_events_total", "{}", 12345678901.0, "counter", "Consumed"},
		{"fleet_pipeline_lag_seconds", "{\"percentile\": \"50\"}", NAN, "gauge", "Lag"},
		{"bad-name", "{}", 1, "gauge", "x"},
		{"fleet_bad_type", "{}", 1, "histogram", "x"},
		{"fleet_bad_labels", "{\"__reserved\": \"x\"}", 1, "gauge", "x"},
		{"fleet_bad_labels", "{\"k\": 1}", 1, "gauge", "x"},
		{"fleet_bad_labels", "[1]", 1, "gauge", "x"},
		{"fleet_bad_labels", "{\"k\": \"v\"}", 2, "gauge", "x"},
		{"fleet_event_backlog", "{\"class\": \"late\"}", 1, "gauge", "again, not contiguous"},
	};
	char	   *text = strdup("fleet_gateway_up 1\n");
	size_t		len = strlen(text);
	int			skipped = -1;
	bool		ok = dbmetrics_render(rows, (int) (sizeof(rows) / sizeof(rows[0])), &text, &len, &skipped);

	CHECK(ok, "render");
	CHECK(strncmp(text, "fleet_gateway_up 1\n# HELP fleet_event_backlog Events \\\\ waiting\\nnow\n"
				  "# TYPE fleet_event_backlog gauge\n", 97) == 0, "appended after the service's text, help escaped: %s", text);
	CHECK(strstr(text, "fleet_event_backlog{class=\"financial\"} 3\nfleet_event_backlog{class=\"audit\"} 0\n") != NULL, "samples");
	CHECK(strstr(text, "fleet_view_age_seconds{view=\"fleet.a\\\"b\",workflow=\"x\\\\y\\nz\"} +Inf\n") != NULL,
		  "label values escaped, labels sorted, +Inf");
	CHECK(strstr(text, "fleet_pipeline_events_total 12345678901\n") != NULL, "no braces for no labels, exact integer");
	CHECK(strstr(text, "fleet_pipeline_lag_seconds{percentile=\"50\"} NaN\n") != NULL, "NaN");
	CHECK(strstr(text, "bad-name") == NULL && strstr(text, "fleet_bad_type") == NULL, "invalid names and types left out");
	CHECK(strstr(text, "__reserved") == NULL && strstr(text, "fleet_bad_labels{k=\"v\"} 2\n") != NULL,
		  "invalid label sets left out, the valid one kept");
	CHECK(strstr(text, "late") == NULL, "a family that is not contiguous is left out");
	CHECK(skipped == 6, "skipped %d", skipped);
	CHECK(len == strlen(text), "length");
	CHECK(strict_parse(text + strlen("fleet_gateway_up 1\n")) == 0, "strict parser accepts the output");
	CHECK(strict_parse("fleet_x{a=\"b\"} 1\n") == 1, "strict parser refuses a sample without TYPE");
	CHECK(strict_parse("# TYPE fleet_x gauge\nfleet_x{a=b} 1\n") == 1, "strict parser refuses an unquoted value");
	CHECK(strict_parse("# TYPE fleet_x gauge\nfleet_x 1,5\n") == 1, "strict parser refuses a bad number");
	if (access("/usr/bin/promtool", X_OK) == 0)
	{
		char		path[] = "/tmp/fleet-dbmetrics-XXXXXX";
		int			fd = mkstemp(path);
		char		cmd[256];

		if (fd >= 0 && write(fd, text + strlen("fleet_gateway_up 1\n"), strlen(text) - strlen("fleet_gateway_up 1\n")) > 0)
		{
			close(fd);
			snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > /dev/null", path);
			CHECK(system(cmd) == 0, "promtool check metrics accepts the output");
		}
		unlink(path);
	}
	free(text);
}

/* Without a database the scrape still answers: fleet_db_metrics_up 0. */
static void
test_dbmetrics_unreachable(void)
{
	dbmetrics  *dm = dbmetrics_start("host=/nonexistent/fleet-test port=1 connect_timeout=1", "fleet-test", "t1", 0, NULL, NULL);
	char	   *text = strdup("fleet_test_own 1\n");
	size_t		len = strlen(text);

	CHECK(dm != NULL, "start without a database");
	CHECK(!dbmetrics_append(dm, &text, &len), "append reports the database did not answer");
	CHECK(strncmp(text, "fleet_test_own 1\n", 17) == 0, "the service's own text is kept");
	CHECK(strstr(text, "\nfleet_db_metrics_up 0\n") != NULL, "fleet_db_metrics_up 0: %s", text);
	CHECK(strict_parse(text + 17) == 0, "still valid text");
	CHECK(!dbmetrics_report(dm), "a report without a database fails");
	dbmetrics_stop(dm);
	dbmetrics_free(dm);
	free(text);
}

int
main(void)
{
	test_journal();
	test_journal_bad_position();
	test_metrics();
	test_dbmetrics_render();
	test_dbmetrics_unreachable();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
