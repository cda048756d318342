# Tier maintenance killed in the middle of a step, then run again.
#
# Two days of telemetry are due for hot -> warm -> cold.  A blocker session
# holds a lock that makes fleet.tier_maintenance() wait inside a step; the
# maintenance backend is then killed: first with kill -9 (the server goes
# through crash recovery) while cold_pack waits at its start, then with
# pg_terminate_backend while cold_pack waits at its very end, after the
# segments are written.  A third, undisturbed run must finish the job: both
# days cold, every fix still readable with the same hash, no work table or
# shadow left behind, nothing due, and the ledger chain verifies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;

my $node = fleet_node('fleet_tier_kill', conf => "restart_after_crash = on\n");
my $db = 'fleet';

# "Today" (UTC) is read once: every day below is counted back from it, so a
# midnight passing during the test changes nothing.
my $today = $node->safe_psql($db, "SELECT (now() AT TIME ZONE 'UTC')::date");

$node->safe_psql($db, qq{
	SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';
	SET timezone = 'UTC';
	SELECT fleet.create_tenant('Kill Freight');
	SELECT fleet.set_tenant(tenant_id) FROM fleet.tenant WHERE name = 'Kill Freight';
	INSERT INTO fleet.vehicle (tenant_id, code) SELECT tenant_id, 'K-' || g FROM fleet.tenant, generate_series(1, 4) g
	 WHERE name = 'Kill Freight';
	INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT tenant_id, 'KD-' || vehicle_id, 'teltonika', vehicle_id FROM fleet.vehicle;
	SELECT fleet.clear_tenant();
	SELECT fleet.create_daily_partitions('fleet.position', '$today'::date - 51, '$today'::date - 50);
});

# 2 x 20,000 fixes: four vehicles, one fix every 10 s each.
for my $back (50, 51)
{
	my $r = $node->safe_psql($db, qq{
		SET timezone = 'UTC';
		SELECT count(*) FILTER (WHERE status = 'accepted') FROM fleet.ingest_positions(
			(SELECT array_agg('KD-' || d.device_id ORDER BY g, d.device_id) FROM generate_series(0, 4999) g, fleet.device d
			  WHERE d.identifier LIKE 'KD-%'),
			(SELECT array_agg(('$today'::date - $back)::timestamptz + g * interval '10 s' ORDER BY g, d.device_id)
			   FROM generate_series(0, 4999) g, fleet.device d WHERE d.identifier LIKE 'KD-%'),
			(SELECT array_agg(round((48 + d.device_id * 0.01 + g * 0.0001)::numeric, 6)::float8 ORDER BY g, d.device_id)
			   FROM generate_series(0, 4999) g, fleet.device d WHERE d.identifier LIKE 'KD-%'),
			(SELECT array_agg(round((11 + g * 0.00017)::numeric, 6)::float8 ORDER BY g, d.device_id)
			   FROM generate_series(0, 4999) g, fleet.device d WHERE d.identifier LIKE 'KD-%'),
			(SELECT array_agg(((g % 90) + 0.5)::real ORDER BY g, d.device_id) FROM generate_series(0, 4999) g, fleet.device d
			  WHERE d.identifier LIKE 'KD-%'),
			NULL, NULL, NULL,
			(SELECT array_agg(g::bigint ORDER BY g, d.device_id) FROM generate_series(0, 4999) g, fleet.device d
			  WHERE d.identifier LIKE 'KD-%'),
			NULL)});
	is($r, '20000', "day -$back: 20000 fixes stored");
}

my $hash_sql = qq{
	SELECT count(*) || ' ' || md5(string_agg(r::text, E'\\n' ORDER BY r::text))
	  FROM fleet.position_range(('$today'::date - BACK)::timestamptz, ('$today'::date - BACK + 1)::timestamptz) r};
sub day_hash
{
	my ($back) = @_;
	(my $sql = $hash_sql) =~ s/BACK/$back/g;
	return $node->safe_psql($db, "SET timezone = 'UTC'; $sql");
}
my %before = map { $_ => day_hash($_) } (50, 51);

$node->safe_psql($db, q{UPDATE fleet.tier_policy SET hot_for = '45 days', cold_after = '45 days'
                         WHERE relation = 'fleet.position'::regclass});

