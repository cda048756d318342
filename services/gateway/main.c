/*
 * main.c - fleet-gateway: tracker protocols in, acknowledged after commit.
 *
 * Wiring only: settings, the batcher (database writer and journal), the
 * socket front (Teltonika TCP/UDP, GT06), the HTTP fronts (OsmAnd on the
 * device port; /metrics, /healthz, /readyz on the admin port), and the
 * shutdown sequence.  SIGTERM or SIGINT: stop accepting, answer every frame
 * and request in flight (stored, journaled or refused), drain the batch
 * queue, exit 0.  A second signal exits at once.
 */
#include "batcher.h"
#include "http_front.h"
#include "tcp.h"
#include "../common/config.h"
#include "../common/dbmetrics.h"
#include "../common/httpd.h"
#include "../common/lifecycle.h"
#include "../common/log.h"
#include "../common/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile bool draining = false;

/* Before each report to the database: the journal depth. */
static void
report_gauges(dbmetrics *dm, void *arg)
{
	dbmetrics_gauge(dm, "journal_depth", (double) batcher_journal_depth((batcher *) arg));
}

int
main(int argc, char **argv)
{
	const char *dsn,
			   *bind,
			   *journal_dir,
			   *log_level;
	long		osmand_port,
				teltonika_port,
				gt06_port,
				admin_port,
				journal_mb,
				batch_max,
				batch_wait,
				max_frame,
				max_conns,
				idle_timeout,
				max_body,
				writers,
				dead_letter_after,
				stuck_after,
				webhook_on,
				webhook_queue,
				db_metrics,
				report_interval;
	const cfg_option opts[] = {
		{"dsn", "FLEET_DSN", CFG_STR, &dsn, "dbname=fleet", "libpq connection string or URI (multi-host with target_session_attrs=read-write works)"},
		{"bind", "FLEET_BIND", CFG_STR, &bind, "0.0.0.0", "address to listen on"},
		{"osmand-port", "FLEET_OSMAND_PORT", CFG_INT, &osmand_port, "5055", "OsmAnd / Traccar Client HTTP port (-1 off, 0 any)"},
		{"teltonika-port", "FLEET_TELTONIKA_PORT", CFG_INT, &teltonika_port, "5027", "Teltonika TCP and UDP port"},
		{"gt06-port", "FLEET_GT06_PORT", CFG_INT, &gt06_port, "5023", "GT06 TCP port"},
		{"admin-port", "FLEET_ADMIN_PORT", CFG_INT, &admin_port, "9105", "/metrics, /healthz, /readyz"},
		{"journal-dir", "FLEET_JOURNAL_DIR", CFG_STR, &journal_dir, "./var/gateway-journal", "local journal used while the database is unreachable"},
		{"journal-max-mb", "FLEET_JOURNAL_MAX_MB", CFG_INT, &journal_mb, "256", "journal bound; when full, devices are not acknowledged"},
		{"journal-dead-letter-after", "FLEET_JOURNAL_DEAD_LETTER_AFTER", CFG_INT, &dead_letter_after, "30", "seconds a journaled fix the database refuses (not an outage) is retried before it is moved to dead-letters.jsonl in the journal directory"},
		{"journal-stuck-after", "FLEET_JOURNAL_STUCK_AFTER", CFG_INT, &stuck_after, "60", "seconds without drain progress while connected before /readyz says journal_stuck"},
		{"batch-max", "FLEET_BATCH_MAX", CFG_INT, &batch_max, "2000", "fixes per ingest call"},
		{"batch-wait-ms", "FLEET_BATCH_WAIT_MS", CFG_INT, &batch_wait, "20", "how long a fix may wait for a batch to fill"},
		{"writers", "FLEET_WRITERS", CFG_INT, &writers, "4", "database connections writing batches in parallel (each device always on the same one)"},
		{"max-frame", "FLEET_MAX_FRAME", CFG_INT, &max_frame, "70000", "largest frame buffered, bytes"},
		{"max-conns", "FLEET_MAX_CONNS", CFG_INT, &max_conns, "20000", "device connections at most"},
		{"idle-timeout", "FLEET_IDLE_TIMEOUT", CFG_INT, &idle_timeout, "900", "close device connections idle this many seconds"},
		{"max-body", "FLEET_MAX_BODY", CFG_INT, &max_body, "1048576", "largest HTTP body, bytes (413 above)"},
		{"webhook", "FLEET_WEBHOOK", CFG_INT, &webhook_on, "1", "serve POST /webhook/<provider> on the OsmAnd port (0 off)"},
		{"webhook-queue", "FLEET_WEBHOOK_QUEUE", CFG_INT, &webhook_queue, "256", "webhook calls waiting for the database at most (503 above)"},
		{"db-metrics", "FLEET_DB_METRICS", CFG_INT, &db_metrics, "1", "append fleet.metrics() to /metrics and report journal depth and per-integration calls to the database (0 off)"},
		{"report-interval", "FLEET_REPORT_INTERVAL", CFG_INT, &report_interval, "10", "seconds between reports to fleet.report_service_metrics()"},
		{"log-level", "FLEET_LOG_LEVEL", CFG_STR, &log_level, "info", "debug, info, warn, error"},
	};
	int			nopts = sizeof(opts) / sizeof(opts[0]);
	char		err[256];
	batcher_config bc;
	batcher    *b;
	tcp_config	tc;
	tcp_server *tcp = NULL;
	http_server *dev_http = NULL,
			   *admin_http = NULL;
	http_front	front;
	int			rc = config_parse(opts, nopts, argc, argv,
								  "fleet-gateway: tracker protocols in, acknowledged only after the commit that stored them");

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	log_init("fleet-gateway", log_parse_level(log_level));
	config_log(opts, nopts);

	lifecycle_init();			/* before any thread starts */

	http_front_init();
	bc.dsn = dsn;
	bc.journal_dir = journal_dir;
	bc.journal_max_bytes = (uint64_t) journal_mb << 20;
	bc.max_batch = (int) batch_max;
	bc.max_wait_ms = (int) batch_wait;
	bc.writers = (int) writers;
	bc.dead_letter_after_s = (int) dead_letter_after;
	bc.stuck_after_s = (int) stuck_after;
	b = batcher_start(&bc, err, sizeof(err));
	if (!b)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
		return 1;
	}
	front.b = b;
	front.draining = &draining;
	front.wh = webhook_on ? webhook_start(dsn, (int) webhook_queue) : NULL;
	if (webhook_on && !front.wh)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"webhook worker\"");
		return 1;
	}

	front.dbm = NULL;
	if (db_metrics)
	{
		char		instance[160];

		dbmetrics_instance(instance, sizeof(instance), "gateway", admin_port);
		front.dbm = dbmetrics_start(dsn, "fleet-gateway", instance, (int) report_interval, report_gauges, b);
		if (!front.dbm)
		{
			log_msg(LOG_ERROR, "cannot start", "error=\"database metrics\"");
			return 1;
		}
	}

	tc.bind = bind;
	tc.teltonika_port = (int) teltonika_port;
	tc.gt06_port = (int) gt06_port;
	tc.max_conns = (int) max_conns;
	tc.idle_timeout_s = (int) idle_timeout;
	tc.max_frame = (int) max_frame;
	tc.max_pending = 8;
	tc.dsn = dsn;
	if (teltonika_port >= 0 || gt06_port >= 0)
	{
		tcp = tcp_start(&tc, b, err, sizeof(err));
		if (!tcp)
		{
			log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
			return 1;
		}
	}
	if (osmand_port >= 0)
	{
		dev_http = http_start(bind, (int) osmand_port, (size_t) max_body, (unsigned) max_conns,
							  (unsigned) idle_timeout, http_front_devices, &front, err, sizeof(err));
		if (!dev_http)
		{
			log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
			return 1;
		}
	}
	admin_http = http_start(bind, (int) admin_port, 4096, 64, 30, http_front_admin, &front, err, sizeof(err));
	if (!admin_http)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
		return 1;
	}
	log_msg(LOG_INFO, "listening", "osmand=%d teltonika=%d teltonika_udp=%d gt06=%d admin=%d",
			dev_http ? http_port(dev_http) : -1, tcp ? tcp_port(tcp, "teltonika") : -1,
			tcp ? tcp_port(tcp, "udp") : -1, tcp ? tcp_port(tcp, "gt06") : -1, http_port(admin_http));

	lifecycle_wait();			/* a second signal exits at once */

	log_msg(LOG_INFO, "shutting down: draining", NULL);
	draining = true;
	if (dev_http)
		http_quiesce(dev_http);
	if (tcp)
		tcp_stop(tcp);			/* every device frame in flight answered */
	dbmetrics_stop(front.dbm);	/* a last report while the journal is still there */
	batcher_stop(b);			/* every queued submission answered */
	if (front.wh)
		webhook_stop(front.wh);	/* every queued webhook answered */
	if (dev_http)
		http_stop(dev_http);
	http_stop(admin_http);
	dbmetrics_free(front.dbm);
	log_msg(LOG_INFO, "stopped", NULL);
	return 0;
}
