# fleet-sync under AddressSanitizer + UBSan (services/build/asan/fleet-sync,
# built by `make services`) and under valgrind memcheck: a driver app's
# pushes (new, duplicate, out of order), pulls from a full copy to the end,
# refused tokens, malformed, oversized and wrongly typed bodies, /me, an app
# event, the metrics endpoints, a database outage in the middle (503 and
# reconnect), then a clean SIGTERM.  Pass: no sanitizer report, no valgrind
# error or definite leak, exit status 0, and the database holds each
# acknowledged mutation exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/sync/test";
use SyncTest;

my $asan_bin = "$ENV{FLEET_REPO}/services/build/asan/fleet-sync";
my $plain_bin = $SyncTest::BIN;
BAIL_OUT("ASan fleet-sync not built ($asan_bin)") unless -x $asan_bin;
BAIL_OUT("fleet-sync not built ($plain_bin)") unless -x $plain_bin;
my $valgrind = (grep { -x $_ } map { "$_/valgrind" } split /:/, $ENV{PATH})[0];

my $node = fleet_node('sync_sanitizers');
$node->safe_psql('fleet', q{
	SELECT fleet.create_roles();
	CREATE ROLE sync_svc LOGIN IN ROLE fleet_app;
});
my $dsn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=sync_svc';

