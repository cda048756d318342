# One device's report never stops storage for the others (issue 18, item 8).
#
# Through the real gateway against a real node, as an ordinary fleet_ingest
# login:
#  1. OsmAnd x=1e200000 (beyond numeric's range) is stored with the value as a
#     JSON string; jsonb accepts every attrs document the gateway builds.
#  2. A real non-outage database error in the middle of a batch: a trigger
#     made by the test refuses (23514) fixes carrying a "poison" attribute or
#     altitude -999.  Concurrent OsmAnd requests and a Teltonika frame share
#     one batch: the poisoned fixes are refused per row (OsmAnd 422 naming
#     db_error_23514, Teltonika no acknowledgement), every other fix is
#     stored, nothing is journaled, /metrics counts the refusals by reason.
#  3. A poisoned fix journaled during an outage: when the database is back
#     the drain stores the others, retries the poisoned one, then moves it
#     to dead-letters.jsonl with its error; the journal empties, /readyz ok.
#  4. A journaled fix that keeps failing with an outage-class error while
#     connected (55P03): /readyz says journal_stuck until it can be stored.
#  5. A deployment fault that fails every fix alike (here 0A000 raised for
#     all of them, as a missing function, table or a refused login would):
#     the fixes are journaled and acknowledged, not refused one by one; once
#     the fault is gone the journal drains and they are stored.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IO::Select;
use Time::HiRes qw(time);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;

BAIL_OUT("fleet-gateway not built ($GatewayTest::BIN)") unless -x $GatewayTest::BIN;

my $node = fleet_node('fleet_gw_poison');
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Poison Freight')");
my $imei = '350000000007601';
my @phones = map { "pz-$_" } 1 .. 4;
my $devices = join(', ', map { "($tenant, '$_', 'osmand')" } @phones);
$node->safe_psql('fleet', qq{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol)
	     VALUES $devices, ($tenant, '$imei', 'teltonika');
	CREATE FUNCTION public.poison_guard() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		IF NEW.attrs OPERATOR(pg_catalog.?) 'poison' OR NEW.altitude = -999 THEN
			RAISE EXCEPTION 'poisoned fix refused by the test' USING ERRCODE = 'check_violation';
		END IF;
		IF NEW.attrs OPERATOR(pg_catalog.?) 'stall' THEN
			RAISE EXCEPTION 'stalled fix' USING ERRCODE = 'lock_not_available';
		END IF;
		RETURN NEW;
	END \$\$;
	CREATE TABLE public.deploy_fault (on_ boolean NOT NULL);
	INSERT INTO public.deploy_fault VALUES (false);
	GRANT SELECT ON public.deploy_fault TO gw;
	CREATE FUNCTION public.deploy_guard() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		IF (SELECT f.on_ FROM public.deploy_fault f) THEN
			RAISE EXCEPTION 'the deployment is broken' USING ERRCODE = 'feature_not_supported';
		END IF;
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER deploy_guard BEFORE INSERT ON fleet.position
	   FOR EACH ROW EXECUTE FUNCTION public.deploy_guard();
	CREATE TRIGGER poison_guard BEFORE INSERT ON fleet.position
	   FOR EACH ROW EXECUTE FUNCTION public.poison_guard();
});

my $dir = PostgreSQL::Test::Utils::tempdir('gwp');
my $gw = gw_start(dsn => 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=gw',
	dir => $dir,
	extra => [ '--writers', 1, '--batch-wait-ms', 400, '--journal-dead-letter-after', 1,
		'--journal-stuck-after', 1, '--db-metrics', 0 ]);

# Fix times: an hour ago, one second apart (inside the prepared partitions).
my $base = int(time) - 3600;
my $k = 0;
sub next_ts { return $base + $k++; }

sub stored
{
	my ($dev, $ts) = @_;
	return $node->safe_psql('fleet', qq{
		SELECT count(*) FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
		 WHERE d.identifier = '$dev' AND p.fix_time = pg_catalog.to_timestamp($ts)});
}

