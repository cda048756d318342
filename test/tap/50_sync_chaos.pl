# Offline sync under chaos: 200 simulated driver apps go offline and online
# over several rounds, write offline (status, evidence, inspections, route
# adjustments, stale and backward writes), push with requests dropped,
# duplicated and reordered, while a dispatcher reassigns, edits and cancels
# stops concurrently and backends are killed mid-push.  After each run:
#   - no mutation lost or applied twice (every generated mutation processed
#     once, with its payload, one trail event each, evidence rows exactly
#     once),
#   - every app's pulled copy equals the server's scope query for its driver,
#   - conflict records complete (every merge has its record, every review
#     asked for exists),
#   - the same seed gives the same final state hash in every interleaving.
# Seeds x repetitions (default 4 x 5 = 20 interleavings) can be raised for
# a longer run: SYNC_CHAOS_SEEDS=1,2,3,... SYNC_CHAOS_REPEAT=n
# SYNC_CHAOS_DEVICES=n SYNC_CHAOS_ROUNDS=n; SYNC_CHAOS_DEBUG=1 writes each app's known stops per round
# to tmp_check (known_<seed>_<run>_r<round>) to find where two runs diverge.
#
# Determinism despite concurrency: within a round the apps that are online
# push only to stops they hold, and the dispatcher acts only on stops of
# apps that are offline and that no online app writes to; rounds are
# separated by barriers.  Which writes race is thus fixed by the seed;
# how they interleave (and where backends die) is not.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;
use JSON::PP;
use IPC::Run;
use POSIX qw(_exit strftime);
use Time::HiRes qw(usleep time);

my $DEVICES = $ENV{SYNC_CHAOS_DEVICES} // 200;
my $ROUNDS  = $ENV{SYNC_CHAOS_ROUNDS}  // 3;
my @SEEDS   = split /,/, ($ENV{SYNC_CHAOS_SEEDS} // '11,12,13,14');
my $REPEAT  = $ENV{SYNC_CHAOS_REPEAT}  // 5;
my $WORKERS = 8;
my $JOBS_PER_DRIVER = 1;
my $STOPS_PER_JOB = 3;

my $node = fleet_node('sync_chaos', conf => "max_connections = 80\ndeadlock_timeout = 50ms\n");
my $db = 'fleet';
my $json = JSON::PP->new->canonical(1);
my %retries = (pull => 0);
my $killfile = "$PostgreSQL::Test::Utils::tmp_check/sync_chaos_kills";
my $stopfile = "$PostgreSQL::Test::Utils::tmp_check/sync_chaos_stop";
unlink $killfile;

$node->safe_psql($db, q{
CREATE TABLE public.chaos_replica (tenant_id bigint, client uuid, entity text, id bigint, data jsonb,
	PRIMARY KEY (tenant_id, client, entity, id));
CREATE TABLE public.chaos_cursor (tenant_id bigint, client uuid, cursor text, round int, PRIMARY KEY (tenant_id, client));
CREATE TABLE public.chaos_sent (tenant_id bigint, client uuid, id bigint, workflow text, args jsonb,
	PRIMARY KEY (tenant_id, client, id));
CREATE FUNCTION public.chaos_pull(p_client uuid, p_round int) RETURNS int LANGUAGE plpgsql AS $f$
DECLARE r jsonb; c jsonb; v_cursor text; n int := 0; t bigint := fleet.current_tenant();
BEGIN
	SELECT x.cursor INTO v_cursor FROM public.chaos_cursor x WHERE x.tenant_id = t AND x.client = p_client;
	LOOP
		r := fleet.sync_pull(p_client, v_cursor, 50);
		n := n + 1;
		FOR c IN SELECT * FROM jsonb_array_elements(r -> 'changes') LOOP
			IF c ->> 'op' = 'clear' THEN
				DELETE FROM public.chaos_replica x WHERE x.tenant_id = t AND x.client = p_client;
			ELSIF c ->> 'op' = 'del' THEN
				DELETE FROM public.chaos_replica x WHERE x.tenant_id = t AND x.client = p_client
				   AND x.entity = c ->> 'entity' AND x.id = (c ->> 'id')::bigint;
			ELSE
				INSERT INTO public.chaos_replica VALUES (t, p_client, c ->> 'entity', (c ->> 'id')::bigint, c -> 'data')
				ON CONFLICT (tenant_id, client, entity, id) DO UPDATE SET data = EXCLUDED.data;
			END IF;
		END LOOP;
		v_cursor := r ->> 'cursor';
		EXIT WHEN NOT (r ->> 'has_more')::boolean;
	END LOOP;
	INSERT INTO public.chaos_cursor VALUES (t, p_client, v_cursor, p_round)
	ON CONFLICT (tenant_id, client) DO UPDATE SET cursor = EXCLUDED.cursor, round = EXCLUDED.round;
	RETURN n;
END $f$;
});

# ------------------------------------------------------------ helpers

# MINSTD: small, exact in Perl numbers, the same everywhere.
sub rng_new { my $s = shift; $s = ($s % 2147483646) + 1; return \$s; }
sub rng { my ($r, $n) = @_; $$r = ($$r * 48271) % 2147483647; return $$r % $n; }

sub client_uuid { return sprintf('00000000-0000-0000-0000-%012d', shift); }

# Run a SQL script with psql; errors do not stop it.  Returns (exit, stdout).
sub run_sql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my @cmd = ('psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0', '-d', $node->connstr($db), '-f', '-');
	IPC::Run::run(\@cmd, '<', \$sql, '>', \$out, '2>', \$err);
	return ($? >> 8, $out);
}

