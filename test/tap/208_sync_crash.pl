# Crash scenario for the driver-app sync service: several simulated driver
# apps push their mutations through fleet-sync (HTTP, bearer tokens) without
# pause while (a) single backends serving fleet-sync are killed, with
# kill -9 (the postmaster then restarts every session) and with
# pg_terminate_backend, and (b) the postmaster itself is killed with kill -9
# and restarted.  The apps behave like real ones: a page is retried until it
# gets a definitive answer (200, or a 4xx other than 409 out_of_order, which
# means resend from expected_id), and every mutation id answered 200 goes
# into the app's ack log.  fleet-sync reconnects by itself.  Afterwards the
# checker (kind sync_mutation) finds every acknowledged mutation stored
# exactly once and nothing stored that was never sent, and each app's copy
# built from /v1/sync/pull equals fleet.sync_scope for its driver.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use POSIX ();
use FleetTest;
use FleetChaos;
use lib "$ENV{FLEET_REPO}/services/sync/test";
use SyncTest;

plan skip_all => "fleet-sync not built ($SyncTest::BIN)" unless -x $SyncTest::BIN;

my $APPS = soak(4, 8);
my $PAGE = 20;
my $STOPS = 12;
my $ROUNDS = soak(1, 5);

my $node = fleet_node('fleet_sync_crash', conf => "fsync = on\nrestart_after_crash = on\n");
is($node->safe_psql('fleet', "SELECT current_setting('fsync') || current_setting('full_page_writes') || current_setting('synchronous_commit')"),
	'ononon', 'durability settings are on (fsync, full_page_writes, synchronous_commit)');
$node->safe_psql('fleet', q{
	SELECT fleet.create_roles();
	CREATE ROLE sync_svc LOGIN IN ROLE fleet_app;
});
my $dir = PostgreSQL::Test::Utils::tempdir('synccrash');
my $ten = setup_tenant($node, 'Crash', $APPS, $STOPS);
my @apps;
for my $k (0 .. $APPS - 1)
{
	my $driver = $ten->{drivers}[$k];
	my $client = sprintf('0c000000-0000-4000-8000-%012d', $k + 1);
	push @apps, { k => $k, driver => $driver, client => $client, stops => $ten->{stops}{$driver},
		token => issue_token($node, $ten->{tenant}, $client, $driver) };
}

my $dsn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=fleet user=sync_svc connect_timeout=2';
my $svc;
my @kids;
END
{
	kill('KILL', $_) for @kids;
	kill('KILL', $svc->{pid}) if $svc && $svc->{pid};
}
$svc = sync_start(dsn => $dsn, dir => $dir, extra => [ '--rate', 0, '--workers', 3 ]);

# ------------------------------------------------------------- the apps
# Mutation i of an app is a function of i alone, so a resend from any id
# carries the same content: mostly route adjustments (increasing clocks),
# every 7th a stop status, every 5th a proof of delivery.
# the app's clocks: from the server's now on (a clock later than now +
# fleet.future_margin would be rejected), the counter increasing
my $hlc0 = $node->safe_psql('fleet', 'SELECT (extract(epoch FROM now()) * 1000)::bigint');
my @status = qw(en_route arrived completed);
sub mutation
{
	my ($app, $i) = @_;
	my $stop = $app->{stops}[ $i % @{ $app->{stops} } ] + 0;
	return { id => $i, workflow => 'proof_of_delivery', client_time => '2026-01-01T10:00:00Z',
		args => { stop_id => $stop, kind => 'note', metadata => { n => $i } } } if $i % 5 == 0;
	return { id => $i, workflow => 'stop_status', args => { stop_id => $stop, status => $status[ ($i / 7) % 3 ] } }
	  if $i % 7 == 0;
	return { id => $i, workflow => 'stop_adjust', hlc => "$hlc0:$i",
		args => { stop_id => $stop, fields => { address => "Adjusted $i" } } };
}

