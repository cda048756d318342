# The sync service end to end with a real HTTP client: a driver app's
# offline backlog of 5,000 mutations pushed in pages of 250 through
# fleet-sync, with every request sent twice, pages reordered (the early
# page is refused with 409 and the id expected next), mutations naming
# another tenant's and another driver's stops, and the database restarted
# (immediate shutdown) while a push is in flight.  Afterwards the database
# holds each mutation once (one row, one trail event, one evidence row per
# applied proof of delivery), the other tenant is untouched, and the app's
# copy built from HTTP pulls (a full copy midway, then the cursor onwards)
# equals the server's scope for its driver.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FleetTest;
use lib "$ENV{FLEET_REPO}/services/sync/test";
use SyncTest;

plan skip_all => "fleet-sync not built ($SyncTest::BIN)" unless -x $SyncTest::BIN;

my $TOTAL = 5000;
my $PAGE = 250;
my $node = fleet_node('sync_service_backlog');
my $dir = PostgreSQL::Test::Utils::tempdir('syncsvc');
$node->safe_psql('fleet', q{
	SELECT fleet.create_roles();
	CREATE ROLE sync_svc LOGIN IN ROLE fleet_app;
});
my $a = setup_tenant($node, 'Alpha', 2, 40);
my $b = setup_tenant($node, 'Beta', 1, 10);
my ($drv, $other) = @{ $a->{drivers} };
my @my_stops = @{ $a->{stops}{$drv} };
my @other_stops = @{ $a->{stops}{$other} };
my @beta_stops = @{ $b->{stops}{ $b->{drivers}[0] } };
my $client = '0a000000-0000-4000-8000-000000000001';
my $token = issue_token($node, $a->{tenant}, $client, $drv);
like($token, qr/^fst1\.$a->{tenant}\.[0-9a-f]{64}$/, 'token issued');
my $beta_before = $node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($b->{tenant}) \\g /dev/null
	SELECT string_agg(stop_id || ':' || version || ':' || address || ':' || status, ',' ORDER BY stop_id) FROM fleet.stop
	 WHERE tenant_id = $b->{tenant}});

my $dsn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=sync_svc';
my $svc = sync_start(dsn => $dsn, dir => $dir, extra => [ '--rate', 0, '--workers', 3 ]);

# ---------------------------------------------------------- the backlog
# mutation i: mostly route adjustments (lww_hlc, increasing clocks), every
# 5th a proof of delivery, every 7th a status, and a few naming stops
# that are not the driver's (another tenant's: not_found; another
# driver's: not_in_scope).
# the app's clocks: from the server's now on (a clock later than now +
# fleet.future_margin would be rejected), the counter increasing
my $hlc0 = $node->safe_psql('fleet', 'SELECT (extract(epoch FROM now()) * 1000)::bigint');
my %kind;
my @muts;
my @status = qw(en_route arrived completed);
for my $i (1 .. $TOTAL)
{
	my $stop = $my_stops[ $i % @my_stops ];
	my $m;
	if ($i % 401 == 0)
	{
		$m = { id => $i, workflow => 'stop_status', args => { stop_id => $beta_stops[ $i % @beta_stops ] + 0, status => 'completed' } };
		$kind{$i} = 'beta';
	}
	elsif ($i % 503 == 0)
	{
		$m = { id => $i, workflow => 'stop_status', args => { stop_id => $other_stops[ $i % @other_stops ] + 0, status => 'arrived' } };
		$kind{$i} = 'other';
	}
	elsif ($i % 5 == 0)
	{
		$m = { id => $i, workflow => 'proof_of_delivery',
			args => { stop_id => $stop + 0, kind => 'note', metadata => { n => $i } }, client_time => '2026-01-01T10:00:00Z' };
		$kind{$i} = 'pod';
	}
	elsif ($i % 7 == 0)
	{
		$m = { id => $i, workflow => 'stop_status', args => { stop_id => $stop + 0, status => $status[ ($i / 7) % 3 ] } };
		$kind{$i} = 'status';
	}
	else
	{
		$m = { id => $i, workflow => 'stop_adjust', hlc => "$hlc0:$i",
			args => { stop_id => $stop + 0, fields => { address => "Adjusted $i" } } };
		$kind{$i} = 'adjust';
	}
	push @muts, $m;
}
my @pages;
push @pages, [ @muts[ $_ * $PAGE .. ($_ + 1) * $PAGE - 1 ] ] for 0 .. $TOTAL / $PAGE - 1;

