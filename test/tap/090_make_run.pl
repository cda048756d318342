# make run as a living fleet: scripts/run.sh from nothing (a fresh FLEET_VAR)
# reaches a state where data has flowed through every component -- tracker
# fixes over Teltonika and OsmAnd through the gateway into fleet.position,
# driver apps' offline writes through fleet-sync (HTTP, bearer tokens) into
# fleet.sync_push, the dispatcher's
# reassignments (and the conflicts they cause), the provider's webhooks and its retry storm (duplicates),
# the event pipeline, the views worker, the gateway's reports and the
# database metrics on its /metrics (valid Prometheus text) -- prints its
# summary, and stops everything on SIGTERM.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $repo = $ENV{FLEET_REPO} or plan skip_all => 'FLEET_REPO not set';
my $var = PostgreSQL::Test::Utils::tempdir('make_run');
my $t_start = time;
my ($out, $err) = ('', '');
my $run = IPC::Run::start(
	[ "$repo/scripts/run.sh" ],
	'<', \undef, '>', \$out, '2>', \$err,
	init => sub {
		$ENV{FLEET_VAR} = $var;
		$ENV{FLEET_RUN_SECONDS} = 300;	# a bound; the test stops it earlier with SIGTERM
		$ENV{FLEET_VEHICLES} = 24;
		$ENV{FLEET_SPEED} = 240;
		$ENV{FLEET_SUMMARY_EVERY} = 2;
		$ENV{FLEET_PORT} = PostgreSQL::Test::Cluster::get_free_port();
	});

# wait (generously: the machine is shared) for the intro with the psql line
my $deadline = time + 180;
while (time < $deadline && $out !~ /psql:\s+psql -h (\S+) -p (\d+)/)
{
	$run->pump_nb;
	sleep 0.2;
}
my ($sock, $port) = $out =~ /psql:\s+psql -h (\S+) -p (\d+)/;
ok(defined $port, 'run.sh prints the psql line') or diag("stdout: $out\nstderr: $err");
my ($admin) = $out =~ m{metrics http://localhost:(\d+)/metrics};
my ($osmand) = $out =~ m{OsmAnd http://localhost:(\d+)/};
ok(defined $admin, 'and the gateway metrics address');
my ($sync_admin) = $out =~ m{sync:\s+http://localhost:\d+/v1/\s+metrics http://localhost:(\d+)/metrics};
ok(defined $sync_admin, 'and the sync service metrics address');

sub sql
{
	my ($q) = @_;
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-h', $sock, '-p', $port, '-U', 'postgres', '-d', 'fleet', '-c', $q ],
		'>', \$o, '2>', \$e);
	chomp $o;
	return $o;
}

# Every component, as one row of flags; poll until all are set.
my $check = q{
SELECT (SELECT count(*) > 0 FROM fleet.position p JOIN fleet.device_route r ON r.device_id = p.device_id AND r.protocol = 'teltonika') AS teltonika,
       (SELECT count(*) > 0 FROM fleet.position p JOIN fleet.device_route r ON r.device_id = p.device_id AND r.protocol = 'osmand') AS osmand,
       (SELECT count(*) > 0 FROM fleet.vehicle_state WHERE fix_time IS NOT NULL) AS vehicle_state,
       (SELECT count(*) > 0 FROM fleet.sync_mutation) AS driver_sync,
       (SELECT count(*) > 0 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE s.driver_id <> j.driver_id) AS reassigned,
       (SELECT count(*) > 0 FROM fleet.sync_conflict WHERE kind = 'reassigned') AS sync_conflicts,
       (SELECT count(*) > 0 FROM fleet.event_log WHERE source = 'webhook:demo-telematics') AS webhooks,
       (SELECT sum(passes) > 0 FROM fleet.pipeline_stat) AS pipeline,
       (SELECT max(refreshes) > 1 FROM fleet.view_registry) AS views,
       (SELECT count(DISTINCT labels ->> 'integration') >= 3 FROM fleet.service_report
         WHERE service = 'fleet-gateway' AND name = 'integration_calls_total') AS gateway_reports,
       (SELECT count(*) = 5 FROM fleet.workflow_health) AS health
};
my @names = qw(teltonika osmand vehicle_state driver_sync reassigned sync_conflicts webhooks pipeline views gateway_reports health);
my $flags = '';
$deadline = time + 240;
while (time < $deadline)
{
	$run->pump_nb;
	$flags = sql($check);
	last if $flags eq join('|', ('t') x @names);
	sleep 1;
}
note(sprintf('all components seen after %.0f s', time - $t_start));

# The driver apps' writes came through the sync service, authenticated.
my $sync_metrics = '';
$deadline = time + 120;
while (time < $deadline)
{
	$run->pump_nb;
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'curl', '-sf', "http://127.0.0.1:$sync_admin/metrics" ], '>', \$o, '2>', \$e);
	$sync_metrics = $o;
	last if $sync_metrics =~ /^fleet_sync_mutations_total\{result="applied"\} [1-9]/m;
	sleep 1;
}
like($sync_metrics, qr/^fleet_sync_mutations_total\{result="applied"\} [1-9]/m,
	'driver apps pushed through fleet-sync');
