# The sync service's refusals and operations, with a real HTTP client:
# wrong, malformed, expired and revoked tokens and a deactivated client
# (401, nothing stored); malformed JSON, wrong types, oversized bodies and
# batches (400/413 with a JSON body naming the problem, nothing stored);
# a reused mutation id (409); wrong method and route; the per-token rate
# limit (429 with Retry-After); GET /v1/me; POST /v1/events (accepted,
# duplicate, conflict, refused kinds); the database down (503 with
# Retry-After, /readyz 503) and back; /metrics; SIGTERM with a request in
# flight (answered, exit 0).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/sync/test";
use SyncTest;

plan skip_all => "fleet-sync not built ($SyncTest::BIN)" unless -x $SyncTest::BIN;

my $node = fleet_node('sync_service_errors');
my $dir = PostgreSQL::Test::Utils::tempdir('syncerr');
$node->safe_psql('fleet', q{
	SELECT fleet.create_roles();
	CREATE ROLE sync_svc LOGIN IN ROLE fleet_app;
	-- fleet.metrics() shows every tenant's series to pg_monitor members only
	GRANT pg_monitor TO sync_svc;
});
my $a = setup_tenant($node, 'Alpha', 1, 5);
my $drv = $a->{drivers}[0];
my @stops = @{ $a->{stops}{$drv} };
my $t = $a->{tenant};
my $client = '0b000000-0000-4000-8000-000000000001';
my $token = issue_token($node, $t, $client, $drv);
my $expired = issue_token($node, $t, $client, $drv);
my $revoked = issue_token($node, $t, $client, $drv);
my $client2 = '0b000000-0000-4000-8000-000000000002';
my $deact = issue_token($node, $t, $client2, $drv);

sub sql { return $node->safe_psql('fleet', "SELECT fleet.set_tenant($t) \\g /dev/null\n" . $_[0]); }
# what a push could have stored: mutations, trail events, evidence, stop versions
sub stored
{
	return sql(q{SELECT (SELECT count(*) FROM fleet.sync_mutation WHERE tenant_id = fleet.current_tenant()) || '/'
		|| (SELECT count(*) FROM fleet.event_log WHERE tenant_id = fleet.current_tenant()) || '/'
		|| (SELECT count(*) FROM fleet.proof_of_delivery WHERE tenant_id = fleet.current_tenant()) || '/'
		|| (SELECT sum(version) FROM fleet.stop WHERE tenant_id = fleet.current_tenant())});
}

my $dsn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=sync_svc';
my $svc = sync_start(dsn => $dsn, dir => $dir,
	extra => [ '--rate', 0, '--max-body', 65536, '--max-mutations', 50, '--pull-max', 1000 ]);

my $m1 = { id => 1, workflow => 'stop_status', args => { stop_id => $stops[0] + 0, status => 'en_route' } };
my ($st, $j, $raw, $h);

# --------------------------------------------------------------- tokens
sql(qq{UPDATE fleet.sync_token SET issued_at = now() - interval '2 days', expires_at = now() - interval '1 day'
	WHERE token_hash = fleet.sync_token_digest('$expired')});
is(sql(qq{SELECT fleet.sync_revoke_token(token_id) FROM fleet.sync_token WHERE token_hash = fleet.sync_token_digest('$revoked')}),
	't', 'token revoked');
is(sql(qq{SELECT fleet.sync_revoke_token(token_id) FROM fleet.sync_token WHERE token_hash = fleet.sync_token_digest('$revoked')}),
	'f', '... revoking again: false');
sql(qq{SELECT fleet.sync_deactivate_client('$client2')});

