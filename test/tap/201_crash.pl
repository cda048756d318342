# Crash scenario: kill -9 of single backends and of the postmaster during
# sustained ingest through fleet-gateway (a simulated fleet of Teltonika,
# GT06 and OsmAnd devices).  The gateway reconnects by itself; the checker
# finds every acknowledged fix stored exactly once, nothing stored that was
# never sent, the latest position of every vehicle its newest fix, the
# views within their bound and reconciliation idempotent.
#
# Negative control: the same with synchronous_commit = off (and the WAL
# writer slowed down), so the tail of acknowledged commits can die with
# the server.  The checker must report that loss; if this run happened to
# lose nothing, the control deletes one acknowledged row and the checker
# must name it - so the checker is proven able to fail either way.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;
use FleetChaos;

plan skip_all => 'fleet-gateway or fleet-loadgen not built' unless -x $GatewayTest::BIN && -x $FleetChaos::LOADGEN;

my $node = fleet_node('fleet_chaos_crash', conf => "fsync = on\nrestart_after_crash = on\nfleet.pipeline_naptime = 50ms\n");
is($node->safe_psql('fleet', "SELECT current_setting('fsync') || current_setting('full_page_writes') || current_setting('synchronous_commit')"),
	'ononon', 'durability settings are on (fsync, full_page_writes, synchronous_commit)');
my $n = soak(4, 30);
my $tenant = chaos_fixture($node, $n);
my $dir = PostgreSQL::Test::Utils::tempdir('crash');
my $gw;
END { kill('KILL', $gw->{pid}) if $gw && $gw->{pid}; }
$gw = gw_start(dsn => $node->connstr('fleet') . ' user=gw connect_timeout=2', dir => $dir,
	extra => [ '--writers', 2 ]);

my $duration = soak(7, 120);
my $kills = soak(1, 6);
my $lg = loadgen_start($gw, $dir, 'crash', n => $n, duration => $duration);
my $t_fault;
my @recovery;
for my $round (1 .. $kills)
{
	# wait for progress, then kill one gateway writer backend
	$node->poll_query_until('fleet', "SELECT count(*) > 50 * $round FROM fleet.position") or die 'no ingest progress';
	my @b;
	wait_for(sub { @b = backend_pids($node, 'gw'); @b > 0 }, 60);
	ok(@b > 0, "round $round: gateway writers connected (" . scalar(@b) . ')');
	kill('KILL', $b[0]);
	# a backend killed by -9 makes the postmaster restart every session
	$t_fault = time;
	usleep(200_000);
	ok(wait_for(sub { $node->psql('fleet', 'SELECT 1') == 0 }, 120), 'server back after the backend crash');
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1 }, 120),
		'gateway reconnected by itself after a backend was killed');
	push @recovery, time - $t_fault;

	# then the whole server: kill -9 of the postmaster
	my $before = $node->safe_psql('fleet', 'SELECT count(*) FROM fleet.position');
	$t_fault = time;
	crash_and_restart($node);
	ok(wait_for(sub {
		(gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1
		  && $node->psql('fleet', "SELECT 1/(count(*) > $before)::int FROM fleet.position") == 0 }, 120),
		'after kill -9 of the postmaster the gateway reconnects and stores again');
	push @recovery, time - $t_fault;
}
my $r = loadgen_wait($lg);
cmp_ok($r->{acked_fixes}, '>', 100, "fleet under crashes: $r->{acked_fixes} fixes acknowledged");
is($r->{unacked}, 0, 'every device got its fixes acknowledged in the end');
ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_depth') // 1) == 0 }, 120), 'the journal drained');

my ($fig, $rc) = fleet_check($node, loadgens => [$r], views => 1,
	reconcile => '2000-01-01,2100-01-01');
is($rc, 0, 'checker: ok');
is($fig->{lost}, 0, 'zero acknowledged fixes lost');
is($fig->{doubled}, 0, 'none stored twice');
is($fig->{phantom}, 0, 'nothing stored that was never sent');
is($fig->{order}, 0, 'latest position of every vehicle is its newest fix');
is($fig->{views_stale} . '/' . $fig->{view_diffs}, '0/0', 'views within their bound and equal to their definition');
is($fig->{reconcile_second}, 0, 'a second reconciliation repairs nothing');
my ($rmax) = sort { $b <=> $a } @recovery;
record_result(scenario => 'crash: kill -9 backend + postmaster', fig => $fig, recovery => $rmax,
	load => "fleet-loadgen " . 3 * $n . " devices, $r->{acked_per_s} fixes/s acked",
	faults => "$kills x (kill -9 writer backend, kill -9 postmaster)");

# ---------------------------------------------------------- negative control
$node->append_conf('postgresql.conf', "synchronous_commit = off\nwal_writer_delay = 10s\nwal_writer_flush_after = 1GB\n");
$node->restart;
is($node->safe_psql('fleet', 'SHOW synchronous_commit'), 'off', 'control: synchronous_commit = off');
ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1 }, 120), 'control: gateway reconnected');
my $lg2 = loadgen_start($gw, $dir, 'control', n => $n, duration => soak(4, 20), seed => 12);
my $base = $node->safe_psql('fleet', 'SELECT count(*) FROM fleet.position');
$node->poll_query_until('fleet', "SELECT count(*) > $base + 100 FROM fleet.position") or die 'no progress';
crash_and_restart($node);
my $r2 = loadgen_wait($lg2);
ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_depth') // 1) == 0 }, 120), 'control: journal drained');
my ($fig2, $rc2) = fleet_check($node, loadgens => [ $r, $r2 ]);
if ($fig2->{lost} > 0)
{
	pass("control: the checker caught $fig2->{lost} acknowledged fixes lost with synchronous_commit = off");
	is($rc2, 1, 'control: and failed the run');
}
else
{
	# this crash lost nothing: prove the checker would have seen it
	note('control run lost nothing this time; deleting one acknowledged row');
	my ($dev, $ms) = split /\t/, do { open(my $fh, '<', $r2->{acked_file}) or die; scalar <$fh> };
	chomp $ms;
	$node->safe_psql('fleet', qq{DELETE FROM fleet.position p USING fleet.device d
		WHERE d.tenant_id = p.tenant_id AND d.device_id = p.device_id AND d.identifier = '$dev'
		  AND p.fix_time = 'epoch'::timestamptz + $ms * interval '1 ms'});
	($fig2, $rc2) = fleet_check($node, loadgens => [ $r, $r2 ]);
	is($fig2->{lost}, 1, 'control: the checker names the deleted acknowledged fix');
	is($rc2, 1, 'control: and fails the run');
}
record_result(scenario => 'crash control: synchronous_commit=off', fig => $fig2,
	load => "fleet-loadgen " . 3 * $n . " devices", faults => 'kill -9 postmaster',
	note => 'negative control: loss expected (acknowledged counts both runs on the cluster)');

is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
