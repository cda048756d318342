# fleet-gateway under AddressSanitizer + UBSan (services/build/asan, built
# by `make services`) and under valgrind memcheck: a simulated fleet with
# dead zones and re-sends, a database outage (the journal path), bad frames
# on every port and invalid webhook bodies, then a clean SIGTERM.  Pass: no
# sanitizer report, no valgrind error or definite leak, exit status 0, and
# every acknowledged fix stored (checker).
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

my $asan_bin = "$ENV{FLEET_REPO}/services/build/asan/fleet-gateway";
my $plain_bin = $GatewayTest::BIN;
plan skip_all => 'ASan gateway or loadgen not built' unless -x $asan_bin && -x $FleetChaos::LOADGEN;
my $valgrind = (grep { -x $_ } map { "$_/valgrind" } split /:/, $ENV{PATH})[0];

my $node = fleet_node('fleet_sanitizers');
my $n = 2;
chaos_fixture($node, $n);
my ($gw, @runs);
END { kill('KILL', $gw->{pid}) if $gw; }

sub abuse
{
	my $s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex('350000000000000'));
	read_reply($s, 1, 30);
	send_hex($s, '00000000' . '00100000' . ('08' x 5000));		# over --max-frame
	ok(expect_closed($s, 30), 'oversized frame: connection closed');
	$s = tcp_connect($gw->{teltonika});
	send_hex($s, tlt_login_hex('350000000000001'));
	read_reply($s, 1, 30);
	my $pkt = tlt_avl_hex([ (time - 60) * 1000, 52.5, 13.4, 30, 90, 40 ]);
	send_hex($s, substr($pkt, 0, 40));
	close $s;
	$s = tcp_connect($gw->{gt06});
	send_hex($s, '7878ff' . ('ab' x 300) . '0d0a787805010001d9dc0d0a');
	ok(expect_closed($s, 30), 'garbage GT06 frame: connection closed');
	http_get($gw->{osmand}, 'GET', '/?id=%00%27&lat=abc&lon=1e999');
	http_get($gw->{osmand}, 'POST', '/webhook/nobody', 'application/json', '{"positions": [');
	http_get($gw->{osmand}, 'GET', '/' . ('a' x 5000));
	return;
}

# one run: start the gateway (binary or wrapper), fleet + outage + abuse, stop
sub run
{
	my ($label, $bin, $dir, $duration, $earlier) = @_;
	local $GatewayTest::BIN = $bin;
	$gw = gw_start(dsn => $node->connstr('fleet') . ' user=gw', dir => $dir, extra => [ '--writers', 2, '--max-frame', 4096 ]);
	my $lg = loadgen_start($gw, $dir, $label, n => $n, duration => $duration, rate => 100, extra => [ '--resend-pct', 10 ]);
	abuse();
	$node->stop('fast');
	usleep(1_000_000);			# fixes go to the journal meanwhile
	$node->start;
	my $r = loadgen_wait($lg);
	ok(wait_for(sub { (gw_metric($gw, 'fleet_gateway_journal_depth') // 1) == 0 }, 120), "$label: journal drained");
	is(gw_stop($gw, 120), 0, "$label: SIGTERM: clean exit status 0");
	$gw = undef;
	my ($fig, $rc) = fleet_check($node, loadgens => [ @{ $earlier || [] }, $r ]);
	is($rc, 0, "$label: checker ok (every acknowledged fix stored once)");
	record_result(scenario => "gateway under $label", fig => $fig, load => 'fleet-loadgen ' . 3 * $n . ' devices at 100 fixes/s',
		faults => 'database stopped and restarted, oversized/truncated/garbage frames, SIGTERM',
		note => $label eq 'asan' ? 'ASan+UBSan: no report' : 'valgrind memcheck: no error, no definite leak');
	return $r;
}

# ---------------------------------------------------------------- ASan
{
	my $dir = PostgreSQL::Test::Utils::tempdir('asan');
	local $ENV{ASAN_OPTIONS} = "detect_leaks=1:halt_on_error=1:abort_on_error=0:log_path=$dir/sanitizer-asan";
	local $ENV{UBSAN_OPTIONS} = "print_stacktrace=1:halt_on_error=1:log_path=$dir/sanitizer-ubsan";
	push @runs, run('asan', $asan_bin, $dir, 4);
	my @reports = glob("$dir/sanitizer-*");
	is(scalar(@reports), 0, 'ASan/UBSan: no reports') or diag(slurp_file($reports[0]));
	unlike(slurp_file("$dir/gateway.log"), qr/runtime error|AddressSanitizer|LeakSanitizer/, 'ASan/UBSan: nothing in the log');
}

# ---------------------------------------------------------------- valgrind
SKIP:
{
	skip 'valgrind not installed', 5 unless $valgrind;
	my $dir = PostgreSQL::Test::Utils::tempdir('vg');
	my $wrap = "$dir/gateway-under-valgrind";
	open(my $fh, '>', $wrap) or die;
	print $fh "#!/bin/sh\nexec $valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
	  . " --show-leak-kinds=definite --log-file=$dir/valgrind.log $plain_bin \"\$@\"\n";
	close $fh;
	chmod 0755, $wrap;
	run('valgrind', $wrap, $dir, 3, \@runs);
	my $log = slurp_file("$dir/valgrind.log");
	is($log =~ s/^==\d+==\s*$//mgr =~ /\S/ ? $log : '', '', 'valgrind: no errors, no definite leaks');
}

$node->stop;
done_testing();
