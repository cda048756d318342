# fleet-gateway end to end over real sockets, against a real node.
#
# Every vector of test/vectors (Teltonika TCP and UDP, GT06, OsmAnd)
# gives exactly the reply bytes / HTTP status expected and exactly the
# stored rows expected; corrupt frames get no acknowledgement and store
# nothing; a re-sent buffer stores nothing twice and is acknowledged again;
# unknown devices are refused (Teltonika 00, HTTP 404).  Then: a database
# outage with kill -9 of the gateway (the journal keeps every acknowledged
# fix, drained exactly once after the restart), /metrics, /healthz, /readyz,
# and SIGTERM answering the frame in flight before exiting 0.  The gateway
# connects through a multi-host DSN whose first host is dead, with
# target_session_attrs=read-write, as an ordinary fleet_ingest login.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(usleep time);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/gateway/test";
use GatewayTest;

my $vectors = $ENV{FLEET_VECTORS} || "$ENV{FLEET_REPO}/test/vectors";
BAIL_OUT("fleet-gateway not built ($GatewayTest::BIN)") unless -x $GatewayTest::BIN;
BAIL_OUT("no vectors in $vectors") unless -f "$vectors/teltonika.tsv";

my $node = fleet_node('fleet_gateway');
my $dir = PostgreSQL::Test::Utils::tempdir('gw');
$node->safe_psql('fleet', q{
	SELECT fleet.create_roles();
	CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
});
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Gateway Haulage')");
my $sock = $node->host;
my $port = $node->port;
my $dsn = "host=$dir/no-such-socket-dir,$sock port=$port,$port dbname=fleet user=gw "
  . "target_session_attrs=read-write connect_timeout=2";

sub sql { return $node->safe_psql('fleet', $_[0]); }

sub add_devices
{
	my ($protocol, @ids) = @_;
	my $values = join(',', map { "($tenant, '$_', '$protocol')" } @ids);
	sql("SELECT fleet.set_tenant($tenant); INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES $values");
}

# Daily partitions for the vectors' (old) fix days.
sub partition_days
{
	my (%days) = map { $_ => 1 } grep { defined && /^\d{4}-\d\d-\d\d$/ } @_;
	return unless %days;
	sql(join(';', map { "SELECT fleet.create_daily_partitions('fleet.position', '$_', '$_')" } sort keys %days));
}

# Stored fixes of one device: "ms|lat|lon|speed|heading|altitude" rows.
sub rows_of
{
	my ($ident) = @_;
	my $out = sql(qq{
		SELECT (extract(epoch FROM p.fix_time) * 1000)::bigint, p.lat, p.lon, p.speed, p.heading, p.altitude
		  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
		 WHERE d.identifier = '$ident' ORDER BY 1});
	return [ grep { $_ ne '' } split /\n/, $out ];
}