my $before = stored();
my $wrong = $token;
$wrong =~ s/.$/ substr($token, -1) eq '0' ? '1' : '0' /e;
my $other_tenant = $token;
$other_tenant =~ s/^fst1\.\d+\./fst1.999./;
for my $case ([ 'no token', undef, 'missing or malformed' ], [ 'garbage token', 'not a token!', 'missing or malformed' ],
	[ 'wrong token', $wrong, 'invalid token' ], [ 'token naming another tenant', $other_tenant, 'invalid token' ],
	[ 'expired token', $expired, 'token expired' ], [ 'revoked token', $revoked, 'token revoked' ],
	[ 'deactivated client', $deact, 'client deactivated' ])
{
	my ($name, $tok, $msg) = @$case;
	for my $route ([ 'POST', '/v1/sync/push', { mutations => [$m1] } ], [ 'POST', '/v1/sync/pull', {} ],
		[ 'GET', '/v1/me', undef ], [ 'POST', '/v1/events', { key => 'k1', kind => 'driver.panic', payload => {} } ])
	{
		($st, $j, $raw, $h) = api($svc, $route->[0], $route->[1], $tok, $route->[2]);
		is($st, 401, "$name: $route->[1] 401");
		like($j->{message} // '', qr/\Q$msg\E/, "... message: $msg") if $route->[1] eq '/v1/sync/push';
		ok(defined $h->{'www-authenticate'}, '... with WWW-Authenticate') if $route->[1] eq '/v1/sync/push';
	}
}
is(stored(), $before, 'nothing stored for any refused token');

# ---------------------------------------------------- bodies and shapes
for my $case (
	[ 'not JSON', '{"mutations": [', 400, 'malformed_json', '' ],
	[ 'empty body', '', 400, 'malformed_json', '' ],
	[ 'array body', '[]', 400, 'invalid_request', '' ],
	[ 'mutations not an array', '{"mutations": 5}', 400, 'invalid_request', 'mutations' ],
	[ 'id as string', '{"mutations": [{"id": "1", "workflow": "stop_status", "args": {}}]}', 400, 'invalid_request', 'mutations[0].id' ],
	[ 'args not an object', '{"mutations": [{"id": 1, "workflow": "stop_status", "args": 3}]}', 400, 'invalid_request', 'mutations[0].args' ],
	[ 'base_version as string', '{"mutations": [{"id": 1, "workflow": "w", "args": {}, "base_version": "2"}]}', 400, 'invalid_request', 'mutations[0].base_version' ],
	[ 'too many mutations', $SyncTest::JSON->encode({ mutations => [ map { { id => $_, workflow => 'w', args => {} } } 1 .. 51 ] }),
	  413, 'too_many_mutations', 'mutations' ],
	[ 'body over the limit', '{"mutations": [{"id": 1, "workflow": "w", "args": {"x": "' . ('a' x 70000) . '"}}]}',
	  413, 'body_too_large', undef ])
{
	my ($name, $body, $want, $err, $field) = @$case;
	($st, $j, $raw) = api($svc, 'POST', '/v1/sync/push', $token, $body);
	is($st, $want, "$name: $want");
	is($j->{error}, $err, "... error $err");
	ok(length($j->{message} // '') > 0, '... with a message');
	is($j->{field} // '', $field, "... naming field '$field'") if defined $field;
}
# wrong types the database finds: the whole batch is refused
($st, $j) = api($svc, 'POST', '/v1/sync/push', $token,
	{ mutations => [ $m1, { id => 2, workflow => 'stop_status', args => { stop_id => $stops[1] + 0, status => 'en_route' },
	  client_time => 'yesterday-ish' } ] });
is($st, 400, 'an invalid client_time: 400');
like($j->{message}, qr/client_time/, '... naming client_time');
($st, $j) = api($svc, 'POST', '/v1/sync/pull', $token, { cursor => 'nonsense' });
is($st, 400, 'an invalid cursor: 400');
($st, $j) = api($svc, 'POST', '/v1/sync/pull', $token, { max => 1001 });
is($st, 400, 'a page above the limit: 400');
is($j->{field}, 'max', '... naming max');
is(stored(), $before, 'nothing stored for any refused body');

# ------------------------------------------------ push, conflicts, routes
($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [$m1] });
is($st, 200, 'a valid push: 200');
is($j->{results}[0]{result}, 'applied', '... applied');
is($j->{results}[0]{stored}{entity_id}, $stops[0], '... the stored result');
my $m1b = { %$m1, args => { stop_id => $stops[0] + 0, status => 'arrived' } };
($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [$m1b] });
is($st, 409, 'mutation id reused with another payload: 409');
is($j->{error}, 'conflict', '... error conflict');
($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [ { %$m1, id => 5 } ] });
is($st, 409, 'skipping ahead: 409');
is($j->{expected_id}, 2, '... expected_id 2');
($st) = api($svc, 'GET', '/v1/sync/push', $token);
is($st, 405, 'GET on push: 405');
($st) = api($svc, 'POST', '/v1/me', $token, {});
is($st, 405, 'POST on me: 405');
($st, $j) = api($svc, 'GET', '/v1/nothing', $token);
is($st, 404, 'unknown route: 404');

# ------------------------------------------------------------------ me
($st, $j) = api($svc, 'GET', '/v1/me', $token);
is($st, 200, 'GET /v1/me: 200');
is($j->{driver}{id}, $drv, '... the driver');
is($j->{tenant}{id}, $t, '... the tenant');
is($j->{client_id}, $client, '... the client');
is($j->{vehicle}{code}, 'Alpha-V1', '... the vehicle');
is(scalar @{ $j->{work}[0]{stops} }, 5, '... the assigned work');
is($j->{last_mutation_id}, 1, '... the last processed mutation');

# --------------------------------------------------------------- events
my $ev = { key => 'panic-1', kind => 'driver.panic', payload => { lat => 52.5, lon => 13.4 } };
($st, $j) = api($svc, 'POST', '/v1/events', $token, $ev);
is($st, 200, 'panic event: 200');
is($j->{status}, 'accepted', '... accepted');
my $eid = $j->{event_id};
($st, $j) = api($svc, 'POST', '/v1/events', $token, $ev);
is($st, 200, '... sent again: 200');
is($j->{status}, 'duplicate', '... duplicate');
is($j->{event_id}, $eid, '... the same event');
($st, $j) = api($svc, 'POST', '/v1/events', $token, { %$ev, payload => { lat => 1 } });
is($st, 409, 'same key, another event: 409');
($st, $j) = api($svc, 'POST', '/v1/events', $token, { key => 'f1', kind => 'driver.fuel_receipt', payload => { liters => 40 } });
is($st, 400, 'fuel receipt without amount: 400');
like($j->{message}, qr/amount/, '... naming the missing field');
($st, $j) = api($svc, 'POST', '/v1/events', $token, { key => 'j1', kind => 'job.status', payload => {} });
is($st, 400, 'a kind apps may not send: 400');
($st, $j) = api($svc, 'POST', '/v1/events', $token, { key => 'f2', kind => 'driver.fuel_receipt',
	payload => { liters => 40.5, amount => 71.2, currency => 'EUR' }, occurred_at => '2026-01-01T08:00:00Z' });
is($st, 200, 'fuel receipt: 200');
is(sql(q{SELECT count(*) FROM fleet.event_log WHERE source = 'app' AND tenant_id = fleet.current_tenant()}), 2,
	'two app events stored, once each');
is(sql(qq{SELECT payload->>'driver_id' FROM fleet.event_log WHERE source = 'app' AND kind = 'driver.panic'}), $drv,
	'... with the driver the token maps to');

# ----------------------------------------------------------- rate limit
{
	my $rl = sync_start(dsn => $dsn, dir => $dir, extra => [ '--rate', 1, '--burst', 3 ]);
	my %codes;
	my $retry;
	for (1 .. 20)
	{
		my ($s, undef, undef, $hh) = api($rl, 'GET', '/v1/me', $token);
		$codes{$s}++;
		$retry //= $hh->{'retry-after'} if $s == 429;
	}
	ok(($codes{429} // 0) > 0, 'per-token rate limit: 429 after the burst');
	ok(defined $retry && $retry >= 1, '... with Retry-After');
	ok(($codes{200} // 0) >= 3, '... the burst was served');
	my ($s) = api($rl, 'GET', '/v1/me', $expired);
	is($s, 401, 'another token is not limited by it');
	is(sync_stop($rl), 0, 'rate-limited instance stops cleanly');
}

# --------------------------------------------------- database down, back
$node->stop('fast');
my @down;
ok(wait_until(sub {
	my ($s, undef, undef, $hh) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [ { %$m1, id => 2 } ] });
	@down = ($s, $hh->{'retry-after'});
	$s == 503 && defined $hh->{'retry-after'} }, 60), 'database down: 503 with Retry-After');
ok(wait_until(sub { (admin_get($svc, '/readyz'))[0] == 503 }, 60), '... /readyz 503');
is((admin_get($svc, '/healthz'))[0], 200, '... /healthz 200');
$node->start;
ok(wait_until(sub { (admin_get($svc, '/readyz'))[0] == 200 }, 60), 'database back: /readyz 200');
ok(wait_until(sub {
	my ($s, $jj) = api($svc, 'POST', '/v1/sync/push', $token,
		{ mutations => [ { id => 2, workflow => 'stop_status', args => { stop_id => $stops[1] + 0, status => 'en_route' } } ] });
	$s == 200 }, 60), '... pushes succeed again');

# -------------------------------------------------------------- metrics
my (undef, $metrics) = admin_get($svc, '/metrics');
like($metrics, qr/^fleet_sync_http_requests_total\{route="\/v1\/sync\/push",code="401"\} \d+/m, 'metrics: requests by route and status');
like($metrics, qr/^fleet_sync_http_requests_total\{route="\/v1\/sync\/push",code="503"\} \d+/m, '... 503 counted');
like($metrics, qr/^fleet_sync_http_request_duration_seconds_bucket\{route="\/v1\/sync\/push",le="[0-9.]+"\} \d+/m,
	'... latency histogram');
like($metrics, qr/^fleet_sync_mutations_total\{result="applied"\} [1-9]/m, '... mutations by result');
like($metrics, qr/^fleet_sync_database_connections \d+/m, '... database connections');
# the database's own metrics come on their own connection, which reconnects
# (backoff up to 5 s) after the outage above
my $db_metrics = '';
for (my $i = 0; $i < 60; $i++)
{
	(undef, $db_metrics) = admin_get($svc, '/metrics');
	last if $db_metrics =~ /^fleet_db_metrics_up 1$/m;
	usleep(500_000);
}
$metrics = $db_metrics;
like($metrics, qr/^fleet_db_metrics_up 1$/m, '... the database metrics appended (fleet.metrics() answered)');
like($metrics, qr/^fleet_\w+\{[^}]*tenant="\d+"/m, '... with per-tenant series from fleet.metrics()');

# ------------------------------------------- SIGTERM with a push in flight
my ($in, $out, $err) = ('', '', '');
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('fleet') ],
	'<', \$in, '>', \$out, '2>', \$err);
$in .= "BEGIN;\nSELECT 'locked' FROM fleet.sync_client WHERE client_id = '$client' FOR UPDATE;\n";
ok(wait_until(sub { $locker->pump_nb; $out =~ /locked/ }, 60), 'client row locked');
my $child = fork();
die 'fork' unless defined $child;
if ($child == 0)
{
	my ($s, $jj, $r) = api($svc, 'POST', '/v1/sync/push', $token,
		{ mutations => [ { id => 3, workflow => 'stop_status', args => { stop_id => $stops[2] + 0, status => 'en_route' } } ] },
		fresh => 1);
	open(my $fh, '>', "$dir/inflight") or POSIX::_exit(1);
	print $fh "$s $r\n";
	close $fh;
	POSIX::_exit(0);
}
ok(wait_until(sub {
	$node->safe_psql('fleet', q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'sync_svc' AND wait_event_type = 'Lock'}) > 0 },
	60), 'a push waits in the database');
kill('TERM', $svc->{pid});
ok(wait_until(sub { (admin_get($svc, '/readyz'))[0] == 503 }, 30), 'draining: /readyz 503');
$in .= "COMMIT;\n";
$locker->pump_nb;
$locker->finish;
waitpid($child, 0);
is(sync_stop($svc, 60, 1), 0, 'SIGTERM: exit 0 after the request in flight');
like(slurp_file("$dir/inflight"), qr/^200 .*"applied"/, '... which was answered 200 after its commit');
is(sql(qq{SELECT last_mutation_id FROM fleet.sync_client WHERE client_id = '$client'}), 3, '... and stored');

$node->stop;
done_testing();
