# fleet-gateway follows a failover: its DSN lists the primary and a
# streaming standby with target_session_attrs=read-write.  The primary is
# stopped; while no writable server exists, fixes are acknowledged from the
# journal; the standby is promoted and the gateway reconnects to it by
# itself: the journal drains there and new fixes are stored directly.
# Every acknowledged fix is on the promoted server exactly once.
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

my $primary = fleet_node('fleet_fo_primary', init => { allows_streaming => 1 });
my $tenant = $primary->safe_psql('fleet', "SELECT fleet.create_tenant('Failover Freight')");
my $imei = '350000000004401';
$primary->safe_psql('fleet', qq{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES ($tenant, '$imei', 'teltonika');
});
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('fleet_fo_standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my $dir = PostgreSQL::Test::Utils::tempdir('gwf');
my $dsn = 'host=' . $primary->host . ',' . $standby->host . ' port=' . $primary->port . ',' . $standby->port
  . ' dbname=fleet user=gw target_session_attrs=read-write connect_timeout=2';
my $gw = gw_start(dsn => $dsn, dir => $dir);

my %acked;
my $k = 0;
# Send one packet of 3 fixes like a device: retry on a fresh connection until acknowledged.
sub send_fixes
{
	my $base = (int(time) - 300) * 1000 + 10_000 * $k++;
	my @recs = map { [ $base + $_ * 1000, 45 + $_ / 100, 7 + $_ / 100, 30, 90, 200 ] } 0 .. 2;
	for my $try (1 .. 10)
	{
		my $s = tcp_connect($gw->{teltonika});
		send_hex($s, tlt_login_hex($imei));
		next unless read_reply($s, 1, 10) eq '01';
		send_hex($s, tlt_avl_hex(@recs));
		if (read_reply($s, 4, 10) eq '00000003')
		{
			$acked{ $_->[0] } = 1 for @recs;
			return 1;
		}
	}
	return 0;
}

ok(send_fixes(), 'stored on the primary');
$primary->stop('fast');
ok(send_fixes() && send_fixes(), 'primary down, standby read-only: acknowledged from the journal');
my ($st, $body) = http_get($gw->{admin}, 'GET', '/metrics');
like($body, qr/^fleet_gateway_journal_depth [1-9]/m, 'the journal holds them');
$standby->promote;
ok(wait_for(sub {
	my ($s, $b) = http_get($gw->{admin}, 'GET', '/metrics');
	$b =~ /^fleet_gateway_journal_depth 0$/m && $b =~ /^fleet_gateway_database_connected 1$/m }, 60),
	'after the promotion the gateway reconnects to the new primary and drains the journal');
ok(send_fixes(), 'new fixes are stored on the promoted standby');
my $stored = $standby->safe_psql('fleet', qq{
	SELECT string_agg((extract(epoch FROM p.fix_time) * 1000)::bigint::text, ',' ORDER BY p.fix_time)
	  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id) WHERE d.identifier = '$imei'});
is($stored, join(',', sort { $a <=> $b } keys %acked), 'every acknowledged fix is on the promoted server, once');
is(gw_stop($gw), 0, 'gateway stops cleanly');
$standby->stop;
done_testing();