my (%result, $dup_mismatch, $resent_not_dup, $bad_status);
$dup_mismatch = $resent_not_dup = $bad_status = 0;

# Push a page until it is answered 200 (a 503 is retried, as an app would);
# returns the decoded answer.
sub push_page
{
	my ($p, $what) = @_;
	my ($st, $j, $raw, $h);
	for my $try (1 .. 600)
	{
		($st, $j, $raw, $h) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => $pages[$p] });
		return $j if $st == 200;
		if ($st == 503)
		{
			$bad_status++ unless defined $h->{'retry-after'};
			select(undef, undef, undef, 0.2);
			next;
		}
		$bad_status++;
		diag("page $p ($what): $st $raw");
		return undef;
	}
	return undef;
}

# Each page pushed twice; the second answer must be all duplicates with
# the stored results of the first.
sub push_twice
{
	my ($p) = @_;
	my $first = push_page($p, 'first');
	my $second = push_page($p, 'again');
	return unless $first && $second;
	for my $k (0 .. $#{ $first->{results} })
	{
		my ($r1, $r2) = ($first->{results}[$k], $second->{results}[$k]);
		$result{ $r1->{id} } //= $r1->{result} eq 'duplicate' ? $r1->{stored}{result} : $r1->{result};
		$resent_not_dup++ unless $r2->{result} eq 'duplicate';
		$dup_mismatch++ unless $SyncTest::JSON->encode($r1->{stored}) eq $SyncTest::JSON->encode($r2->{stored});
	}
	return $first;
}

# pages 0-3 in order
push_twice($_) for 0 .. 3;

# reordered: page 5 arrives before page 4
{
	my ($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => $pages[5] });
	is($st, 409, 'a page ahead of the next expected id: 409');
	is($j->{error}, 'out_of_order', '... error out_of_order');
	is($j->{expected_id}, 4 * $PAGE + 1, '... names the id expected next');
	($st) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => $pages[5] });
	is($st, 409, '... and again (sent twice)');
}
push_twice(4);
push_twice(5);

# a page with its mutations in reverse order is processed in id order
{
	my @rev = reverse @{ $pages[6] };
	my ($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => \@rev });
	is($st, 200, 'a page in reverse order is accepted');
	is(scalar(grep { $_->{result} ne 'duplicate' } @{ $j->{results} }), $PAGE, '... every mutation of it processed');
	$result{ $_->{id} } //= $_->{result} for @{ $j->{results} };
	($st, $j) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => \@rev });
	is(scalar(grep { $_->{result} eq 'duplicate' } @{ $j->{results} }), $PAGE, '... and all duplicates the second time');
}
push_twice($_) for 7 .. 9;

# a full copy midway, through HTTP pulls
my %replica;
my $cursor;
sub pull_all
{
	my $pages = 0;
	for (;;)
	{
		my ($st, $j, $raw) = api($svc, 'POST', '/v1/sync/pull', $token, { cursor => $cursor, max => 100 });
		if ($st == 503) { select(undef, undef, undef, 0.2); next; }
		die "pull: $st $raw" unless $st == 200;
		replica_apply(\%replica, $j);
		$cursor = $j->{cursor};
		$pages++;
		return $j unless $j->{has_more};
	}
}
my $mid = pull_all();
is($mid->{last_mutation_id}, 10 * $PAGE, 'midway pull: last processed mutation id');

# --------------------------------------- the database restarted mid-push
# Hold the client's row so page 10's push waits inside sync_push, then
# shut the database down immediately while it waits.
my ($in, $out, $err) = ('', '', '');
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('fleet') ],
	'<', \$in, '>', \$out, '2>', \$err);
