# Backpressure: with the database down the journal (bounded by
# --journal-max-mb) fills up; then devices are no longer acknowledged (the
# connection is closed, the device keeps its data), /readyz answers 503
# journal_full and OsmAnd gets 503.  When the database returns, the journal
# drains and every acknowledged fix is stored; acknowledgements resume.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;

BAIL_OUT("fleet-gateway not built ($GatewayTest::BIN)") unless -x $GatewayTest::BIN;

my $node = fleet_node('fleet_backpressure');
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Full Journal Ltd')");
my $imei = '350000000005501';
$node->safe_psql('fleet', qq{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES ($tenant, '$imei', 'teltonika'), ($tenant, 'bp-phone', 'osmand');
});
my $dir = PostgreSQL::Test::Utils::tempdir('gwb');
my $gw = gw_start(dsn => 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=gw',
	dir => $dir, extra => [ '--journal-max-mb', 1 ]);
$node->stop('fast');
wait_for(sub { (http_get($gw->{admin}, 'GET', '/readyz'))[1] eq "journaling\n" }, 30);

# Send packets of 100 fixes until one is not acknowledged.
my %acked;
my ($refused, $packets) = (0, 0);
my $base = (int(time) - 3600) * 1000;
my $s;
while ($packets < 400 && !$refused)
{
	my @recs = map { [ $base + $packets * 100 + $_, 40 + $_ / 1000, 9, 50, 180, 100 ] } 0 .. 99;
	$packets++;
	for my $try (1 .. 3)
	{
		unless ($s)
		{
			$s = tcp_connect($gw->{teltonika});
			send_hex($s, tlt_login_hex($imei));
			read_reply($s, 1, 10);
		}
		send_hex($s, tlt_avl_hex(@recs));
		my $r = read_reply($s, 4, 10);
		if ($r eq sprintf('%08x', 100))
		{
			$acked{ $_->[0] } = 1 for @recs;
			last;
		}
		undef $s;
		# not acknowledged: an unknown outcome once is normal; refusals while full persist
		if ($try == 3) { $refused = 1; }
	}
}
ok(scalar(keys %acked) >= 1000, scalar(keys %acked) . ' fixes acknowledged into the journal');
ok($refused, "then, with the journal full (after $packets packets), the gateway stops acknowledging");
my ($rs, $rb) = http_get($gw->{admin}, 'GET', '/readyz');
is("$rs $rb", "503 journal_full\n", '/readyz: 503 journal_full');
my ($os) = http_get($gw->{osmand}, 'GET', '/?id=bp-phone&lat=1&lon=2&timestamp=' . int(time - 60));
is($os, 503, 'OsmAnd gets 503 (retry later) while the journal is full');

$node->start;
ok(wait_for(sub {
	my ($st, $b) = http_get($gw->{admin}, 'GET', '/metrics');
	$b =~ /^fleet_gateway_journal_depth 0$/m }, 60), 'the database is back: the journal drains');
my $stored = $node->safe_psql('fleet', qq{
	SELECT count(*) FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
	 WHERE d.identifier = '$imei'});
is($stored, scalar(keys %acked), 'every acknowledged fix is stored (and nothing refused)');
is((http_get($gw->{admin}, 'GET', '/readyz'))[0], 200, '/readyz 200 again');
my ($os2) = http_get($gw->{osmand}, 'GET', '/?id=bp-phone&lat=1&lon=2&timestamp=' . int(time - 60));
is($os2, 200, 'acknowledgements resume');
is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