sub fork_child
{
	my ($code) = @_;
	my $pid = fork();
	die "fork failed" unless defined $pid;
	if ($pid == 0)
	{
		eval { $code->(); };
		_exit(0);    # never run the parent's END blocks (they stop the node)
	}
	return $pid;
}

# Apps pull in parallel, each until it has no more pages.  A pull delivers
# what lies below the oldest running transaction of the cluster (background
# workers included), so first wait until every transaction that started
# before this barrier has ended: then each app's copy is the state at the
# barrier, the same in every interleaving.
sub pull_all
{
	my ($ctx, $tenant, $round, @devs) = @_;
	my $barrier = $node->safe_psql($db, 'SELECT pg_snapshot_xmax(pg_current_snapshot())');
	for (1 .. 6000)
	{
		last if $node->safe_psql($db, "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= '$barrier'::xid8") eq 't';
		usleep(10_000);
	}
	my @pids;
	for my $w (0 .. $WORKERS - 1)
	{
		my @mine = grep { $_ % $WORKERS == $w } @devs;
		next unless @mine;
		push @pids, fork_child(sub {
			my ($rc) = run_sql($ctx . join('', map { "SELECT public.chaos_pull('" . client_uuid($_) . "', $round);\n" } @mine));
		});
	}
	waitpid($_, 0) for @pids;
	# a pull that failed (connection refused under load) is done again
	for my $try (1 .. 5)
	{
		my %done = map { $_ => 1 } split /\n/, $node->safe_psql($db,
			"SELECT right(client::text, 12)::int FROM public.chaos_cursor WHERE tenant_id = $tenant AND round = $round");
		my @missing = grep { !$done{$_} } @devs;
		last unless @missing;
		$retries{pull} += @missing;
		run_sql($ctx . join('', map { "SELECT public.chaos_pull('" . client_uuid($_) . "', $round);\n" } @missing));
	}
	return;
}

sub client_time
{
	my ($round, $k, $i) = @_;
	return strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(1767225600 + $round * 3600 + $k * 60 + $i));
}

# ------------------------------------------------------------ one run

