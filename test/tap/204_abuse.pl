# Bad input and abuse against fleet-gateway and the SQL API, while a
# legitimate fleet keeps sending (its fixes are checked at the end):
#   oversized and truncated frames, garbage, on every tracker port
#   slow clients (a byte at a time) and many idle connections (300 here,
#   10,000 under FLEET_SOAK) with the gateway's memory measured
#   invalid JSON and replayed signed webhook calls
#   SQL injection strings through every service input (tracker logins,
#   OsmAnd ids, webhook provider names and JSON fields), and through every
#   SQL function in schema fleet that takes text (the list comes from the
#   catalog), called as each fleet role
# The gateway keeps serving, its memory stays bounded, nothing is injected
# (no object created, no canary dropped), and no function fails with an
# internal error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use JSON::PP;
use Digest::SHA qw(hmac_sha256_hex);
use IO::Socket::INET;
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;
use FleetChaos;

plan skip_all => 'fleet-gateway or fleet-loadgen not built' unless -x $GatewayTest::BIN && -x $FleetChaos::LOADGEN;

my $node = fleet_node('fleet_abuse');
my $n = 2;
my $tenant = chaos_fixture($node, $n);
my $secret = 'provider-secret-abuse-0123456789';
$node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES ($tenant, 'wh-1', 'provider');
	INSERT INTO fleet.provider (tenant_id, name, secret) VALUES ($tenant, 'abuseco', convert_to('$secret', 'UTF8'));
	SELECT fleet.clear_tenant();
	CREATE TABLE public.canary (x int); INSERT INTO public.canary VALUES (1);
});
my $objects = "SELECT count(*) FROM pg_class WHERE relnamespace IN ('fleet'::regnamespace, 'public'::regnamespace)";
my $objects_before = $node->safe_psql('fleet', $objects);
my $dir = PostgreSQL::Test::Utils::tempdir('abuse');
my $gw;
END { kill('KILL', $gw->{pid}) if $gw; }
# 10,000 idle connections (soak) need more descriptors than a default soft limit
if ($ENV{FLEET_SOAK})
{
	open(my $w, '>', "$dir/gw-nofile") or die;
	print $w "#!/bin/sh\nulimit -n \$(ulimit -Hn)\nexec $GatewayTest::BIN \"\$@\"\n";
	close $w;
	chmod 0755, "$dir/gw-nofile";
	$GatewayTest::BIN = "$dir/gw-nofile";
}
$gw = gw_start(dsn => $node->connstr('fleet') . ' user=gw', dir => $dir,
	extra => [ '--max-frame', 4096, '--max-body', 65536, '--idle-timeout', 600 ]);
sub rss_kb { open(my $fh, '<', "/proc/$_[0]/status") or return 0; my ($k) = join('', <$fh>) =~ /VmRSS:\s+(\d+)/; return $k; }
sub serving
{
	my ($st) = http_get($gw->{admin}, 'GET', '/healthz');
	my $s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex('350000000000000'));
	return $st == 200 && read_reply($s, 1, 10) eq '01';
}

# the legitimate fleet runs through all of it
my $lg = loadgen_start($gw, $dir, 'legit', n => $n, duration => soak(6, 60), rate => 200);

my @inj = ("'; DROP TABLE public.canary; --", "\"; DROP TABLE public.canary; --",
	"x') ; CREATE TABLE public.pwned(); --", "\$\$; CREATE TABLE public.pwned(); \$\$", "\\x00\\'", "%s%n%x",
	"' OR '1'='1", "Robert'); DROP TABLE fleet.position;--");