# One app: push pages until $dir/stop exists, each page retried until it
# gets a definitive answer.  Logs: $name.sent and $name.acked (client id,
# mutation id), $name.out (a summary line).
sub run_app
{
	my ($app) = @_;
	my $name = "$dir/app$app->{k}";
	open(my $sent, '>', "$name.sent") or die;
	open(my $acked, '>', "$name.acked") or die;
	$_->autoflush(1) for $sent, $acked;
	my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 120);
	my $s = { port => $svc->{port}, http => $http };
	my %c = (pages => 0, retries => 0, resends => 0, definitive_errors => 0, gave_up => 0, acked => 0);
	my $next = 1;
	while (!-e "$dir/stop")
	{
		my @page = map { mutation($app, $_) } $next .. $next + $PAGE - 1;
		print $sent "$app->{client}\t$_->{id}\n" for @page;
		my $deadline = time + 300;
		for (;;)
		{
			my ($st, $j, $raw) = api($s, 'POST', '/v1/sync/push', $app->{token}, { mutations => \@page });
			if ($st == 200)
			{
				print $acked "$app->{client}\t$_->{id}\n" for @{ $j->{results} };
				$c{acked} += @{ $j->{results} };
				$c{pages}++;
				$next = $page[-1]{id} + 1;
				last;
			}
			if ($st == 409 && $j && ($j->{error} // '') eq 'out_of_order')
			{
				$c{resends}++;
				$next = $j->{expected_id};
				last;
			}
			if ($st >= 400 && $st < 500 && $st != 409)
			{
				$c{definitive_errors}++;
				print STDERR "app $app->{k}: definitive $st $raw\n";
				last;
			}
			# 503 (unavailable, outcome_unknown), 5xx, a dropped connection
			# (HTTP::Tiny's 599): the app retries the same page
			$c{retries}++;
			if (time > $deadline) { $c{gave_up}++; last; }
			usleep(200_000);
		}
		last if $c{definitive_errors} || $c{gave_up};
	}
	open(my $out, '>', "$name.out") or die;
	print $out join(' ', map { "$_=$c{$_}" } sort keys %c), "\n";
	close $out;
	return;
}

for my $app (@apps)
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDERR, '>', "$dir/app$app->{k}.err");
		eval { run_app($app); 1 } or print STDERR "app died: $@";
		POSIX::_exit(0);		# no END blocks of the parent in the child
	}
	push @kids, $pid;
}

sub stored
{
	my $n = $node->safe_psql('fleet', 'SELECT count(*) FROM fleet.sync_mutation');
	return $n;
}

# Wait until the server answers and fleet-sync has stored more than $min
# mutations since (it reconnected by itself).
sub progress_after
{
	my ($min) = @_;
	return wait_until(sub {
		$node->psql('fleet', "SELECT 1/(count(*) > $min)::int FROM fleet.sync_mutation") == 0 }, 180);
}

# --------------------------------------------------------------- faults
my @recovery;
ok(progress_after(10 * $PAGE), 'the apps are pushing');
for my $round (1 .. $ROUNDS)
{
	# (a) kill -9 of one backend serving fleet-sync
	my @b;
	ok(wait_until(sub { @b = backend_pids($node, 'sync_svc'); @b > 0 }, 120), "round $round: fleet-sync connected");
	my $before = stored();
	my $t = time;
	kill('KILL', $b[0]);
	ok(progress_after($before), "round $round: after kill -9 of a backend fleet-sync stores again");
	push @recovery, time - $t;

	# (a') pg_terminate_backend of one backend serving fleet-sync
	ok(wait_until(sub { @b = backend_pids($node, 'sync_svc'); @b > 0 }, 120), "round $round: fleet-sync reconnected");
	$before = stored();
	$t = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($b[0])"), 't', "round $round: pg_terminate_backend");
	ok(progress_after($before), "round $round: after pg_terminate_backend fleet-sync stores again");
	push @recovery, time - $t;

	# (b) kill -9 of the postmaster, then a restart (crash recovery)
	$before = stored();
	$t = time;
	crash_and_restart($node);
	ok(progress_after($before), "round $round: after kill -9 of the postmaster fleet-sync reconnects and stores again");
	push @recovery, time - $t;
}
# some more load after the last fault, then the apps finish their page
ok(progress_after(stored() + 10 * $PAGE), 'pushes continue after the faults');
open(my $fh, '>', "$dir/stop") or die;
close $fh;
waitpid($_, 0) for @kids;
@kids = ();