sub run_once
{
	my ($seed, $rep) = @_;
	my $t0 = time;
	my $tenant = $node->safe_psql($db, "SELECT fleet.create_tenant('chaos-$seed-$rep')");
	my $ctx = "SELECT fleet.set_tenant($tenant);\n";
	$node->safe_psql($db, $ctx . qq{
		INSERT INTO fleet.driver (tenant_id, code, name)
		SELECT $tenant, 'd' || lpad(g::text, 3, '0'), 'Driver ' || g FROM generate_series(1, $DEVICES) g;
		INSERT INTO fleet.vehicle (tenant_id, code) SELECT $tenant, 'v' || g FROM generate_series(1, 20) g;
		INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
		SELECT $tenant, 'J' || lpad(g::text, 3, '0'), d.driver_id, v.vehicle_id, 'assigned'
		  FROM generate_series(1, $DEVICES) g
		  JOIN fleet.driver d ON d.tenant_id = $tenant AND d.code = 'd' || lpad(g::text, 3, '0')
		  JOIN fleet.vehicle v ON v.tenant_id = $tenant AND v.code = 'v' || (g % 20 + 1);
		INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
		SELECT $tenant, j.job_id, s, j.driver_id, j.code || '/' || s
		  FROM fleet.job j, generate_series(1, $STOPS_PER_JOB) s WHERE j.tenant_id = $tenant;
		SELECT count(fleet.sync_register_client(('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, d.driver_id))
		  FROM generate_series(1, $DEVICES) g
		  JOIN fleet.driver d ON d.tenant_id = $tenant AND d.code = 'd' || lpad(g::text, 3, '0');
	});
	my %driver_code = map { $_ => sprintf('d%03d', $_) } 1 .. $DEVICES;
	my @phase = (sprintf('setup %.1f', time - $t0));

	my $rng = rng_new($seed);
	my %queue;     # device -> [ {id, json} ] not yet acknowledged
	my %sent;      # device -> [ json ] every mutation generated, by id - 1
	my %nextid = map { $_ => 1 } 1 .. $DEVICES;

	for my $round (0 .. $ROUNDS)
	{
		my $final = $round == $ROUNDS;
		my %online = map { $_ => ($final || rng($rng, 100) < 60) ? 1 : 0 } 1 .. $DEVICES;
		my @on = grep { $online{$_} } 1 .. $DEVICES;

		# Phase A: online apps catch up (nobody writes meanwhile).
		my $tp = time;
		pull_all($ctx, $tenant, $round, @on);
		push @phase, sprintf('r%d pull %.1f', $round, time - $tp);
		$tp = time;

		# What each app knows: its copy's stops, by (job code, seq).
		my %known;
		my $rows = $node->safe_psql($db, qq{
			SELECT right(s.client::text, 12)::int, s.id, j.data ->> 'code', s.data ->> 'seq', s.data ->> 'status', s.data ->> 'version'
			  FROM public.chaos_replica s
			  JOIN public.chaos_replica j ON j.tenant_id = s.tenant_id AND j.client = s.client AND j.entity = 'job'
			                             AND j.id = (s.data ->> 'job_id')::bigint
			 WHERE s.tenant_id = $tenant AND s.entity = 'stop'
			 ORDER BY 1, 3, (s.data ->> 'seq')::int});
		for my $line (split /\n/, $rows)
		{
			my ($dev, $id, $code, $seq, $status, $version) = split /\|/, $line;
			push @{ $known{$dev} }, { id => $id, key => "$code/$seq", status => $status, version => $version };
		}

		if ($ENV{SYNC_CHAOS_DEBUG})
		{
			my $dig = join(';', map { my $d = $_; "$d:" . join(',', map { "$_->{key}=$_->{status}/$_->{version}" } @{ $known{$d} || [] }) } 1 .. $DEVICES);
			note("known r$round " . substr(`echo '$dig' | md5sum`, 0, 8));
			open(my $dfh, '>', "$PostgreSQL::Test::Utils::tmp_check/known_${seed}_${rep}_r$round") or die;
			print $dfh join("\n", split /;/, $dig), "\n";
			close $dfh;
		}

		# Every app writes (offline apps keep their writes queued).
		my %target;    # stop keys online apps push to this round
		unless ($final)
		{
			my @ins;
			for my $dev (1 .. $DEVICES)
			{
				my $stops = $known{$dev} or next;
				my $n = 1 + rng($rng, 2);
				for my $k (1 .. $n)
				{
					my $st = $stops->[ rng($rng, scalar @$stops) ];
					my $kind = rng($rng, 10);
					my %m = (id => $nextid{$dev}, client_time => client_time($round, $k, $dev),
						base_version => $st->{version} + 0);
					my %next = (assigned => 'en_route', en_route => 'arrived', arrived => 'completed');
					if ($kind <= 3)
					{
						my $to = $next{ $st->{status} } // 'arrived';
						$st->{status} = $to if $next{ $st->{status} };
						%m = (%m, workflow => 'stop_status', args => { stop_id => $st->{id} + 0, status => $to });
					}
					elsif ($kind <= 5)
					{
						%m = (%m, workflow => 'proof_of_delivery',
							args => { stop_id => $st->{id} + 0, kind => (qw(photo signature barcode))[ rng($rng, 3) ],
								metadata => { dev => $dev, round => $round, k => $k } });
					}
					elsif ($kind == 6)
					{
						%m = (%m, workflow => 'inspection',
							args => { stop_id => $st->{id} + 0, metadata => { dev => $dev, round => $round } });
					}
					elsif ($kind <= 8)
					{
						%m = (%m, workflow => 'stop_adjust', hlc => (1767225600000 + $round * 3600000 + $k * 60000 + $dev) . ':0',
							args => { stop_id => $st->{id} + 0, fields => { address => "$st->{key} by d$dev r$round" } });
					}
					else
					{
						%m = (%m, workflow => 'stop_status', args => { stop_id => $st->{id} + 0, status => 'en_route' });
					}
					my $j = $json->encode(\%m);
					push @{ $queue{$dev} }, { id => $nextid{$dev}, json => $j, key => $st->{key} };
					push @{ $sent{$dev} }, $j;
					push @ins, sprintf("(%d, '%s', %d, '%s', \$j\$%s\$j\$::jsonb -> 'args')", $tenant, client_uuid($dev),
						$nextid{$dev}, $m{workflow}, $j);
					$nextid{$dev}++;
				}
			}
			$node->safe_psql($db, "INSERT INTO public.chaos_sent VALUES " . join(",\n", @ins)) if @ins;
		}

		# The dispatcher's plan: stops of offline apps that no online app
		# writes to in this round (new writes or ones queued while offline).
		for my $dev (@on)
		{
			$target{ $_->{key} } = 1 for @{ $queue{$dev} || [] };
		}
		my @actions;
		unless ($final)
		{
			my $cand = $node->safe_psql($db, qq{
				SELECT s.stop_id, j.code || '/' || s.seq, right(d.code, 3)::int
				  FROM fleet.stop s JOIN fleet.job j ON j.tenant_id = s.tenant_id AND j.job_id = s.job_id
				  JOIN fleet.driver d ON d.tenant_id = s.tenant_id AND d.driver_id = s.driver_id
				 WHERE s.tenant_id = $tenant ORDER BY j.code, s.seq});
			my @c = grep { !$online{ $_->[2] } && !$target{ $_->[1] } } map { [ split /\|/ ] } split /\n/, $cand;
			for (1 .. 12)
			{
				last unless @c;
				my $pick = splice(@c, rng($rng, scalar @c), 1);
				my $what = rng($rng, 10);
				if ($what < 6)
				{
					my $to = 1 + rng($rng, $DEVICES);
					$to = $to % $DEVICES + 1 if $to == $pick->[2];
					push @actions, "UPDATE fleet.stop SET driver_id = (SELECT driver_id FROM fleet.driver WHERE tenant_id = $tenant AND code = '$driver_code{$to}') WHERE tenant_id = $tenant AND stop_id = $pick->[0];";
				}
				elsif ($what < 8)
				{
					push @actions, "UPDATE fleet.stop SET address = '$pick->[1] by dispatch r$round' WHERE tenant_id = $tenant AND stop_id = $pick->[0];";
				}
				else
				{
					push @actions, "UPDATE fleet.stop SET status = 'cancelled' WHERE tenant_id = $tenant AND stop_id = $pick->[0];";
				}
			}
		}

		# Phase B: pushes with chaos, the dispatcher and the killer, concurrently.
		unlink $stopfile;
		my @pids;
		for my $w (0 .. $WORKERS - 1)
		{
			my @mine = grep { $_ % $WORKERS == $w && $queue{$_} && @{ $queue{$_} } } @on;
			next unless @mine;
			push @pids, fork_child(sub {
				my $crng = rng_new($seed * 1000003 + $round * 1009 + $w);
				for my $attempt (1 .. 200)
				{
					my %lmid;
					my ($rc, $out) = run_sql($ctx . "SELECT right(client_id::text, 12)::int || '|' || last_mutation_id FROM fleet.sync_client WHERE tenant_id = $tenant;\n");
					next if $rc != 0;
					for (split /\n/, $out) { my ($d, $l) = split /\|/; $lmid{$d} = $l if defined $l; }
					my $script = $ctx;
					my $left = 0;
					for my $dev (@mine)
					{
						my @rem = grep { $_->{id} > ($lmid{$dev} // 0) } @{ $queue{$dev} };
						next unless @rem;
						$left++;
						my $cu = client_uuid($dev);
						while (@rem)
						{
							my @b = splice(@rem, 0, 1 + rng($crng, 4));
							if ($attempt <= 2)
							{
								next if rng($crng, 100) < 12;                 # request lost
								@b = reverse @b if rng($crng, 100) < 15;      # reordered
							}
							my $push = "SELECT count(*) FROM fleet.sync_push('$cu', \$j\$[" . join(',', map { $_->{json} } @b) . "]\$j\$);\n";
							$script .= $push;
							$script .= $push if $attempt <= 2 && rng($crng, 100) < 15;    # delivered twice
							if ($attempt <= 2 && rng($crng, 100) < 10 && $b[0]{id} > 1)  # an old one again
							{
								my $old = $sent{$dev}[ rng($crng, $b[0]{id} - 1) ];
								$script .= "SELECT count(*) FROM fleet.sync_push('$cu', \$j\$[$old]\$j\$);\n";
							}
						}
					}
					last unless $left;
					run_sql($script);
				}
			});
		}
		push @pids, fork_child(sub {
			my $script = $ctx;
			$script .= "$_\nSELECT pg_sleep(0.003);\n" for @actions;
			$script .= "SELECT 'dispatch done';\n";
			# every action sets a value, so running the list again is harmless
			for my $try (1 .. 5)
			{
				my ($rc, $out) = run_sql($script);
				last if $rc == 0 && $out =~ /dispatch done/;
				open(my $dfh, '>>', "$PostgreSQL::Test::Utils::tmp_check/sync_chaos_dispatch_retries") or die;
				print $dfh "seed $seed run $rep round $round rc $rc\n";
				close $dfh;
			}
		}) if @actions;
		my $killer = fork_child(sub {
			my $n = 0;
			while (!-e $stopfile)
			{
				usleep(10_000 + int(rand(40_000)));
				my ($rc, $out) = run_sql(qq{
					SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM (
						SELECT pid FROM pg_stat_activity
						 WHERE datname = '$db' AND pid <> pg_backend_pid() AND state = 'active'
						   AND query LIKE '%fleet.sync_push(%' ORDER BY random() LIMIT 1) k;});
				$n += $1 if $out =~ /(\d+)/;
			}
			open(my $fh, '>>', $killfile) or die;
			print $fh "$n\n";
			close $fh;
		});
		waitpid($_, 0) for @pids;
		open(my $fh, '>', $stopfile) or die;
		close $fh;
		waitpid($killer, 0);
		push @phase, sprintf('plan+push %.1f', time - $tp);

		# every online app's queue is acknowledged now
		my %lmid = map { split /\|/ } split /\n/, $node->safe_psql($db,
			"SELECT right(client_id::text, 12)::int || '|' || last_mutation_id FROM fleet.sync_client WHERE tenant_id = $tenant");
		for my $dev (@on)
		{
			$queue{$dev} = [ grep { $_->{id} > $lmid{$dev} } @{ $queue{$dev} || [] } ];
		}
	}

	# Everyone pulls a last time.
	pull_all($ctx, $tenant, $ROUNDS + 1, 1 .. $DEVICES);

	my $check = $node->safe_psql($db, $ctx . qq{
		SELECT json_build_object(
		  'sent', (SELECT count(*) FROM public.chaos_sent WHERE tenant_id = $tenant),
		  'processed', (SELECT count(*) FROM fleet.sync_mutation WHERE tenant_id = $tenant),
		  'lmid_ok', (SELECT bool_and(c.last_mutation_id = (SELECT count(*) FROM public.chaos_sent x
		                                WHERE x.tenant_id = c.tenant_id AND x.client = c.client_id))
		                FROM fleet.sync_client c WHERE c.tenant_id = $tenant),
		  'payload_mismatch', (SELECT count(*) FROM public.chaos_sent x
		                        LEFT JOIN fleet.sync_mutation m ON m.tenant_id = x.tenant_id AND m.client_id = x.client AND m.mutation_id = x.id
		                       WHERE x.tenant_id = $tenant
		                         AND (m.mutation_id IS NULL OR m.workflow <> x.workflow OR m.payload -> 'args' <> x.args)),
		  'trail', (SELECT count(*) FROM fleet.event_log WHERE tenant_id = $tenant AND source = 'sync'),
		  'trail_keys', (SELECT count(DISTINCT idem_key) FROM fleet.event_log WHERE tenant_id = $tenant AND source = 'sync'),
		  'trail_missing', (SELECT count(*) FROM fleet.sync_mutation m WHERE m.tenant_id = $tenant
		                      AND NOT EXISTS (SELECT 1 FROM fleet.event_log e WHERE e.tenant_id = m.tenant_id
		                                        AND e.event_id = m.event_id AND e.idem_key = m.client_id || ':' || m.mutation_id)),
		  'evidence_not_once', (SELECT count(*) FROM fleet.sync_mutation m WHERE m.tenant_id = $tenant
		                          AND m.workflow IN ('proof_of_delivery', 'inspection') AND m.result <> 'rejected'
		                          AND (SELECT count(*) FROM fleet.proof_of_delivery p
		                                WHERE p.tenant_id = m.tenant_id AND p.source_event_id = m.event_id) <> 1),
		  'evidence_rows', (SELECT count(*) FROM fleet.proof_of_delivery WHERE tenant_id = $tenant),
		  'evidence_expected', (SELECT count(*) FROM fleet.sync_mutation m WHERE m.tenant_id = $tenant
		                          AND m.workflow IN ('proof_of_delivery', 'inspection') AND m.result <> 'rejected'),
		  'status_changes_twice', (SELECT count(*) FROM (SELECT event_id FROM fleet.status_change WHERE tenant_id = $tenant
		                             GROUP BY event_id HAVING count(*) > 1) x),
		  'merged_without_record', (SELECT count(*) FROM fleet.sync_mutation m WHERE m.tenant_id = $tenant AND m.result = 'merged'
		                              AND NOT EXISTS (SELECT 1 FROM fleet.sync_conflict c WHERE c.tenant_id = m.tenant_id
		                                                AND c.conflict_id = m.conflict_id AND c.client_id = m.client_id
		                                                AND c.mutation_id = m.mutation_id AND c.rule = m.rule)),
		  'records_without_merge', (SELECT count(*) FROM fleet.sync_conflict c WHERE c.tenant_id = $tenant
		                              AND NOT EXISTS (SELECT 1 FROM fleet.sync_mutation m WHERE m.tenant_id = c.tenant_id
		                                                AND m.conflict_id = c.conflict_id)),
		  'review_missing', (SELECT count(*) FROM fleet.sync_conflict c WHERE c.tenant_id = $tenant AND c.review
		                       AND NOT EXISTS (SELECT 1 FROM fleet.sync_review v WHERE v.tenant_id = c.tenant_id
		                                         AND v.conflict_id = c.conflict_id)),
		  'conflicts', (SELECT count(*) FROM fleet.sync_conflict WHERE tenant_id = $tenant),
		  'reviews', (SELECT count(*) FROM fleet.sync_review WHERE tenant_id = $tenant),
		  'duplicates', (SELECT sum(duplicates) FROM fleet.sync_mutation WHERE tenant_id = $tenant),
		  'copy_differs', (SELECT count(*) FROM fleet.sync_client c CROSS JOIN LATERAL (
		                     (SELECT r.entity, r.id, r.data FROM public.chaos_replica r
		                       WHERE r.tenant_id = c.tenant_id AND r.client = c.client_id
		                      EXCEPT SELECT s.entity, s.entity_id, s.data FROM fleet.sync_scope(c.driver_id) s)
		                     UNION ALL
		                     (SELECT s.entity, s.entity_id, s.data FROM fleet.sync_scope(c.driver_id) s
		                      EXCEPT SELECT r.entity, r.id, r.data FROM public.chaos_replica r
		                       WHERE r.tenant_id = c.tenant_id AND r.client = c.client_id)) d
		                    WHERE c.tenant_id = $tenant),
		  'copies', (SELECT count(*) FROM public.chaos_replica WHERE tenant_id = $tenant),
		  'hash', (SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
		      SELECT 'S|' || j.code || '|' || s.seq || '|' || coalesce(d.code, '-') || '|' || s.status || '|' || s.version
		             || '|' || coalesce(s.address, '') || '|' || coalesce(s.status_at::text, '') || '|'
		             || coalesce(s.arrived_at::text, '') || '|' || coalesce(s.completed_at::text, '') AS x
		        FROM fleet.stop s JOIN fleet.job j ON j.tenant_id = s.tenant_id AND j.job_id = s.job_id
		        LEFT JOIN fleet.driver d ON d.tenant_id = s.tenant_id AND d.driver_id = s.driver_id
		       WHERE s.tenant_id = $tenant
		      UNION ALL
		      SELECT 'P|' || j.code || '|' || s.seq || '|' || p.kind || '|' || p.metadata::text || '|'
		             || coalesce(d.code, '-') || '|' || p.captured_at::text
		        FROM fleet.proof_of_delivery p
		        JOIN fleet.stop s ON s.tenant_id = p.tenant_id AND s.stop_id = p.stop_id
		        JOIN fleet.job j ON j.tenant_id = s.tenant_id AND j.job_id = s.job_id
		        LEFT JOIN fleet.driver d ON d.tenant_id = p.tenant_id AND d.driver_id = p.driver_id
		       WHERE p.tenant_id = $tenant
		      UNION ALL
		      SELECT 'M|' || m.client_id || '|' || m.mutation_id || '|' || m.workflow || '|' || m.result || '|'
		             || coalesce(m.rule, '') || '|' || coalesce(m.reason, '')
		        FROM fleet.sync_mutation m WHERE m.tenant_id = $tenant
		      UNION ALL
		      SELECT 'C|' || c.client_id || '|' || c.mutation_id || '|' || c.kind || '|' || c.decision || '|' || c.rule
		             || '|' || c.review || '|' || (c.outcome ->> 'applied')
		        FROM fleet.sync_conflict c WHERE c.tenant_id = $tenant
		      UNION ALL
		      SELECT 'R|' || c.client_id || '|' || c.mutation_id || '|' || v.reason || '|' || v.status
		        FROM fleet.sync_review v JOIN fleet.sync_conflict c ON c.tenant_id = v.tenant_id AND c.conflict_id = v.conflict_id
		       WHERE v.tenant_id = $tenant
		      UNION ALL
		      SELECT 'L|' || c.client_id || '|' || c.last_mutation_id FROM fleet.sync_client c WHERE c.tenant_id = $tenant) q)
		)});
	$check =~ s/^\d+\n//;    # the set_tenant line
	my $r = decode_json($check);
	$r->{seconds} = sprintf('%.1f', time - $t0) . ' (' . join(', ', @phase) . ')';
	return $r;
}

# ------------------------------------------------------------ the runs

my %hashes;
my ($mutations, $conflicts, $reviews, $duplicates) = (0, 0, 0, 0);
for my $seed (@SEEDS)
{
	for my $rep (1 .. $REPEAT)
	{
		my $r = run_once($seed, $rep);
		my $what = "seed $seed run $rep";
		note("$what: $r->{processed} mutations, $r->{conflicts} conflicts, $r->{reviews} reviews, "
			. "$r->{duplicates} duplicate receipts, $r->{seconds}s, hash $r->{hash}");
		ok($r->{sent} > 0 && $r->{processed} == $r->{sent} && $r->{lmid_ok} && $r->{payload_mismatch} == 0,
			"$what: every mutation processed once, with its payload ($r->{processed} of $r->{sent})");
		ok($r->{trail} == $r->{sent} && $r->{trail_keys} == $r->{sent} && $r->{trail_missing} == 0,
			"$what: one trail event per mutation, keyed by client and id");
		ok($r->{evidence_not_once} == 0 && $r->{evidence_rows} == $r->{evidence_expected} && $r->{status_changes_twice} == 0,
			"$what: evidence and status changes applied exactly once ($r->{evidence_rows} evidence rows)");
		ok($r->{copy_differs} == 0 && $r->{copies} > 0,
			"$what: every app's pulled copy equals its driver's scope ($r->{copies} rows)");
		ok($r->{merged_without_record} == 0 && $r->{records_without_merge} == 0 && $r->{review_missing} == 0
			  && $r->{conflicts} > 0,
			"$what: conflict records complete ($r->{conflicts} conflicts, $r->{reviews} review items)");
		push @{ $hashes{$seed} }, $r->{hash};
		$mutations += $r->{processed};
		$conflicts += $r->{conflicts};
		$reviews += $r->{reviews};
		$duplicates += $r->{duplicates};
	}
	my %distinct = map { $_ => 1 } @{ $hashes{$seed} };
	is(scalar(keys %distinct), 1, "seed $seed: the same final state hash in all $REPEAT interleavings");
}
my %all = map { $hashes{$_}[0] => 1 } @SEEDS;
is(scalar(keys %all), scalar(@SEEDS), 'different seeds give different final states');

my $kills = 0;
if (open(my $fh, '<', $killfile)) { $kills += $_ for <$fh>; close $fh; }
my $dretries = 0;
if (open(my $fh, '<', "$PostgreSQL::Test::Utils::tmp_check/sync_chaos_dispatch_retries")) { $dretries++ while <$fh>; close $fh; }
note("total: $mutations mutations, $conflicts conflicts, $reviews review items, $duplicates duplicate receipts, "
	. "$kills backends killed mid-push; harness retries: $retries{pull} pulls, $dretries dispatcher scripts");
cmp_ok($kills, '>', 0, 'backends were killed mid-push');
cmp_ok($duplicates, '>', 0, 'duplicate pushes were answered from stored results');
is($node->safe_psql($db, 'SELECT count(*) FROM fleet.check_schema_rules()'), '0', 'schema rules hold');

done_testing();