sub close_enough
{
	my ($got, $want, $tol) = @_;
	return (!defined $want || $want eq '') ? (!defined $got || $got eq '')
	  : (defined $got && $got ne '' && abs($got - $want) <= ($tol // 1e-6));
}

sub ms_of_iso
{
	my ($iso) = @_;
	return sql("SELECT (extract(epoch FROM '$iso'::timestamptz) * 1000)::bigint");
}

# ------------------------------------------------------------ Teltonika
my $tlt = read_tsv("$vectors/teltonika.tsv");
my $expected = decode_json(do { local (@ARGV, $/) = "$vectors/teltonika_expected.json"; <> });
my %decoded_by_hex = map { lc($_->{hex}) => $_->{decoded} } values %$expected;

# One device per AVL row, so rows are counted per vector; the vector's own
# IMEIs for the login row and the UDP row.
my (@tlt_devices, %days);
for my $i (0 .. $#$tlt)
{
	my $d = $decoded_by_hex{ lc $tlt->[$i][0] } or next;
	push @tlt_devices, sprintf('35%013d', $i);
	$days{ substr($_->{ts}, 0, 10) } = 1 for grep { $_->{ts} } @{ $d->{records} || [] };
}
add_devices('teltonika', @tlt_devices, '123456789012345', '352093086403655');
partition_days(keys %days);

my $gw = gw_start(dsn => $dsn, dir => $dir);
ok($gw->{teltonika} > 0 && $gw->{osmand} > 0 && $gw->{gt06} > 0 && $gw->{admin} > 0,
	"gateway listening (teltonika $gw->{teltonika}, osmand $gw->{osmand}, gt06 $gw->{gt06}, admin $gw->{admin}) through a multi-host DSN with a dead first host");

my $avl_rows = 0;
for my $i (0 .. $#$tlt)
{
	my ($hex, $count, undef, $source, $flags, $reply) = @{ $tlt->[$i] };
	my $d = $decoded_by_hex{ lc $hex };
	my $want_reply = $reply =~ /^-/ ? '' : lc $reply;
	my $imei = sprintf('35%013d', $i);
	$source =~ s/^.*?(testDecode\S*|example[^"]*|wiki\S*)$/$1/;
	my $name = "teltonika row $i ($source)";
	if ($flags eq 'udp')
	{
		my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw->{udp}, Proto => 'udp') or die;
		$u->send(pack('H*', $hex));
		is(read_reply($u, length($want_reply) / 2, 10), $want_reply, "$name: UDP reply $want_reply");
		my $rec = $d->{records}[0];
		is(scalar @{ rows_of('352093086403655') }, $count, "$name: $count row stored");
		next;
	}
	my $s = tcp_connect($gw->{teltonika});
	if ($d && $d->{kind} eq 'imei')
	{
		send_hex($s, $hex);
		is(read_reply($s, 1, 10), $want_reply, "$name: login answered $want_reply");
		next;
	}
	send_hex($s, tlt_login_hex($imei));
	is(read_reply($s, 1, 10), '01', "$name: login of $imei accepted");
	send_hex($s, $hex);
	if ($flags eq 'expect_reject')
	{
		ok(expect_closed($s, 10), "$name: corrupt frame not acknowledged, connection closed");
		is(scalar @{ rows_of($imei) }, 0, "$name: nothing stored");
		next;
	}
	if ($want_reply eq '')
	{
		is(read_reply($s, 4, 1), '', "$name: no acknowledgement");
		is(scalar @{ rows_of($imei) }, 0, "$name: nothing stored");
		next;
	}
	is(read_reply($s, length($want_reply) / 2, 10), $want_reply, "$name: reply $want_reply");
	# the expected rows: one per distinct fix time (the first record of a time wins)
	my (%want, @order);
	for my $r (@{ $d->{records} })
	{
		next if exists $want{ $r->{ts_ms} };
		$want{ $r->{ts_ms} } = $r;
		push @order, $r->{ts_ms};
	}
	my $got = rows_of($imei);
	is(scalar @$got, scalar @order, "$name: " . scalar(@order) . " rows stored");
	my $bad = 0;
	for my $row (@$got)
	{
		my ($ms, $lat, $lon, $speed, $heading, $alt) = split /\|/, $row;
		my $r = $want{$ms};
		$bad++, diag("$name: unexpected row $row"), next unless $r;
		$bad++, diag("$name: row $row differs from " . encode_json($r))
		  unless close_enough($lat, $r->{lat}) && close_enough($lon, $r->{lon})
		  && close_enough($speed, $r->{speed_kmh}, 1e-3) && close_enough($heading, $r->{angle}, 1e-3)
		  && close_enough($alt, $r->{alt_m}, 1e-3);
	}
	is($bad, 0, "$name: every stored field (time ms, lat, lon, speed, heading, altitude) as decoded");
	$avl_rows += @order;
	# the same buffer again: acknowledged, nothing stored twice
	send_hex($s, $hex);
	is(read_reply($s, length($want_reply) / 2, 10), $want_reply, "$name: re-sent buffer acknowledged again");
	is(scalar @{ rows_of($imei) }, scalar @order, "$name: re-sent buffer stored nothing twice");
	close $s;
}
ok($avl_rows > 30, "Teltonika vectors stored $avl_rows rows");

# Keep-alive, stale CRC, one frame dribbled byte by byte, login and data in one segment.
{
	my $imei = '350000000009901';
	my $now = int(time) * 1000;
	add_devices('teltonika', $imei);
	my $s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex($imei) . tlt_avl_hex([ $now - 5000, 52.5, 13.4, 50, 90, 34 ]));
	is(read_reply($s, 5, 10), '0100000001', 'login and first packet in one segment: 01 then 00000001');
	send_hex($s, 'ff');
	is(read_reply($s, 1, 1), '', 'keep-alive 0xFF gets no reply');
	my $frame = pack('H*', tlt_avl_hex([ $now - 4000, 52.51, 13.41, 51, 91, 35 ], [ $now - 3000, 52.52, 13.42, 52, 92, 36 ]));
	for my $b (split //, $frame)
	{
		syswrite($s, $b);
		usleep(2000);
	}
	is(read_reply($s, 4, 10), '00000002', 'a packet sent one byte per segment is reassembled and acknowledged');
	is(scalar @{ rows_of($imei) }, 3, '3 rows for that device');
	my $stale = tlt_avl_hex([ $now - 2000, 52.53, 13.43, 53, 93, 37 ]);
	substr($stale, 60, 2) = substr($stale, 60, 2) eq '00' ? '01' : '00';	# a GPS byte edited, CRC stale
	send_hex($s, $stale);
	ok(expect_closed($s, 10), 'stale CRC: no acknowledgement, connection closed');
	is(scalar @{ rows_of($imei) }, 3, 'stale CRC: nothing stored');

	my $u = tcp_connect($gw->{teltonika});
	send_hex($u, tlt_login_hex('359999999999999'));
	is(read_reply($u, 1, 10), '00', 'unknown IMEI refused with 00');
	ok(expect_closed($u, 10), 'unknown IMEI: connection closed');
}

# --------------------------------------------------------------- OsmAnd
my $osm = read_tsv("$vectors/osmand.tsv", 1);
{
	my %ids = map { $_->{device_id} => 1 } grep { $_->{device_id} =~ /^\d+$/ } @$osm;
	delete $ids{'123456789012345'};	# registered above (Teltonika), shared by the vectors
	add_devices('osmand', sort keys %ids);
	partition_days(map { substr($_->{fix_time_utc}, 0, 10) } grep { $_->{fix_time_utc} =~ /^\d{4}-/ } @$osm);
}
my $row = 0;
my %osm_count;
for my $v (@$osm)
{
	$row++;
	my $name = "osmand row $row ($v->{method} $v->{expect_http})";
	my $t0 = time;
	my ($status) = http_get($gw->{osmand}, $v->{method}, $v->{path_and_query}, $v->{content_type}, $v->{body});
	is($status, $v->{expect_http}, "$name: HTTP $v->{expect_http}");
	next unless $v->{expect_stored};
	my $id = $v->{device_id};
	my $rows = rows_of($id);
	my %by_ms = map { (split /\|/)[0] => $_ } @$rows;
	my $hit;
	if ($v->{fix_time_utc} =~ /^(\d{4}-\S+?)\*?$/)
	{
		$hit = $by_ms{ ms_of_iso($1) };
	}
	else
	{
		# no timestamp: the server's receive time
		($hit) = grep { my $ms = (split /\|/)[0]; $ms >= ($t0 - 5) * 1000 && $ms <= (time + 5) * 1000 } @$rows;
	}
	ok($hit, "$name: row stored for $id at $v->{fix_time_utc}") or next;
	my (undef, $lat, $lon, $speed, $heading, $alt) = split /\|/, $hit;
	my $num = sub { my $x = shift; defined $x && $x =~ /^-?[\d.]+$/ ? $x : undef };
	ok(close_enough($lat, $v->{lat}) && close_enough($lon, $v->{lon}), "$name: lat/lon $v->{lat}/$v->{lon}");
	ok(close_enough($speed, $num->($v->{speed_kmh}), 0.01), "$name: speed " . ($num->($v->{speed_kmh}) // 'none') . ' km/h');
	ok(close_enough($heading, $num->($v->{course}), 1e-3), "$name: heading " . ($num->($v->{course}) // 'none'));
	ok(close_enough($alt, $num->($v->{altitude}), 1e-3), "$name: altitude " . ($num->($v->{altitude}) // 'none'));
	# the same request again: still 200, still one row
	my ($again) = http_get($gw->{osmand}, $v->{method}, $v->{path_and_query}, $v->{content_type}, $v->{body})
	  if $v->{fix_time_utc} =~ /^\d{4}-/;
	is(scalar @{ rows_of($id) }, scalar @$rows, "$name: a retried request stores nothing twice")
	  if defined $again && $again == 200;
}
{
	my ($status) = http_get($gw->{osmand}, 'GET', '/?id=unknown-phone-1&lat=1&lon=2&timestamp=1700000000');
	is($status, 404, 'OsmAnd: unknown device gets 404 and nothing is stored');
}

# ----------------------------------------------------------------- GT06
my $gt = read_tsv("$vectors/gt06.tsv");
my @logins = grep { $_->[1] eq '01' } @$gt;
sql(q{SELECT fleet.set_tenant(} . $tenant . q{); UPDATE fleet.device SET protocol = 'gt06' WHERE identifier = '123456789012345'});
add_devices('gt06', grep { $_ ne '123456789012345' } map { $_->[3] } @logins);
my $pos_device = '863586038760942';
my ($pos_login) = grep { $_->[3] eq $pos_device } @logins;
partition_days(map { substr($_->[3], 0, 10) } grep { $_->[1] ne '01' && $_->[3] =~ /^\d{4}-/ } @$gt);
my %gt_want;
for my $g (@$gt)
{
	my ($hex, $proto, $crc_ok, $dec, $reply, $note) = @$g;
	my $name = "gt06 proto $proto ($dec)";
	my $s = tcp_connect($gw->{gt06});
	if ($proto eq '01')
	{
		send_hex($s, $hex);
		is(read_reply($s, length($reply) / 2, 10), lc $reply, "$name: login reply $reply");
		next;
	}
	send_hex($s, $pos_login->[0]);
	is(read_reply($s, length($pos_login->[4]) / 2, 10), lc $pos_login->[4], "$name: logged in as $pos_device");
	send_hex($s, $hex);
	is(read_reply($s, length($reply) / 2, 10), lc $reply, "$name: reply $reply after commit");
	my ($ts, $lat, $lon, $speed, $course) = split m{/}, $dec;
	$gt_want{ ms_of_iso($ts) } = [ $lat, $lon, $speed, $course ];
	my %got = map { (split /\|/)[0] => $_ } @{ rows_of($pos_device) };
	my $r = $got{ ms_of_iso($ts) };
	ok($r, "$name: row stored at $ts") or next;
	my (undef, $glat, $glon, $gspeed, $gheading) = split /\|/, $r;
	ok(close_enough($glat, $lat, 1e-5) && close_enough($glon, $lon, 1e-5)
		  && close_enough($gspeed, $speed, 1e-3) && close_enough($gheading, $course, 1e-3),
		"$name: lat $lat lon $lon speed $speed course $course");
	# re-sent: the same reply, no new row
	send_hex($s, $hex);
	is(read_reply($s, length($reply) / 2, 10), lc $reply, "$name: re-sent frame acknowledged again");
	is(scalar @{ rows_of($pos_device) }, scalar(keys %gt_want), "$name: re-sent frame stored nothing twice");
}
{
	# three login frames in one read get three replies (traccar#3381)
	my ($real) = grep { $_->[3] eq '358899051123282' } @logins;
	my $s = tcp_connect($gw->{gt06});
	send_hex($s, $real->[0] x 3);
	is(read_reply($s, 3 * length($real->[4]) / 2, 10), lc($real->[4]) x 3, 'gt06: three logins in one segment, three replies');
	# a position frame with a bad CRC: no reply, connection closed, nothing stored
	my ($posv) = grep { $_->[1] eq '12' } @$gt;
	my $bad = $posv->[0];
	substr($bad, 10, 2) = substr($bad, 10, 2) eq '00' ? '01' : '00';
	my $before = scalar @{ rows_of($pos_device) };
	my $t = tcp_connect($gw->{gt06});
	send_hex($t, $pos_login->[0]);
	read_reply($t, length($pos_login->[4]) / 2, 10);
	send_hex($t, $bad);
	ok(expect_closed($t, 10), 'gt06: bad CRC not acknowledged, connection closed');
	is(scalar @{ rows_of($pos_device) }, $before, 'gt06: bad CRC stored nothing');
	my $u = tcp_connect($gw->{gt06});
	send_hex($u, '78780d01035999999999999900018cdd0d0a');
	ok(expect_closed($u, 10), 'gt06: unknown or malformed login is not answered, connection closed');
}

# ------------------------------------------------------ admin endpoints
{
	my ($st, $body) = http_get($gw->{admin}, 'GET', '/metrics');
	is($st, 200, '/metrics 200');
	my @bad = grep { !/^#/ && !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.]+(e[+-]?\d+)?|[+-]Inf|NaN)$/ } split /\n/, $body;
	is(scalar @bad, 0, '/metrics: every line is a comment or name{labels} value') or diag(join("\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]));
	like($body, qr/^fleet_gateway_corrupt_frames_total\{protocol="teltonika",reason="[a-z_]+"\} [1-9]/m, '/metrics: corrupt Teltonika frames counted by reason');
	like($body, qr/^fleet_gateway_corrupt_frames_total\{protocol="gt06",reason="bad_crc"\} [1-9]/m, '/metrics: GT06 bad CRC counted');
	like($body, qr/^fleet_gateway_rows_total\{status="duplicate"\} [1-9]/m, '/metrics: duplicates counted');
	like($body, qr/^fleet_gateway_commit_seconds_bucket\{le="\+Inf"\} [1-9]/m, '/metrics: commit latency histogram');
	like($body, qr/^fleet_gateway_batch_rows_count [1-9]/m, '/metrics: batch size histogram');
	like($body, qr/^fleet_gateway_journal_depth 0$/m, '/metrics: journal empty');
	like($body, qr/^fleet_gateway_connections\{protocol="teltonika"\} \d+/m, '/metrics: connections gauge');
	is((http_get($gw->{admin}, 'GET', '/healthz'))[0], 200, '/healthz 200');
	my ($rs, $rb) = http_get($gw->{admin}, 'GET', '/readyz');
	is("$rs $rb", "200 ok\n", '/readyz 200 ok with the database up');
}

# ---------------------------- outage: journal, kill -9, restart, drain
my $jdev = '350000000007701';
my $odev = 'journal-phone-1';
add_devices('teltonika', $jdev);
add_devices('osmand', $odev);
$node->stop('fast');
ok(wait_for(sub { my ($s, $b) = http_get($gw->{admin}, 'GET', '/readyz'); $b eq "journaling\n" }, 30),
	'/readyz says journaling while the database is down')
  or diag(join(' ', http_get($gw->{admin}, 'GET', '/readyz')));
my $base = (int(time) - 600) * 1000;
my %acked;
for my $k (0 .. 9)
{
	my @recs = map { [ $base + $k * 1000 + $_ * 100, 48 + $k / 100, 11 + $_ / 100, 40 + $_, 10 * $_, 500 ] } 0 .. 4;
	my $frame = tlt_avl_hex(@recs);
	# like a device: resend on a fresh connection until acknowledged
	for my $try (1 .. 5)
	{
		my $s = tcp_connect($gw->{teltonika});
		send_hex($s, tlt_login_hex($jdev));
		next unless read_reply($s, 1, 10) eq '01';
		send_hex($s, $frame);
		if (read_reply($s, 4, 10) eq '00000005')
		{
			$acked{"$jdev|$_->[0]"} = 1 for @recs;
			last;
		}
	}
}
for my $k (0 .. 4)
{
	my $ts = int($base / 1000) + 100 + $k;
	my ($st) = http_get($gw->{osmand}, 'GET', "/?id=$odev&lat=50.1&lon=8.6&timestamp=$ts&speed=10");
	$acked{"$odev|" . ($ts * 1000)} = 1 if $st == 200;
}
is(scalar keys %acked, 55, 'database down: 50 Teltonika fixes and 5 OsmAnd fixes acknowledged from the journal');
{
	my ($st, $body) = http_get($gw->{admin}, 'GET', '/metrics');
	like($body, qr/^fleet_gateway_journal_depth [1-9]\d*$/m, 'journal depth > 0 on /metrics');
}
gw_kill9($gw);
$node->start;
$gw = gw_start(dsn => $dsn, dir => $dir, extra => [ '--batch-wait-ms', 300 ]);
ok(wait_for(sub {
	my ($st, $body) = http_get($gw->{admin}, 'GET', '/metrics');
	$body =~ /^fleet_gateway_journal_depth 0$/m && $body =~ /^fleet_gateway_database_connected 1$/m }, 60),
	'after kill -9 and restart the journal drains to empty');
{
	my %stored;
	for my $id ($jdev, $odev)
	{
		$stored{"$id|" . (split /\|/)[0]}++ for @{ rows_of($id) };
	}
	my @missing = grep { !$stored{$_} } sort keys %acked;
	my @extra = grep { !$acked{$_} } sort keys %stored;
	my @twice = grep { $stored{$_} > 1 } keys %stored;
	is(scalar @missing, 0, 'every acknowledged fix is stored') or diag("missing: @missing[0..4]");
	is(scalar @extra, 0, 'nothing stored that was not acknowledged');
	is(scalar @twice, 0, 'each exactly once');
	like(slurp_file($gw->{log}), qr/msg="journal drained"/, 'the log tells the journal was drained');
}

# ---------------------------- SIGTERM answers the frame in flight, exits 0
{
	my $imei = '350000000008801';
	add_devices('teltonika', $imei);
	my $s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex($imei));
	is(read_reply($s, 1, 10), '01', 'SIGTERM case: logged in');
	my $now = int(time) * 1000;
	send_hex($s, tlt_avl_hex([ $now - 1000, 1.5, 2.5, 3, 4, 5 ], [ $now - 500, 1.6, 2.6, 3, 4, 5 ]));
	usleep(100_000);	# the frame is now waiting for its batch (--batch-wait-ms 300)
	kill('TERM', $gw->{pid});
	is(read_reply($s, 4, 10), '00000002', 'SIGTERM: the frame in flight is stored and acknowledged');
	is(gw_stop($gw, 30, 1), 0, 'SIGTERM: fleet-gateway exits 0');
	is(scalar @{ rows_of($imei) }, 2, 'SIGTERM: its 2 rows are stored');
	like(slurp_file($gw->{log}), qr/msg="stopped"/, 'the log says stopped');
}

$node->stop;
done_testing();