sub metrics
{
	return (http_get($gw->{admin}, 'GET', '/metrics'))[1];
}

sub metric_value
{
	my ($text, $re) = @_;
	return $text =~ /^$re (\S+)$/m ? $1 : 0;
}

# Send HTTP requests on separate connections all at once, then read every
# answer: they reach the single writer lane within one batch window.
sub http_parallel
{
	my (@reqs) = @_;
	my @socks;
	for my $r (@reqs)
	{
		my ($method, $path, $ctype, $body) = @$r;
		my $s = tcp_connect($gw->{osmand});
		$body //= '';
		my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n";
		$req .= "Content-Type: $ctype\r\n" if $ctype;
		$req .= 'Content-Length: ' . length($body) . "\r\n" if length $body;
		syswrite($s, "$req\r\n$body");
		push @socks, $s;
	}
	my @out;
	for my $s (@socks)
	{
		my $sel = IO::Select->new($s);
		my $resp = '';
		my $deadline = time + 30;
		while (time < $deadline && $sel->can_read($deadline - time))
		{
			my $n = sysread($s, $resp, 65536, length $resp);
			last unless $n;
		}
		close $s;
		my ($code) = $resp =~ m{^HTTP/1\.\d (\d{3})};
		my (undef, $b) = split /\r\n\r\n/, $resp, 2;
		push @out, [ $code // 0, $b // '' ];
	}
	return @out;
}

# ---- 1. a number jsonb would refuse is kept as a string ---------------------
my $t1 = next_ts();
my ($st1) = http_get($gw->{osmand}, 'GET', "/?id=pz-1&lat=1&lon=2&timestamp=$t1&x=1e200000&y=NaN");
is($st1, 200, 'OsmAnd x=1e200000: acknowledged');
is($node->safe_psql('fleet', qq{
	SELECT pg_catalog.jsonb_typeof(p.attrs->'x') || ' ' || (p.attrs->>'x') || ' ' || (p.attrs->>'y')
	  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
	 WHERE d.identifier = 'pz-1' AND p.fix_time = pg_catalog.to_timestamp($t1)}),
	'string 1e200000 NaN', 'stored, with the value as a JSON string');

# ---- 2. a batch with poisoned fixes: split, refused per row, rest stored -----
my @good = map { [ $_, next_ts() ] } 'pz-1', 'pz-2', 'pz-3', 'pz-1', 'pz-2';
my $tp = next_ts();
my ($ja, $jb, $jc) = (next_ts(), next_ts(), next_ts());
my $json = encode_json({ device_id => 'pz-4', location => [
	map { { timestamp => $_->[0] . '', coords => { latitude => 3, longitude => 4 },
		extras => $_->[1] ? { poison => JSON::PP::true } : {} } } [ $ja, 0 ], [ $jb, 1 ], [ $jc, 0 ] ] });
# a Teltonika frame of three fixes, the middle one refused (altitude -999)
my @tlt = ([ ($base + 1800) * 1000, 40.1, 9.1, 50, 90, 100 ], [ ($base + 1801) * 1000, 40.2, 9.2, 50, 90, -999 ],
	[ ($base + 1802) * 1000, 40.3, 9.3, 50, 90, 100 ]);
# the Teltonika device logs in first (a look-up outside the batch)
my $ts = tcp_connect($gw->{teltonika});
send_hex($ts, tlt_login_hex($imei));
is(read_reply($ts, 1, 10), '01', 'Teltonika device logged in');
send_hex($ts, tlt_avl_hex(@tlt));
my @answers = http_parallel(
	(map { [ 'GET', "/?id=$_->[0]&lat=1.5&lon=2.5&timestamp=$_->[1]" ] } @good),
	[ 'GET', "/?id=pz-3&lat=1&lon=2&timestamp=$tp&poison=1" ],
	[ 'POST', '/', 'application/json', $json ]);
my $tlt_reply = read_reply($ts, 4, 30);
is_deeply([ map { $_->[0] } @answers[ 0 .. $#good ] ], [ (200) x @good ], 'every clean request: 200');
is_deeply($answers[-2], [ 422, "refused: db_error_23514\n" ], 'the poisoned request: 422 naming the SQLSTATE');
is($answers[-1][0], 422, 'a JSON request with one poisoned fix of three: 422 (not acknowledged)');
isnt($tlt_reply, sprintf('%08x', 3), 'Teltonika frame holding a refused fix: not acknowledged');
ok(expect_closed($ts, 10), '... and the connection is closed (the device resends)');

is(join(',', map { stored(@$_) } @good), join(',', (1) x @good), 'every clean fix is stored');
is(stored('pz-3', $tp), 0, 'the poisoned fix is not stored');
is(stored('pz-4', $ja) . stored('pz-4', $jb) . stored('pz-4', $jc), '101',
	'the poisoned request\'s other fixes are stored');
is($node->safe_psql('fleet', qq{
	SELECT string_agg(p.altitude::text, ',' ORDER BY p.fix_time)
	  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id) WHERE d.identifier = '$imei'}),
	'100,100', 'the Teltonika frame\'s other fixes are stored');
my $m = metrics();
is(metric_value($m, 'fleet_gateway_rejected_total\{reason="db_error_23514"\}'), 3,
	'/metrics counts three refusals by reason');
ok(metric_value($m, 'fleet_gateway_batch_splits_total') > 0, 'the batch was split to isolate them');
is(metric_value($m, 'fleet_gateway_journal_appends_total'), 0, 'nothing was journaled');
is(metric_value($m, 'fleet_gateway_journal_depth'), 0, 'the journal is empty');
is((http_get($gw->{admin}, 'GET', '/readyz'))[1], "ok\n", '/readyz ok');
# the device resends: its good fixes are duplicates, the poisoned one refused again
my ($again) = http_get($gw->{osmand}, 'POST', '/', 'application/json', $json);
is($again, 422, 'a resend is refused again, nothing doubled');
is(stored('pz-4', $ja), 1, '... the stored fixes stay single');

# ---- 3. a poisoned fix journaled during an outage is moved aside ------------
$node->stop('fast');
ok(wait_for(sub { (http_get($gw->{admin}, 'GET', '/readyz'))[1] eq "journaling\n" }, 60),
	'database down: the gateway journals');
my @during = map { [ $_, next_ts() ] } 'pz-1', 'pz-2';
my $tj = next_ts();
my $tafter = next_ts();
my @jr = (
	(http_get($gw->{osmand}, 'GET', "/?id=$during[0][0]&lat=1&lon=2&timestamp=$during[0][1]"))[0],
	(http_get($gw->{osmand}, 'GET', "/?id=pz-3&lat=1&lon=2&timestamp=$tj&poison=yes"))[0],
	(http_get($gw->{osmand}, 'GET', "/?id=$during[1][0]&lat=1&lon=2&timestamp=$during[1][1]"))[0]);
is_deeply(\@jr, [ 200, 200, 200 ], 'during the outage every fix is acknowledged into the journal');
$node->start;
ok(wait_for(sub { metric_value(metrics(), 'fleet_gateway_journal_depth') == 0 }, 90),
	'the database is back: the journal empties (the poisoned fix does not block it)');
is(stored($during[0][0], $during[0][1]) . stored($during[1][0], $during[1][1]), '11',
	'the journaled clean fixes are stored');
is(stored('pz-3', $tj), 0, 'the journaled poisoned fix is not');
my $dl = "$dir/journal/dead-letters.jsonl";
ok(-f $dl, 'a dead-letter file next to the journal');
my @lines = -f $dl ? do { open(my $fh, '<', $dl) or die; <$fh> } : ();
is(scalar @lines, 1, 'holding one entry');
my $e = @lines ? decode_json($lines[0]) : {};
is_deeply([ @$e{qw(device reason)} ], [ 'pz-3', 'db_error_23514' ], 'the poisoned fix, with its SQLSTATE');
like($e->{error} // '', qr/poisoned fix refused by the test/, '... and the database\'s message');
is($e->{attrs}, '{"poison":"yes"}', '... and its attributes');
$m = metrics();
is(metric_value($m, 'fleet_gateway_journal_dead_letters_total'), 1, '/metrics counts the dead letter');
is((http_get($gw->{admin}, 'GET', '/readyz'))[1], "ok\n", '/readyz ok after the drain');
my ($sa) = http_get($gw->{osmand}, 'GET', "/?id=pz-1&lat=1&lon=2&timestamp=$tafter");
is($sa, 200, 'new fixes are stored directly again');
is(stored('pz-1', $tafter), 1, '... and are in the database');

# ---- 4. a journal that cannot drain while connected: journal_stuck ---------
$node->stop('fast');
ok(wait_for(sub { (http_get($gw->{admin}, 'GET', '/readyz'))[1] eq "journaling\n" }, 60), 'down again');
my $tst = next_ts();
is((http_get($gw->{osmand}, 'GET', "/?id=pz-2&lat=1&lon=2&timestamp=$tst&stall=1"))[0], 200,
	'a fix journaled during the outage');
$node->start;
ok(wait_for(sub { my ($c, $b) = http_get($gw->{admin}, 'GET', '/readyz'); "$c $b" eq "503 journal_stuck\n" }, 60),
	'its drain keeps failing (55P03, an outage-class error) while connected: /readyz 503 journal_stuck');
is(metric_value(metrics(), 'fleet_gateway_journal_stuck'), 1, 'gauge fleet_gateway_journal_stuck 1');
$node->safe_psql('fleet', q{
	CREATE OR REPLACE FUNCTION public.poison_guard() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN RETURN NEW; END $$});
ok(wait_for(sub { (http_get($gw->{admin}, 'GET', '/readyz'))[1] eq "ok\n" }, 60),
	'once it can be stored the drain progresses: /readyz ok');
is(stored('pz-2', $tst), 1, 'the journaled fix is stored');
is(metric_value(metrics(), 'fleet_gateway_journal_depth'), 0, 'the journal is empty');

# ---- 5. a deployment fault fails every fix alike: journaled, not refused ---
$node->safe_psql('fleet', 'UPDATE public.deploy_fault SET on_ = true');
my @df = map { [ $_, next_ts() ] } 'pz-1', 'pz-2', 'pz-3';
my @dr = map { (http_get($gw->{osmand}, 'GET', "/?id=$_->[0]&lat=1&lon=2&timestamp=$_->[1]"))[0] } @df;
is_deeply(\@dr, [ 200, 200, 200 ], 'every fix during the fault is acknowledged (into the journal)');
ok(metric_value(metrics(), 'fleet_gateway_journal_depth') > 0, 'they wait in the journal');
is(join('', map { stored(@$_) } @df), '000', 'none is stored yet');
ok(wait_for(sub { my ($c, $b) = http_get($gw->{admin}, 'GET', '/readyz'); "$c $b" eq "503 journal_stuck\n" }, 60),
	'/readyz: journal_stuck while the fault lasts');
is(metric_value(metrics(), 'fleet_gateway_rejected_total\{reason="db_error_0A000"\}'), 0, 'nothing refused as a row error');
$node->safe_psql('fleet', 'UPDATE public.deploy_fault SET on_ = false');
ok(wait_for(sub { metric_value(metrics(), 'fleet_gateway_journal_depth') == 0 }, 90),
	'the fault repaired: the journal drains');
is(join('', map { stored(@$_) } @df), '111', 'every fix is stored, once');

is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
