/*
 * main.c - fleet-sync: the HTTP service driver apps sync through.
 *
 * Wiring only: settings, the API (api.c: routes, authentication, database
 * workers) on the API port, /metrics, /healthz and /readyz on the admin
 * port, and the shutdown sequence.  SIGTERM or SIGINT: stop accepting
 * connections, refuse new requests on open ones (503), answer every
 * request already queued, exit 0.  A second signal exits at once.
 */
#include "api.h"
#include "../common/config.h"
#include "../common/httpd.h"
#include "../common/lifecycle.h"
#include "../common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	const char *dsn,
			   *bind,
			   *log_level;
	long		port,
				admin_port,
				workers,
				queue_max,
				max_body,
				max_mutations,
				pull_default,
				pull_max,
				rate,
				burst,
				db_metrics,
				report_interval,
				max_conns,
				idle_timeout;
	const cfg_option opts[] = {
		{"dsn", "FLEET_DSN", CFG_STR, &dsn, "dbname=fleet", "libpq connection string or URI of a login role in fleet_app (multi-host with target_session_attrs=read-write works)"},
		{"bind", "FLEET_BIND", CFG_STR, &bind, "0.0.0.0", "address to listen on"},
		{"port", "FLEET_SYNC_PORT", CFG_INT, &port, "8088", "API port (0 any)"},
		{"admin-port", "FLEET_ADMIN_PORT", CFG_INT, &admin_port, "9106", "/metrics, /healthz, /readyz (0 any)"},
		{"workers", "FLEET_SYNC_WORKERS", CFG_INT, &workers, "4", "database connections serving requests"},
		{"queue-max", "FLEET_SYNC_QUEUE_MAX", CFG_INT, &queue_max, "256", "requests waiting for a database connection at most (503 above)"},
		{"max-body", "FLEET_MAX_BODY", CFG_INT, &max_body, "2097152", "largest request body, bytes (413 above)"},
		{"max-mutations", "FLEET_SYNC_MAX_MUTATIONS", CFG_INT, &max_mutations, "1000", "mutations per push at most (413 above; keep <= fleet.sync_setting.max_batch)"},
		{"pull-default", "FLEET_SYNC_PULL_DEFAULT", CFG_INT, &pull_default, "500", "changes per pull page when the app does not say"},
		{"pull-max", "FLEET_SYNC_PULL_MAX", CFG_INT, &pull_max, "5000", "changes per pull page at most (400 above)"},
		{"rate", "FLEET_SYNC_RATE", CFG_INT, &rate, "20", "requests per second per token (0 off); 429 above"},
		{"burst", "FLEET_SYNC_BURST", CFG_INT, &burst, "40", "requests a token may send at once"},
		{"max-conns", "FLEET_MAX_CONNS", CFG_INT, &max_conns, "2000", "client connections at most"},
		{"idle-timeout", "FLEET_IDLE_TIMEOUT", CFG_INT, &idle_timeout, "60", "close client connections idle this many seconds"},
		{"db-metrics", "FLEET_DB_METRICS", CFG_INT, &db_metrics, "1", "append fleet.metrics() to /metrics and report to fleet.report_service_metrics() (0 off)"},
		{"report-interval", "FLEET_REPORT_INTERVAL", CFG_INT, &report_interval, "10", "seconds between reports to the database"},
		{"log-level", "FLEET_LOG_LEVEL", CFG_STR, &log_level, "info", "debug, info, warn, error"},
	};
	int			nopts = sizeof(opts) / sizeof(opts[0]);
	char		err[256];
	sync_config cfg;
	sync_api   *api;
	http_server *http,
			   *admin;
	int			rc = config_parse(opts, nopts, argc, argv,
								  "fleet-sync: driver apps push and pull offline work over HTTP");

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	log_init("fleet-sync", log_parse_level(log_level));
	config_log(opts, nopts);
	if (workers < 1 || workers > 256 || queue_max < 1 || max_mutations < 1 || pull_default < 1 ||
		pull_max < pull_default || max_body < 1024 || burst < 1 || rate < 0)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"settings out of range (see --help)\"");
		return 2;
	}

	lifecycle_init();			/* before any thread starts */

	cfg.dsn = dsn;
	cfg.workers = (int) workers;
	cfg.queue_max = (int) queue_max;
	cfg.max_mutations = (int) max_mutations;
	cfg.pull_default = (int) pull_default;
	cfg.pull_max = (int) pull_max;
	cfg.rate = (double) rate;
	cfg.burst = (double) burst;
	cfg.dbm = NULL;
	if (db_metrics)
	{
		char		instance[160];

		dbmetrics_instance(instance, sizeof(instance), "sync", admin_port);
		cfg.dbm = dbmetrics_start(dsn, "fleet-sync", instance, (int) report_interval, NULL, NULL);
		if (!cfg.dbm)
			log_msg(LOG_WARN, "database metrics off", "error=\"could not start the reporter\"");
	}
	api = sync_api_start(&cfg, err, sizeof(err));
	if (!api)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
		return 1;
	}
	http = http_start(bind, (int) port, (size_t) max_body, (unsigned) max_conns, (unsigned) idle_timeout,
					  sync_api_handle, api, err, sizeof(err));
	if (!http)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
		return 1;
	}
	admin = http_start(bind, (int) admin_port, 4096, 64, 30, sync_api_admin, api, err, sizeof(err));
	if (!admin)
	{
		log_msg(LOG_ERROR, "cannot start", "error=\"%s\"", err);
		return 1;
	}
	log_msg(LOG_INFO, "listening", "port=%d admin=%d", http_port(http), http_port(admin));

	lifecycle_wait();			/* a second signal exits at once */

	log_msg(LOG_INFO, "shutting down: draining", NULL);
	http_quiesce(http);			/* no new connections */
	sync_api_drain(api);		/* new requests refused; every queued one answered */
	http_stop(http);
	http_stop(admin);
	sync_api_free(api);
	if (cfg.dbm)
	{
		dbmetrics_stop(cfg.dbm);
		dbmetrics_free(cfg.dbm);
	}
	log_msg(LOG_INFO, "stopped", NULL);
	return 0;
}