# ---------------------------------------------------------------- frames
{
	my $s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex('350000000000000'));
	is(read_reply($s, 1, 10), '01', 'teltonika login accepted');
	send_hex($s, '00000000' . '00100000' . ('08' x 2048));		# declares 1 MiB, over --max-frame
	ok(expect_closed($s, 30), 'oversized Teltonika frame: connection closed');
	$s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex('350000000000001'));
	read_reply($s, 1, 10);
	my $pkt = tlt_avl_hex([ (time - 60) * 1000, 52.5, 13.4, 30, 90, 40 ]);
	send_hex($s, substr($pkt, 0, length($pkt) / 2));			# truncated, then gone
	close $s;
	$s = tcp_connect($gw->{gt06});
	send_hex($s, '7878ff' . ('ab' x 300));						# bad length, garbage
	ok(expect_closed($s, 30), 'garbage GT06 frame: connection closed');
	$s = tcp_connect($gw->{teltonika});
	send_hex($s, unpack('H*', pack('n', 40) . ('9' x 40)));	# an IMEI far too long
	my $rep = read_reply($s, 1, 10);
	ok($rep eq '00' || ($rep eq '' && expect_closed($s, 10)), 'over-long IMEI login refused');
	for my $bad (@inj)
	{
		$s = tcp_connect($gw->{teltonika});
		send_hex($s, unpack('H*', pack('n', length $bad) . $bad));
		my $rep = read_reply($s, 1, 5);
		ok($rep eq '00' || $rep eq '', "injection string as IMEI refused: $bad");
	}
	my ($st) = http_get($gw->{osmand}, 'GET', '/?id=' . join('', map { sprintf('%%%02X', ord) } split //, $inj[0]) . '&lat=1&lon=2');
	ok($st >= 400 && $st < 500, "injection string as OsmAnd id: $st");
	($st) = http_get($gw->{osmand}, 'POST', '/', 'application/x-www-form-urlencoded', 'x' x 70000);
	ok($st >= 400 && $st < 500, "OsmAnd body over --max-body: $st");
	ok(serving(), 'after bad frames the gateway still serves');
}

# ---------------------------------------------------------------- webhooks
{
	sub post
	{
		my ($provider, $body, %o) = @_;
		my $ts = $o{ts} // int(time);
		return http_get($gw->{osmand}, 'POST', "/webhook/$provider", 'application/json', $body,
			{ 'X-Fleet-Timestamp' => $ts, 'X-Fleet-Signature' => 'sha256=' . hmac_sha256_hex("$ts.$body", $secret) });
	}
	my ($stn, $respn) = post('abuseco', '{"positions": [{"device": null}]}');
	ok($stn == 200 && $respn =~ /"rejected"/, 'a position without a device: answered, rejected');
	for my $b ('{', '{"positions": [', '[1,2,3]', "\x00\xff\xfe", '{"a":' x 5000)
	{
		my ($st) = post('abuseco', $b);
		is($st, 400, 'invalid JSON or shape: 400 (' . substr(unpack('H*', $b), 0, 12) . ')');
	}
	for my $bad (@inj[0 .. 2])
	{
		my ($st) = post($bad, '{}');
		ok($st == 404 || $st == 401, "injection string as provider name: $st");
		my $body = encode_json({ positions => [ { device => $bad, time => (time - 30) * 1000, lat => 1, lon => 2 } ],
			events => [ { key => $bad, kind => $bad, payload => { text => $bad } } ] });
		($st) = post('abuseco', $body);
		ok($st == 200 || $st == 400, "injection strings in webhook JSON fields: $st");
	}
	my $ts = int(time);
	my $body = encode_json({ positions => [ { device => 'wh-1', time => (time - 20) * 1000, lat => 1, lon => 2 } ] });
	my ($st1) = post('abuseco', $body, ts => $ts);
	my ($st2, $resp2) = post('abuseco', $body, ts => $ts);
	is("$st1 $st2", '200 200', 'a signed webhook call replayed inside the window is answered');
	like($resp2, qr/"duplicate"/, 'but the replay stores nothing (duplicate)');
	my ($st3) = post('abuseco', $body, ts => $ts - 3600);
	is($st3, 401, 'a replay of an hour-old signed call: 401');
	is($node->safe_psql('fleet', qq{SELECT fleet.set_tenant($tenant); SELECT count(*) FROM fleet.position p
		JOIN fleet.device d USING (tenant_id, device_id) WHERE d.identifier = 'wh-1'}), "$tenant\n1", 'the replayed fix is stored once');
}

# ---------------------------------------------------- slow and idle clients
{
	my $rss0 = rss_kb($gw->{pid});
	my $slow = tcp_connect($gw->{osmand});
	syswrite($slow, $_), usleep(50_000) for split //, 'GET /?id=ch-osm-0';	# never finished
	my $idle = soak(300, 10000);
	# the idle devices are known (an unknown IMEI is refused at login)
	$node->safe_psql('fleet', qq{SELECT fleet.set_tenant($tenant);
		INSERT INTO fleet.device (tenant_id, identifier, protocol)
		SELECT $tenant, (351000000000000 + g)::text, CASE WHEN g = 2 THEN 'gt06' ELSE 'teltonika' END
		  FROM generate_series(0, $idle + 2) g WHERE g <> 1;
		INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES ($tenant, 'idl-osm-0', 'osmand')});
	my $lgi = loadgen_start($gw, $dir, 'idle', n => 1, duration => soak(3, 30), extra => [ '--idle', $idle, '--imei-base', 351000000000000, '--id-prefix', 'idl' ]);
	my $peak = 0;
	my $conns = 0;
	wait_for(sub {
		$peak = rss_kb($gw->{pid}) if rss_kb($gw->{pid}) > $peak;
		my ($st, $m) = http_get($gw->{admin}, 'GET', '/metrics');
		($conns) = $m =~ /^fleet_gateway_connections\{[^}]*teltonika[^}]*\} (\d+)/m;
		($conns // 0) >= $idle }, 60);
	ok(serving(), "with $idle idle connections (and a slow client) the gateway still serves");
	my $r = loadgen_wait($lgi);
	cmp_ok($r->{open}, '>=', $idle, "the idle connections stayed open ($r->{open})");
	my $per = ($peak - $rss0) / $idle;
	note(sprintf('gateway RSS %d kB -> peak %d kB with %d idle connections: %.1f kB each', $rss0, $peak, $idle, $per));
	cmp_ok($per, '<', 64, 'memory per idle connection stays bounded (< 64 kB)');
	close $slow;
}

# ------------------------------------------------ SQL functions taking text
{
	# every function in schema fleet with a text argument, from the catalog
	my @fns = split /\n/, $node->safe_psql('fleet', q{
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind = 'f'
   AND p.prorettype <> 'trigger'::regtype
   AND 'text'::regtype::oid = ANY (p.proargtypes::oid[])
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) t WHERE t IN ('internal'::regtype, 'anyelement'::regtype))
 ORDER BY 1});
	cmp_ok(scalar @fns, '>', 10, scalar(@fns) . ' SQL functions in schema fleet take text');
	$node->safe_psql('fleet', q{
CREATE TABLE public.inj_result (role text, fn text, sqlstate text);
GRANT INSERT ON public.inj_result TO PUBLIC;});
	my $inj_arr = 'ARRAY[' . join(',', map { my $x = $_; $x =~ s/'/''/g; "E'" . ($x =~ s/\\/\\\\/gr) . "'" } @inj) . ']';
	for my $role (qw(fleet_admin fleet_ingest fleet_app fleet_analyst))
	{
		$node->safe_psql('fleet', qq{
SET ROLE $role;
SELECT fleet.set_tenant($tenant) WHERE has_function_privilege('fleet.set_tenant(bigint,boolean)', 'EXECUTE');
DO \$fleetinj\$
DECLARE f regprocedure; s text; call text; st text;
BEGIN
  FOR f IN SELECT unnest(ARRAY[@{[ join(',', map { "'$_'" } @fns) ]}]::regprocedure[]) LOOP
    FOREACH s IN ARRAY $inj_arr LOOP
      SELECT format('SELECT %s(%s)', p.oid::regproc::text, string_agg(
               CASE WHEN t = 'text'::regtype THEN quote_literal(s) ELSE 'NULL::' || format_type(t, NULL) END, ', ' ORDER BY i))
        INTO call
        FROM pg_proc p, unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i) WHERE p.oid = f GROUP BY p.oid;
      st := '00000';
      BEGIN
        EXECUTE call;
      EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
      END;
      INSERT INTO public.inj_result VALUES (current_user, f::text, st);
    END LOOP;
  END LOOP;
END \$fleetinj\$;});
	}
	my $calls = $node->safe_psql('fleet', 'SELECT count(*) FROM public.inj_result');
	is($calls, scalar(@fns) * scalar(@inj) * 4, "$calls calls (functions x injection strings x roles) made");
	is($node->safe_psql('fleet', q{SELECT coalesce(string_agg(DISTINCT fn || ' ' || sqlstate, '; '), '') FROM public.inj_result
		WHERE sqlstate LIKE 'XX%' OR sqlstate LIKE '58%'}), '', 'no internal or system errors from any function');
	note($node->safe_psql('fleet', q{SELECT string_agg(sqlstate || ' ' || n, ', ' ORDER BY n DESC) FROM
		(SELECT sqlstate, count(*) n FROM public.inj_result GROUP BY 1) x}));
	is($node->safe_psql('fleet', 'SELECT count(*) FROM public.canary'), '1', 'the canary table is still there');
	is($node->safe_psql('fleet', "SELECT count(*) FROM pg_class WHERE relname = 'pwned'"), '0', 'no injected table exists');
	is($node->safe_psql('fleet', $objects), $objects_before + 1, 'no other relation appeared in fleet or public (only the result table)');
	is($node->safe_psql('fleet', "SELECT to_regclass('fleet.position') IS NOT NULL"), 't', 'fleet.position is there');
}

my $r = loadgen_wait($lg);
ok(serving(), 'the gateway serves after all of it');
is($r->{unacked}, 0, 'the legitimate fleet got every fix acknowledged');
my ($fig, $rc) = fleet_check($node, loadgens => [$r]);
is($rc, 0, 'checker: every acknowledged legitimate fix stored once, nothing unsent stored');
record_result(scenario => 'abuse: bad frames, injection, idle connections', fig => $fig,
	load => "fleet-loadgen " . 3 * $n . ' devices at 200 fixes/s + ' . soak(300, 10000) . ' idle connections',
	faults => 'oversized/truncated/garbage frames, invalid JSON, webhook replay, SQL injection via services and every text SQL function');
is(gw_stop($gw), 0, 'gateway stops cleanly');
$node->stop;
done_testing();