# one run: a fresh tenant and app, the whole API, an outage, SIGTERM
my $runs = 0;
sub run
{
	my ($label, $bin, $dir) = @_;
	$runs++;
	my $ten = setup_tenant($node, "San$runs", 1, 6);
	my $drv = $ten->{drivers}[0];
	my @stops = @{ $ten->{stops}{$drv} };
	my $t = $ten->{tenant};
	my $client = sprintf('0c000000-0000-4000-8000-%012d', $runs);
	my $token = issue_token($node, $t, $client, $drv);

	local $SyncTest::BIN = $bin;
	my $svc = sync_start(dsn => $dsn, dir => $dir, extra => [ '--rate', 0, '--max-body', 16384,
		'--max-mutations', 20, '--workers', 2, '--report-interval', 1 ]);
	my %acked;
	my $next = 1;
	my $push = sub {
		my (@m) = @_;
		my ($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => \@m });
		if ($st == 200)
		{
			$acked{ $_->{id} } = 1 for @{ $j->{results} };
		}
		return $st;
	};
	my $mut = sub {
		my ($id, $stop, $status) = @_;
		return { id => $id, workflow => 'stop_status', args => { stop_id => $stop + 0, status => $status },
			client_time => '2026-11-29T08:00:00Z' };
	};

	# pushes: new, the same again, one beyond the next expected id
	is($push->(map { $mut->($_, $stops[$_ - 1], 'en_route') } 1 .. 4), 200, "$label: push");
	is($push->(map { $mut->($_, $stops[$_ - 1], 'en_route') } 1 .. 4), 200, "$label: the same push again");
	is($push->($mut->(9, $stops[0], 'arrived')), 409, "$label: out of order: 409");
	is($push->({ id => 5, workflow => 'proof_of_delivery',
		args => { stop_id => $stops[4] + 0, kind => 'signature', metadata => { signer => "X" x 200 } } }), 200,
		"$label: evidence");

	# refusals and bad bodies
	my ($st) = api($svc, 'POST', '/v1/sync/push', 'fst1.1.' . ('0' x 64), { mutations => [ $mut->(6, $stops[5], 'en_route') ] });
	is($st, 401, "$label: wrong token: 401");
	($st) = api($svc, 'POST', '/v1/sync/push', $token, '{"mutations": [{"id": 6, "workflow": ');
	is($st, 400, "$label: truncated JSON: 400");
	($st) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [ { id => 'six', workflow => [], args => 1 } ] });
	is($st, 400, "$label: wrong types: 400");
	($st) = api($svc, 'POST', '/v1/sync/push', $token, '{"mutations": [' . ('{"id": 1},' x 3000) . '{}]}');
	is($st, 413, "$label: oversized body: 413");
	($st) = api($svc, 'POST', '/v1/sync/push', $token, "\x00\xff\xfe" x 100);
	is($st, 400, "$label: binary garbage: 400");

	# /me, an app event, metrics
	($st) = api($svc, 'GET', '/v1/me', $token);
	is($st, 200, "$label: /me");
	($st) = api($svc, 'POST', '/v1/events', $token,
		{ key => "panic-$runs", kind => 'driver.panic', payload => { lat => 52.5, lon => 13.4 } });
	is($st, 200, "$label: app event");
	my ($mst) = admin_get($svc, '/metrics');
	is($mst, 200, "$label: /metrics");

	# the database goes away in the middle: 503, then the service reconnects
	$node->stop('fast');
	($st) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => [ $mut->(6, $stops[5], 'en_route') ] });
	is($st, 503, "$label: database down: 503");
	$node->start;
	ok(wait_until(sub { $push->($mut->(6, $stops[5], 'en_route')) == 200 }, 120),
		"$label: the service reconnects and the retried push is acknowledged");

	# pull everything from a full copy to the end
	my (%rep, $cursor, $pages);
	my $more = 1;
	while ($more && ++$pages < 50)
	{
		my ($pst, $page) = api($svc, 'POST', '/v1/sync/pull', $token, { cursor => $cursor, max => 3 });
		last unless $pst == 200;
		replica_apply(\%rep, $page);
		($cursor, $more) = ($page->{cursor}, $page->{has_more} ? 1 : 0);
	}
	ok(!$more, "$label: pulled to the end in pages");

	is(sync_stop($svc, 120), 0, "$label: SIGTERM: clean exit status 0");

	# every acknowledged mutation is stored exactly once, nothing else is
	my $stored = $node->safe_psql('fleet', qq{
		SELECT fleet.set_tenant($t) \\g /dev/null
		SELECT string_agg(mutation_id::text, ',' ORDER BY mutation_id), count(*) - count(DISTINCT mutation_id)
		  FROM fleet.sync_mutation WHERE client_id = '$client'});
	my ($ids, $doubled) = split /\|/, $stored;
	is($ids, join(',', sort { $a <=> $b } keys %acked), "$label: stored mutations = acknowledged ones");
	is($doubled, 0, "$label: none doubled");
	record_result($label, scalar(keys %acked), scalar(split /,/, $ids // ''), $doubled);
	return;
}

# figures for docs/RELIABILITY.md, in the format the other scenarios use
sub record_result
{
	my ($label, $acked, $stored, $doubled) = @_;
	my $lost = $acked - $stored;
	$lost = 0 if $lost < 0;
	note("checker: acknowledged=$acked stored=$stored lost=$lost doubled=$doubled");
	my $file = $ENV{FLEET_RESULTS} || (($ENV{TESTDIR} || '.') . '/reliability.tsv');
	if (open(my $fh, '>>', $file))
	{
		print $fh join("\t", "fleet-sync under $label", 'one driver app: pushes, pulls, refusals, bad bodies',
			'database stopped and restarted, malformed/oversized/garbage bodies, SIGTERM',
			$acked, $lost, $doubled, '-', $ENV{FLEET_SOAK} ? 'soak' : 'short',
			$label eq 'asan' ? 'ASan+UBSan: no report' : 'valgrind memcheck: no error, no definite leak'), "\n";
		close $fh;
	}
	return;
}

# ---------------------------------------------------------------- ASan
{
	my $dir = PostgreSQL::Test::Utils::tempdir('sync_asan');
	local $ENV{ASAN_OPTIONS} = "detect_leaks=1:halt_on_error=1:abort_on_error=0:log_path=$dir/sanitizer-asan";
	local $ENV{UBSAN_OPTIONS} = "print_stacktrace=1:halt_on_error=1:log_path=$dir/sanitizer-ubsan";
	run('asan', $asan_bin, $dir);
	my @reports = glob("$dir/sanitizer-*");
	is(scalar(@reports), 0, 'ASan/UBSan: no reports') or diag(slurp_file($reports[0]));
	unlike(slurp_file("$dir/sync.log"), qr/runtime error|AddressSanitizer|LeakSanitizer/, 'ASan/UBSan: nothing in the log');
}

# ---------------------------------------------------------------- valgrind
SKIP:
{
	skip 'valgrind not installed', 1 unless $valgrind;
	my $dir = PostgreSQL::Test::Utils::tempdir('sync_vg');
	my $wrap = "$dir/sync-under-valgrind";
	open(my $fh, '>', $wrap) or die;
	print $fh "#!/bin/sh\nexec $valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
	  . " --show-leak-kinds=definite --log-file=$dir/valgrind.log $plain_bin \"\$@\"\n";
	close $fh;
	chmod 0755, $wrap;
	run('valgrind', $wrap, $dir);
	my $log = slurp_file("$dir/valgrind.log");
	is($log =~ s/^==\d+==\s*$//mgr =~ /\S/ ? $log : '', '', 'valgrind: no errors, no definite leaks');
}

$node->stop;
done_testing();
