# Provider webhooks through fleet-gateway: POST /webhook/<provider> signed
# with HMAC-SHA256 over "<timestamp>.<body>" (X-Fleet-Timestamp,
# X-Fleet-Signature).  A good call is answered 200 with per-item statuses
# after the commit that stored its positions and events; a bad signature,
# a stale timestamp, missing headers or an unknown provider get 401 and
# store nothing; a malformed body 400; a retry stores nothing twice; with
# the database down the answer is 503 (webhooks are never journaled: only
# the database can check their signature).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Digest::SHA qw(hmac_sha256_hex);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;

BAIL_OUT("fleet-gateway not built ($GatewayTest::BIN)") unless -x $GatewayTest::BIN;

my $node = fleet_node('fleet_webhook');
my $dir = PostgreSQL::Test::Utils::tempdir('gwh');
my $secret = 'provider-secret-0123456789abcdef';
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Webhook Freight')");
$node->safe_psql('fleet', qq{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES
		($tenant, 'tp-truck-1', 'provider'), ($tenant, 'tp-truck-2', 'provider');
	INSERT INTO fleet.provider (tenant_id, name, secret) VALUES ($tenant, 'trackco', convert_to('$secret', 'UTF8'));
});
my $dsn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=gw';
my $gw = gw_start(dsn => $dsn, dir => $dir);

sub sql { return $node->safe_psql('fleet', $_[0]); }
sub stored
{
	return sql(qq{SELECT (SELECT count(*) FROM fleet.position) || '/' ||
		(SELECT count(*) FROM fleet.event_log WHERE source = 'webhook:trackco')});
}

sub post
{
	my ($provider, $body, %o) = @_;
	my $ts = $o{ts} // time;
	my $sig = $o{sig} // 'sha256=' . hmac_sha256_hex("$ts.$body", $o{secret} // $secret);
	my %h;
	$h{'X-Fleet-Timestamp'} = $ts unless $o{no_ts};
	$h{'X-Fleet-Signature'} = $sig unless $o{no_sig};
	return http_get($gw->{osmand}, $o{method} // 'POST', "/webhook/$provider", 'application/json', $body, \%h);
}

my $t = time - 120;
my $body = encode_json({
	positions => [
		{ device => 'tp-truck-1', time => $t * 1000, lat => 48.85, lon => 2.35, speed => 61.5, heading => 270, attrs => { odometer => 1234 } },
		{ device => 'tp-truck-2', time => ($t + 1) * 1000, lat => 48.86, lon => 2.36 },
		{ device => 'not-ours', time => ($t + 2) * 1000, lat => 1, lon => 2 },
	],
	events => [ { key => 'trip-77-start', kind => 'audit.note', payload => { text => 'trip started' } } ],
});

# Refusals: 401 and nothing stored.
my $before = stored();
is((post('trackco', $body, secret => 'wrong-secret-0123456789'))[0], 401, 'wrong secret: 401');
is((post('trackco', $body, sig => 'sha256=' . ('0' x 64)))[0], 401, 'forged signature: 401');
my $ts_body_sig = 'sha256=' . hmac_sha256_hex(time . ".$body", $secret);
is((post('trackco', $body . ' ', sig => $ts_body_sig))[0], 401, 'body changed after signing: 401');
is((post('trackco', $body, ts => time - 3600))[0], 401, 'timestamp an hour old (replay window 300 s): 401');
is((post('trackco', $body, ts => time + 3600))[0], 401, 'timestamp an hour ahead: 401');
is((post('trackco', $body, no_sig => 1))[0], 401, 'no signature header: 401');
is((post('trackco', $body, no_ts => 1))[0], 401, 'no timestamp header: 401');
is((post('nobody-co', $body))[0], 401, 'unknown provider: 401');
is(stored(), $before, 'the refused calls stored nothing');
is((post('trackco', '{"positions": 5}'))[0], 400, 'malformed body (signed): 400');
is((post('trackco', 'not json at all'))[0], 400, 'not JSON (signed): 400');
is((post('trackco', $body, method => 'PUT'))[0], 405, 'PUT: 405');
is((post('Bad%20Name', $body))[0], 404, 'invalid provider name: 404');
is(stored(), $before, 'still nothing stored');

# A good call: 200 after commit with statuses; its rows are there.
my ($st, $resp) = post('trackco', $body);
is($st, 200, 'signed call: 200');
my $j = eval { decode_json($resp) } || {};
is(join(',', map { "$_->{idx}:$_->{status}" . ($_->{reason} ? ":$_->{reason}" : '') } @{ $j->{positions} || [] }),
	'1:accepted,2:accepted,3:rejected:unknown_device', 'per-position statuses in the answer');
is(join(',', map { "$_->{idx}:$_->{status}" } @{ $j->{events} || [] }), '1:accepted', 'per-event status in the answer');
is(sql(qq{SELECT fleet.set_tenant($tenant);
	SELECT string_agg(d.identifier || ' ' || p.lat || ' ' || p.lon || ' ' || coalesce(p.speed::text, '-') || ' ' || coalesce(p.attrs::text, '-'), '; ' ORDER BY p.fix_time)
	  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)}),
	"$tenant\ntp-truck-1 48.85 2.35 61.5 {\"odometer\": 1234}; tp-truck-2 48.86 2.36 - -", 'both positions stored with their fields');
is(sql(qq{SELECT fleet.set_tenant($tenant); SELECT kind || ' ' || idem_key || ' ' || (payload->>'text') FROM fleet.event_log WHERE source = 'webhook:trackco'}),
	"$tenant\naudit.note trip-77-start trip started", 'the event is logged with source webhook:trackco');
my $after = stored();

# The provider retries the same call: 200, duplicates, nothing stored twice.
($st, $resp) = post('trackco', $body);
$j = eval { decode_json($resp) } || {};
is($st, 200, 'retried call: 200');
is(join(',', map { $_->{status} } @{ $j->{positions} }, @{ $j->{events} }), 'duplicate,duplicate,rejected,duplicate',
	'retried call: duplicates');
is(stored(), $after, 'retried call stored nothing twice');

# Database down: 503 with Retry-After, nothing acknowledged.
$node->stop('fast');
my $late = encode_json({ positions => [ { device => 'tp-truck-1', time => ($t + 50) * 1000, lat => 1, lon => 1 } ] });
($st) = post('trackco', $late);
is($st, 503, 'database down: 503 (webhooks are not journaled)');
$node->start;
ok(wait_for(sub { (post('trackco', $late))[0] == 200 }, 30), 'database back: the provider\'s retry gets 200');

my ($ms, $metrics) = http_get($gw->{admin}, 'GET', '/metrics');
like($metrics, qr/^fleet_gateway_webhook_requests_total\{code="401"\} 8$/m, '/metrics counts the 401s');
like($metrics, qr/^fleet_gateway_webhook_items_total\{item="position",status="accepted"\} 3$/m, '/metrics counts accepted webhook positions');
is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