# Start maintenance (a generous lock_timeout, one attempt) while a blocker
# holds $lock; return the maintenance backend's pid once it waits for it.
sub blocked_maintenance
{
	my ($lock) = @_;
	my $blocker = $node->background_psql($db, on_error_stop => 0);
	$blocker->query_safe("BEGIN; $lock;");
	my $maint = $node->background_psql($db, on_error_stop => 0);
	$maint->query_until(qr/started/, "\\echo started\nCALL fleet.tier_maintenance(100, '10min', 1, 1);\n");
	$node->poll_query_until($db, q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE query LIKE 'CALL fleet.tier_maintenance%' AND wait_event_type = 'Lock'})
	  or die 'maintenance never waited for the blocker';
	my $pid = $node->safe_psql($db, q{
		SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL fleet.tier_maintenance%' AND wait_event_type = 'Lock'});
	return ($pid, $blocker, $maint);
}

sub state_of
{
	return $node->safe_psql($db, qq{
		SET timezone = 'UTC';
		SELECT string_agg(('$today'::date - (lo AT TIME ZONE 'UTC')::date) || ':' || tier, ' ' ORDER BY lo) FROM fleet.tier_state});
}

# Run 1: cold_pack of the first day waits for fleet.cold_segment; kill -9.
my ($pid, $blocker, $maint) = blocked_maintenance('LOCK TABLE fleet.cold_segment IN SHARE MODE');
is(state_of(), '51:cooling', 'run 1 moved day -51 to warm, detached it and waits in cold_pack');
kill 'KILL', $pid;
$node->poll_query_until($db, 'SELECT 1', '1') or die 'server did not come back';
eval { $blocker->quit };
eval { $maint->quit };
like($node->logfile && slurp_file($node->logfile), qr/terminated by signal 9/, 'the backend was killed with -9');
is(state_of(), '51:cooling', 'after crash recovery the step is still to be done');
is($node->safe_psql($db, "SELECT count(*) FROM fleet.cold_segment"), '0', 'no partial cold data survived');
is($node->safe_psql($db, qq{SET timezone = 'UTC';
	SELECT count(*) FROM fleet.position_range('$today'::date - 51, '$today'::date - 50)}), '0',
	'(the detached day is not readable through the parent while it waits to be packed)');

# Run 2: cold_pack has written and verified the segments and waits to update
# fleet.tier_state; pg_terminate_backend.
($pid, $blocker, $maint) = blocked_maintenance('LOCK TABLE fleet.tier_state IN SHARE MODE');
is($node->safe_psql($db, "SELECT pg_terminate_backend($pid)"), 't', 'run 2 terminated at the end of cold_pack');
$node->poll_query_until($db, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid") or die;
eval { $blocker->quit };
eval { $maint->quit };
is(state_of(), '51:cooling', 'the terminated step left the day to be packed');
is($node->safe_psql($db, "SELECT count(*) FROM fleet.cold_segment"), '0', 'its segments were rolled back');

# Run 3 finishes everything.
$node->safe_psql($db, 'CALL fleet.tier_maintenance(p_duty => 1)');
is(state_of(), '51:cold 50:cold', 'run 3 packed both days');
is(day_hash($_), $before{$_}, "day -$_: every fix reads back identical from the cold tier") for (50, 51);
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relnamespace = 'fleet'::regnamespace
                            AND relname ~ '^position_p[0-9]{8}_[wcd]$'}), '0', 'no shadow, delta or work table left');
is($node->safe_psql($db, 'SELECT count(*) FROM fleet.tier_due()'), '0', 'nothing is due any more');
is($node->safe_psql($db, q{SELECT string_agg(action, ',' ORDER BY seq) FROM fleet.tier_ledger
                            WHERE action IN ('move', 'pack')}), 'move,pack,move,pack', 'each transition ledgered once');
is($node->safe_psql($db, 'SELECT ok FROM fleet.verify_ledger()'), 't', 'the ledger chain verifies');
my $ratio = $node->safe_psql($db, 'SELECT round(sum(octet_length(data))::numeric / sum(nrows), 2) FROM fleet.cold_segment');
cmp_ok($ratio, '<=', 16, "cold bytes per fix: $ratio");

# And back: restore one day, identical again.
$node->safe_psql($db, "SET timezone = 'UTC'; CALL fleet.cold_restore('$today'::date - 50)");
is(day_hash(50), $before{50}, 'day -50 restored to a partition, identical');

$node->stop;
done_testing();