$in .= "BEGIN;\nSELECT 'locked' FROM fleet.sync_client WHERE client_id = '$client' FOR UPDATE;\n";
ok(wait_until(sub { $locker->pump_nb; $out =~ /locked/ }, 60), 'client row locked by another session');
my $child = fork();
die 'fork' unless defined $child;
if ($child == 0)
{
	my ($st, $j, $raw, $h) = api($svc, 'POST', '/v1/sync/push', $token, { mutations => $pages[10] }, fresh => 1);
	open(my $fh, '>', "$dir/inflight") or POSIX::_exit(1);
	print $fh "$st " . ($h->{'retry-after'} // '-') . " $raw\n";
	close $fh;
	POSIX::_exit(0);
}
ok(wait_until(sub {
	$node->safe_psql('fleet', q{SELECT count(*) FROM pg_stat_activity
		WHERE usename = 'sync_svc' AND wait_event_type = 'Lock'}) > 0 }, 60),
	'the push waits inside the database');
$node->stop('immediate');
waitpid($child, 0);
$locker->kill_kill;
my $inflight = slurp_file("$dir/inflight");
like($inflight, qr/^503 \d+ /, 'the push in flight is answered 503 with Retry-After');
like($inflight, qr/outcome_unknown|unavailable/, '... saying the outcome is unknown');
$node->start;
push_twice(10);
is(scalar(grep { $result{$_} eq 'duplicate' } (10 * $PAGE + 1 .. 11 * $PAGE)), 0,
	'the retried page was not stored by the interrupted push (no duplicates on its first success)');
push_twice($_) for 11 .. $#pages;

is($bad_status, 0, 'every push answered 200, or 503 with Retry-After');
is($resent_not_dup, 0, 'every re-sent mutation answered duplicate');
is($dup_mismatch, 0, 'duplicates return the stored result of the first answer');
is(scalar(keys %result), $TOTAL, 'every mutation got a result');
is(scalar(grep { $result{$_} eq 'rejected' && $kind{$_} eq 'beta' } keys %result),
	scalar(grep { $kind{$_} eq 'beta' } keys %kind), "another tenant's stops: rejected");
is(scalar(grep { $result{$_} eq 'rejected' && $kind{$_} eq 'other' } keys %result),
	scalar(grep { $kind{$_} eq 'other' } keys %kind), "another driver's stops: rejected");

# --------------------------------------------------- the database side
my $t = $a->{tenant};
my $row = $node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($t) \\g /dev/null
	SELECT count(*), count(DISTINCT mutation_id), min(mutation_id), max(mutation_id), sum(duplicates) >= $TOTAL,
	       (SELECT last_mutation_id FROM fleet.sync_client WHERE client_id = '$client'),
	       count(*) FILTER (WHERE reason IN ('not_found')), count(*) FILTER (WHERE reason = 'not_in_scope')
	  FROM fleet.sync_mutation WHERE client_id = '$client'});
my $nbeta = grep { $kind{$_} eq 'beta' } keys %kind;
my $nother = grep { $kind{$_} eq 'other' } keys %kind;
is($row, "$TOTAL|$TOTAL|1|$TOTAL|t|$TOTAL|$nbeta|$nother", 'each mutation stored once, ids 1..5000, duplicates counted');
is($node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($t) \\g /dev/null
	SELECT count(*), count(DISTINCT idem_key) FROM fleet.event_log WHERE source = 'sync' AND idem_key LIKE '$client:%'}),
	"$TOTAL|$TOTAL", 'one trail event per mutation');
is($node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($t) \\g /dev/null
	SELECT (SELECT count(*) FROM fleet.proof_of_delivery p WHERE p.driver_id = $drv)
	     = (SELECT count(*) FROM fleet.sync_mutation m WHERE m.client_id = '$client' AND m.workflow = 'proof_of_delivery'
	         AND m.result IN ('applied', 'merged'))
	   AND (SELECT count(*) FROM fleet.proof_of_delivery p WHERE p.driver_id = $drv) > 0}),
	't', 'one evidence row per applied proof of delivery');
is($node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($b->{tenant}) \\g /dev/null
	SELECT string_agg(stop_id || ':' || version || ':' || address || ':' || status, ',' ORDER BY stop_id) FROM fleet.stop
	 WHERE tenant_id = $b->{tenant}}),
	$beta_before, "the other tenant's stops are unchanged");
is($node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($b->{tenant}) \\g /dev/null
	SELECT (SELECT count(*) FROM fleet.sync_mutation WHERE tenant_id = $b->{tenant})
	     + (SELECT count(*) FROM fleet.proof_of_delivery WHERE tenant_id = $b->{tenant})}),
	'0', "nothing was written into the other tenant");

# ---------------------------------------- the app's copy is the server's
my $last = pull_all();
is($last->{last_mutation_id}, $TOTAL, 'final pull: every mutation processed');
my $server = $node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($t) \\g /dev/null
	SELECT jsonb_object_agg(entity || ':' || entity_id, data)::text FROM fleet.sync_scope($drv)});
is($SyncTest::JSON->encode(\%replica), $SyncTest::JSON->encode($SyncTest::JSON->decode($server)),
	"the app's copy (full copy midway, then the cursor onwards) equals the server's scope");
ok(scalar(keys %replica) == 40 + 2, '... 40 stops, the job and the vehicle');

is(sync_stop($svc), 0, 'fleet-sync stops cleanly on SIGTERM');
$node->stop;
done_testing();