unlike($sync_metrics, qr/^fleet_sync_http_requests_total\{route="\/v1\/sync\/push",code="401"\} [1-9]/m,
	'... with valid tokens');
my @got = split /\|/, $flags;
for my $i (0 .. $#names)
{
	is($got[$i] // '', 't', "data flowed: $names[$i]");
}

# The non-superuser login run.sh prints: bound to the demo tenant, subject
# to row-level security, sees the demo fleet on the dispatch board.
my ($demo_tenant) = $out =~ /as app:\s+psql -h \Q$sock\E -p $port -U fleet_demo fleet\s.*bound to tenant (\d+)/;
ok(defined $demo_tenant, 'run.sh prints the fleet_demo psql line') or diag($out);
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-h', $sock, '-p', $port, '-U', 'fleet_demo', '-d', 'fleet', '-c',
		"SELECT fleet.set_tenant(" . ($demo_tenant // 0) . ") IS NOT NULL", '-c',
		"SELECT (SELECT NOT (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user),
		        (SELECT count(*) > 0 FROM fleet.dispatch_board)" ], '>', \$o, '2>', \$e);
	chomp $o;
	is($o, "t\nt|t", 'fleet_demo acts for the demo tenant under row-level security and sees its board') or diag($e);
	($o, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-h', $sock, '-p', $port, '-U', 'fleet_demo', '-d', 'fleet', '-c',
		"SELECT fleet.set_tenant(" . (($demo_tenant // 0) + 1) . ")" ], '>', \$o, '2>', \$e);
	like($e, qr/may not act for tenant/, 'and may not act for another tenant');
}

# The provider's retry storm: the same batch again and again, stored once.
my $metrics = '';
$deadline = time + 180;
while (time < $deadline)
{
	$run->pump_nb;
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'curl', '-sf', "http://127.0.0.1:$admin/metrics" ], '>', \$o, '2>', \$e);
	$metrics = $o;
	last if $metrics =~ /fleet_gateway_webhook_items_total\{item="event",status="duplicate"\} [1-9]/;
	sleep 1;
}
like($metrics, qr/fleet_gateway_webhook_items_total\{item="event",status="duplicate"\} [1-9]/,
	'the retry storm reached the gateway and was deduplicated');
is(sql(q{SELECT count(*) = count(DISTINCT idem_key) FROM fleet.event_log WHERE source = 'webhook:demo-telematics'}), 't',
	'every provider event is stored once');
like($metrics, qr/^fleet_db_metrics_up 1$/m, 'the gateway serves the database metrics');
like($metrics, qr/^fleet_event_backlog\{class="telemetry"\} \d/m, 'fleet.metrics() rows on /metrics');
like($metrics, qr/^fleet_integration_error_ratio\{integration="teltonika",service="fleet-gateway"\} /m,
	'per-integration error ratios from the gateway reports');
SKIP:
{
	skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
	my ($o, $e) = ('', '');
	my $okp = IPC::Run::run([ '/usr/bin/promtool', 'check', 'metrics' ], '<', \$metrics, '>', \$o, '2>', \$e);
	ok($okp, 'promtool accepts the gateway /metrics with the database metrics') or diag("$o$e");
}

# A failing call of an integration reaches the database through the
# gateway's report: a malformed OsmAnd request is an osmand error.
my ($code, $e2) = ('', '');
IPC::Run::run([ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}',
	"http://127.0.0.1:$osmand/?id=demo-osm-0&lat=north&lon=13.4&timestamp=1700000000" ], '>', \$code, '2>', \$e2);
is($code, '400', 'a malformed OsmAnd request is refused');
my $osm_errors = '';
$deadline = time + 120;
while (time < $deadline)
{
	$run->pump_nb;
	$osm_errors = sql(q{SELECT value FROM fleet.service_report WHERE service = 'fleet-gateway'
	                     AND name = 'integration_calls_total' AND labels = '{"integration": "osmand", "result": "error"}'});
	last if $osm_errors ne '' && $osm_errors > 0;
	sleep 1;
}
ok($osm_errors ne '' && $osm_errors > 0, 'the gateway reported the osmand error to the database');

like($out, qr/\[\d+ s\] fixes\/s \S+ stored \d+ \| health dispatch=/, 'the live summary is printed');

# SIGTERM: everything stops cleanly.
$run->signal('TERM');
$deadline = time + 120;
while (time < $deadline && $run->pumpable)
{
	$run->pump_nb;
	sleep 0.2;
}
$run->finish;
is($run->full_result(0), 0, 'run.sh exits 0 on SIGTERM');
like($out, qr/fleet: stopping\nfleet: stopped/, 'and says so');
my ($so, $se) = ('', '');
IPC::Run::run([ 'pg_ctl', '-D', "$var/pgdata", 'status' ], '>', \$so, '2>', \$se);
like($so . $se, qr/no server running/, 'PostgreSQL is stopped');
ok(!(IPC::Run::run([ 'curl', '-sf', "http://127.0.0.1:$admin/healthz" ], '>', \my $x, '2>', \my $y)),
	'the gateway is stopped');
ok(!(IPC::Run::run([ 'curl', '-sf', "http://127.0.0.1:$sync_admin/healthz" ], '>', \my $x2, '2>', \my $y2)),
	'the sync service is stopped');

done_testing();
