# Failover scenario: a primary and a synchronous standby on loopback,
# sustained ingest through fleet-gateway with a multi-host DSN
# (target_session_attrs=read-write).  Replication is stalled (walsender
# stopped) so commits wait for the standby, then the primary is killed
# with -9, the standby promoted and its synchronous_standby_names (copied
# from the primary, as a base backup does) reset so commits do not hang.
# The gateway journals while no writable server exists and drains into the
# promoted standby.  Checker: zero acknowledged fixes lost; the write
# unavailability window (kill to first stored write on the new primary) is
# reported.
#
# Control: the same with an asynchronous standby.  Acknowledged commits
# made while replication was stalled are on the dead primary only: the
# checker reports them lost (or, should none have been made, is shown to
# catch a deleted acknowledged row).
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

my @gws;
END { kill('KILL', $_->{pid}) for @gws; }
my $n = soak(3, 20);

# mode: 'sync' or 'async'.  Returns (figures, exit code, loadgen result, window s).
sub scenario
{
	my ($mode) = @_;
	my $primary = fleet_node("fleet_fo_${mode}_p", init => { allows_streaming => 1 }, conf => "fsync = on\n");
	chaos_fixture($primary, $n);
	$primary->backup('b');
	my $standby = PostgreSQL::Test::Cluster->new("fleet_fo_${mode}_s");
	$standby->init_from_backup($primary, 'b', has_streaming => 1);
	$standby->append_conf('postgresql.conf', "primary_conninfo = '" . $primary->connstr . " application_name=s1'\n"
		  . ($mode eq 'sync' ? "synchronous_standby_names = 'FIRST 1 (s1)'\n" : ''));
	$standby->start;
	if ($mode eq 'sync')
	{
		$primary->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (s1)'; SELECT pg_reload_conf()");
		$primary->poll_query_until('postgres', "SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 's1'")
		  or die 'standby not synchronous';
		pass('sync: standby s1 is synchronous');
	}
	$primary->wait_for_catchup('s1', 'replay', $primary->lsn('insert'));

	my $dir = PostgreSQL::Test::Utils::tempdir("fo$mode");
	my $dsn = 'host=' . $primary->host . ',' . $standby->host . ' port=' . $primary->port . ',' . $standby->port
	  . ' dbname=fleet user=gw target_session_attrs=read-write connect_timeout=2';
	my $gw = gw_start(dsn => $dsn, dir => $dir, extra => [ '--writers', 2 ]);
	push @gws, $gw;
	my $lg = loadgen_start($gw, $dir, "fo$mode", n => $n, duration => soak(6, 90));
	$primary->poll_query_until('fleet', 'SELECT count(*) > 200 FROM fleet.position') or die 'no ingest progress';

	# stall replication: the walsender stops sending
	my ($ws) = $primary->safe_psql('postgres', "SELECT pid FROM pg_stat_replication WHERE application_name = 's1'");
	kill('STOP', $ws);
	my $stalled = $primary->safe_psql('fleet', 'SELECT count(*) FROM fleet.position');
	if ($mode eq 'async')
	{
		# asynchronous commits go on without the standby
		$primary->poll_query_until('fleet', "SELECT count(*) > $stalled + 100 FROM fleet.position")
		  or die 'async commits did not go on';
	}
	else
	{
		# synchronous commits wait for the stalled standby
		ok($primary->poll_query_until('fleet', "SELECT count(*) FILTER (WHERE wait_event = 'SyncRep') > 0 FROM pg_stat_activity"),
			'sync: commits wait for the stalled standby');
	}
	my $t_kill = time;
	kill('KILL', grep { $_ != $primary->{_pid} } pids_of_cluster($primary));
	$primary->kill9;
	$standby->promote;
	my $t_promoted = time;
	if ($mode eq 'sync')
	{
		# the copied synchronous_standby_names would make every commit wait for
		# a standby that does not exist: reset it
		$standby->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = ''; SELECT pg_reload_conf()");
	}
	my $before = $standby->safe_psql('fleet', 'SELECT count(*) FROM fleet.position');
	ok(wait_for(sub {
		(gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1
		  && $standby->safe_psql('fleet', 'SELECT count(*) FROM fleet.position') > $before }, 120),
		"$mode: the gateway found the promoted standby and stores there");
	my $window = time - $t_kill;
	my $r = loadgen_wait($lg);
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_depth') // 1) == 0 }, 120), "$mode: journal drained");
	cmp_ok($r->{acked_fixes}, '>', 100, "$mode: $r->{acked_fixes} fixes acknowledged");
	is($r->{unacked}, 0, "$mode: every device got its fixes acknowledged in the end");
	my ($fig, $rc) = fleet_check($standby, loadgens => [$r], views => $mode eq 'sync');
	is(gw_stop($gw), 0, "$mode: gateway stops cleanly");
	@gws = ();
	note(sprintf('%s: write unavailability %.1f s (promotion took %.1f s of it)', $mode, $window, $t_promoted - $t_kill));
	return ($fig, $rc, $r, $window, $standby);
}

my ($fig, $rc, $r, $window, $s1) = scenario('sync');
is($rc, 0, 'sync: checker ok');
is($fig->{lost}, 0, 'sync: zero acknowledged fixes lost across the failover');
is($fig->{doubled}, 0, 'sync: none stored twice');
is($fig->{phantom}, 0, 'sync: nothing stored that was never sent');
is($fig->{order}, 0, 'sync: latest positions in order');
diag(sprintf('sync failover: write unavailability window %.1f s', $window));
record_result(scenario => 'failover: sync standby, kill -9 primary', fig => $fig, recovery => $window,
	load => "fleet-loadgen " . 3 * $n . " devices, $r->{acked_per_s} fixes/s acked",
	faults => 'walsender stalled, kill -9 primary, promote, reset synchronous_standby_names',
	note => 'recovery = write unavailability window (devices acked from the gateway journal meanwhile)');
$s1->stop;

my ($fig2, $rc2, $r2, $window2, $s2) = scenario('async');
if ($fig2->{lost} > 0)
{
	pass("async control: the checker caught $fig2->{lost} acknowledged fixes lost with an asynchronous standby");
	is($rc2, 1, 'async control: and failed the run');
}
else
{
	note('async control lost nothing this time; deleting one acknowledged row');
	my ($dev, $ms) = split /\t/, do { open(my $fh, '<', $r2->{acked_file}) or die; scalar <$fh> };
	chomp $ms;
	$s2->safe_psql('fleet', qq{DELETE FROM fleet.position p USING fleet.device d
		WHERE d.tenant_id = p.tenant_id AND d.device_id = p.device_id AND d.identifier = '$dev'
		  AND p.fix_time = 'epoch'::timestamptz + $ms * interval '1 ms'});
	($fig2, $rc2) = fleet_check($s2, loadgens => [$r2]);
	is($fig2->{lost}, 1, 'async control: the checker names the deleted acknowledged fix');
	is($rc2, 1, 'async control: and fails the run');
}
record_result(scenario => 'failover control: async standby', fig => $fig2, recovery => $window2,
	load => "fleet-loadgen " . 3 * $n . " devices", faults => 'walsender stalled, kill -9 primary, promote',
	note => 'negative control: loss expected');
$s2->stop;
done_testing();
