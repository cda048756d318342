# fleet-loadgen against fleet-gateway: a small simulated fleet (Teltonika,
# OsmAnd and GT06 devices driving around, with dead zones that buffer and
# burst, and re-sent packets) for a few seconds; every fix the load
# generator saw acknowledged is in fleet.position exactly once, and the
# re-sent packets stored nothing twice.  Then the same with the database
# stopped half-way: fixes acknowledged from the journal are all stored once
# the database is back.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;

my $loadgen = "$ENV{FLEET_REPO}/services/build/fleet-loadgen";
BAIL_OUT('fleet-gateway or fleet-loadgen not built') unless -x $GatewayTest::BIN && -x $loadgen;

my $node = fleet_node('fleet_loadgen');
my $dir = PostgreSQL::Test::Utils::tempdir('gwl');
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Loadgen Logistics')");
my ($ntlt, $nosm, $ngt) = (20, 5, 5);
$node->safe_psql('fleet', qq{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol)
	SELECT $tenant, (350000000000000 + g)::text, CASE WHEN g < $ntlt THEN 'teltonika' ELSE 'gt06' END
	  FROM generate_series(0, $ntlt + $nosm + $ngt - 1) g WHERE g < $ntlt OR g >= $ntlt + $nosm
	UNION ALL SELECT $tenant, 'lg-osm-' || g, 'osmand' FROM generate_series(0, $nosm - 1) g;
});
my $gw = gw_start(dsn => 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=gw', dir => $dir);

sub run_loadgen
{
	my ($ackfile, @extra) = @_;
	my $out = `$loadgen --teltonika-port $gw->{teltonika} --osmand-port $gw->{osmand} --gt06-port $gw->{gt06} --teltonika $ntlt --osmand $nosm --gt06 $ngt --ack-file $ackfile @extra 2>&1`;
	note($out);
	my %kv = $out =~ /(\w+)=(\S+)/g;
	return \%kv;
}

# Every acknowledged fix stored exactly once: returns (acked, missing).
sub check_acks
{
	my ($ackfile) = @_;
	my $missing = $node->safe_psql('fleet', qq{
		CREATE TEMP TABLE acks (device text, ms bigint);
		COPY acks FROM '$ackfile';
		SELECT count(*) || ' ' || count(*) FILTER (WHERE NOT EXISTS (
			SELECT 1 FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
			 WHERE d.identifier = a.device AND p.fix_time = 'epoch'::timestamptz + a.ms * interval '1 ms'))
		  FROM (SELECT DISTINCT device, ms FROM acks) a});
	return split / /, $missing;
}

my $r = run_loadgen("$dir/acks1.tsv", '--duration', 4, '--per-packet', 3, '--dead-zone-pct', 10, '--resend-pct', 10);
ok($r->{acked_fixes} > 500, "the simulated fleet got $r->{acked_fixes} fixes acknowledged");
ok($r->{acked_teltonika} > 0 && $r->{acked_osmand} > 0 && $r->{acked_gt06} > 0, 'by every protocol (Teltonika, OsmAnd, GT06)');
ok($r->{resent_packets} > 0 && $r->{dead_zones} > 0, "with re-sent packets ($r->{resent_packets}) and dead zones ($r->{dead_zones})");
is($r->{unacked}, 0, 'nothing left unacknowledged at the end');
my ($acked, $missing) = check_acks("$dir/acks1.tsv");
is($acked, $r->{acked_fixes}, 'the ack file lists every acknowledged fix once');
is($missing, 0, 'every acknowledged fix is in fleet.position');
is($node->safe_psql('fleet', 'SELECT count(*) FROM fleet.position'), $acked,
	'and nothing else: re-sent packets stored nothing twice');

# The database goes away during the run: the journal takes over.
my $pid = fork();
if ($pid == 0)
{
	my $out = `$loadgen --teltonika-port $gw->{teltonika} --osmand-port $gw->{osmand} --gt06-port $gw->{gt06} --teltonika $ntlt --osmand $nosm --gt06 $ngt --ack-file $dir/acks2.tsv --duration 6 --seed 7 --imei-base 350000000000000 2>&1`;
	open(my $fh, '>', "$dir/lg2.out");
	print $fh $out;
	close $fh;
	POSIX::_exit(0);
}
sleep 2;
$node->stop('fast');
sleep 2;
$node->start;
waitpid($pid, 0);
my %r2 = slurp_file("$dir/lg2.out") =~ /(\w+)=(\S+)/g;
note(slurp_file("$dir/lg2.out"));
ok($r2{acked_fixes} > 100, "run with an outage: $r2{acked_fixes} fixes acknowledged");
ok(wait_for(sub {
	my ($st, $body) = http_get($gw->{admin}, 'GET', '/metrics');
	$body =~ /^fleet_gateway_journal_depth 0$/m && $body =~ /^fleet_gateway_database_connected 1$/m }, 60),
	'the journal drains once the database is back');
my ($acked2, $missing2) = check_acks("$dir/acks2.tsv");
is($missing2, 0, "every one of the $acked2 fixes acknowledged around the outage is stored");
# (a fix whose commit outcome was unknown when the database went away may
# be stored without having been acknowledged: never the other way round)
cmp_ok($node->safe_psql('fleet', 'SELECT count(*) FROM fleet.position'), '>=', $acked + $acked2,
	'stored rows cover both runs\' acknowledged fixes (the key keeps each once)');
is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