my (%tot, @acked, @sent);
for my $app (@apps)
{
	my $name = "$dir/app$app->{k}";
	my $out = -e "$name.out" ? slurp_file("$name.out") : '';
	my $err = -s "$name.err" ? slurp_file("$name.err") : '';
	note("app $app->{k}: $out$err");
	my %c = $out =~ /(\w+)=(\d+)/g;
	ok(defined $c{acked}, "app $app->{k} finished");
	$tot{$_} += $c{$_} // 0 for qw(acked pages retries resends definitive_errors gave_up);
	push @acked, "sync_mutation:$name.acked";
	push @sent, "sync_mutation:$name.sent";
}
is($tot{definitive_errors}, 0, 'no page was refused (every page ended in 200)');
is($tot{gave_up}, 0, 'no app gave up on a page');
cmp_ok($tot{retries}, '>', 0, "the faults were seen by the apps ($tot{retries} retries)");
note("apps: $tot{pages} pages, $tot{acked} answers, $tot{retries} retries, $tot{resends} resends from expected_id");
ok(wait_until(sub { my ($st, $b) = admin_get($svc, '/metrics');
	$st == 200 && $b =~ /^fleet_sync_database_connections (\d+)/m && $1 > 0 }, 120),
	'fleet-sync reports its database connections up');

# ------------------------------------------------------------- checker
my ($fig, $rc) = fleet_check($node, acked => \@acked, sent => \@sent);
is($rc, 0, 'checker: ok');
cmp_ok($fig->{acknowledged} // 0, '>', 0, "checker: $fig->{acknowledged} mutations acknowledged");
is($fig->{lost}, 0, 'zero acknowledged mutations lost');
is($fig->{doubled}, 0, 'none stored twice');
is($fig->{phantom}, 0, 'nothing stored that was never sent');

# ------------------------------------- each app's copy is the server's
for my $app (@apps)
{
	my (%replica, $cursor, $last);
	my $ok = wait_until(sub {
		my ($st, $j) = api($svc, 'POST', '/v1/sync/pull', $app->{token}, { cursor => $cursor, max => 100 });
		return 0 unless $st == 200;
		replica_apply(\%replica, $j);
		$cursor = $j->{cursor};
		$last = $j;
		return !$j->{has_more};
	}, 120);
	ok($ok, "app $app->{k}: pulled to the end");
	my $server = $node->safe_psql('fleet', qq{
		SELECT fleet.set_tenant($ten->{tenant}) \\g /dev/null
		SELECT jsonb_object_agg(entity || ':' || entity_id, data)::text FROM fleet.sync_scope($app->{driver})});
	is($SyncTest::JSON->encode(\%replica), $SyncTest::JSON->encode($SyncTest::JSON->decode($server)),
		"app $app->{k}: its pulled copy equals fleet.sync_scope for its driver");
	is($last->{last_mutation_id}, $node->safe_psql('fleet', qq{
		SELECT fleet.set_tenant($ten->{tenant}) \\g /dev/null
		SELECT max(mutation_id) FROM fleet.sync_mutation WHERE client_id = '$app->{client}'}),
		"app $app->{k}: the pull reports its last stored mutation");
}

my ($rmax) = sort { $b <=> $a } @recovery;
record_result(scenario => 'sync crash: kill -9/terminate backend + postmaster', fig => $fig, recovery => $rmax,
	load => "$APPS driver apps through fleet-sync, pages of $PAGE",
	faults => "$ROUNDS x (kill -9 backend, pg_terminate_backend, kill -9 postmaster)",
	note => "$tot{retries} page retries by the apps");

is(sync_stop($svc), 0, 'fleet-sync stops cleanly on SIGTERM');
$svc = undef;
$node->stop;
done_testing();
