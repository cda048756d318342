# Ingest and pipeline under kill -9 of the postmaster.
#
# A client sends batches (1,000 GPS fixes and 10 events each, one
# transaction per batch) in a loop and records every batch whose call
# returned.  The postmaster is killed with -9 in the middle of it.  After
# crash recovery: every returned batch is stored completely, no batch is
# stored in part, and the pipeline workers resume and apply every logged
# event exactly once (a ledger written by the events' handler).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FleetTest;

my $node = fleet_node('fleet_ingest_crash', conf => "fleet.pipeline_naptime = 20ms\n");

# Fixture: a tenant with 20 devices, and an event kind whose handler (owned by
# an ordinary role) appends to a ledger that has no unique key, so an event
# applied twice would show up as a duplicate row.
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Crash Freight')");
$node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.vehicle (tenant_id, code) VALUES ($tenant, 'CR-V');
	INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT $tenant, 'CR-' || g, 'teltonika', v.vehicle_id FROM generate_series(0, 19) g, fleet.vehicle v;
	SELECT fleet.clear_tenant();
	CREATE ROLE crash_owner NOLOGIN;
	CREATE SCHEMA crash AUTHORIZATION crash_owner;
	CREATE TABLE crash.ledger (event_id bigint, batch int);
	ALTER TABLE crash.ledger OWNER TO crash_owner;
	CREATE FUNCTION crash.mark(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
	RETURNS void LANGUAGE sql AS \$\$ INSERT INTO crash.ledger VALUES (event_id, (payload ->> 'batch')::int) \$\$;
	ALTER FUNCTION crash.mark(bigint, bigint, text, jsonb, timestamptz) OWNER TO crash_owner;
	SELECT fleet.register_event_kind('crash.mark', 'operational', 1, '{"batch": "number"}',
		'crash.mark(bigint,bigint,text,jsonb,timestamptz)');
});

# One batch = one transaction: 1,000 fixes (seq = batch number) and 10 events.
# The fix times are fixed once here, not computed from now() by each call:
# the re-send at the end must carry exactly the first send's fix times,
# whatever hour it is by then.
my $base = $node->safe_psql('fleet',
	"SELECT to_char((date_trunc('hour', now()) - interval '6 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'");
my $batch_sql = q{
SELECT fleet.set_tenant(TENANT);
SELECT count(*) FROM fleet.ingest_positions(
	(SELECT array_agg('CR-' || (g % 20) ORDER BY g) FROM generate_series(0, 999) g),
	(SELECT array_agg('BASE'::timestamptz + (BATCH * 1000 + g) * interval '1 ms' ORDER BY g)
	   FROM generate_series(0, 999) g),
	(SELECT array_agg(50 + g / 1e5 ORDER BY g)::float8[] FROM generate_series(0, 999) g),
	(SELECT array_agg(10 + g / 1e5 ORDER BY g)::float8[] FROM generate_series(0, 999) g),
	NULL, NULL, NULL, NULL,
	(SELECT array_agg(BATCH::bigint) FROM generate_series(0, 999) g), NULL);
SELECT count(*) FROM fleet.ingest_events(
	array_fill('crash'::text, ARRAY[10]),
	(SELECT array_agg('b' || BATCH || '-' || k ORDER BY k) FROM generate_series(1, 10) k),
	array_fill('crash.mark'::text, ARRAY[10]), NULL, NULL,
	array_fill(jsonb_build_object('batch', BATCH), ARRAY[10]));
};
$batch_sql =~ s/TENANT/$tenant/g;
$batch_sql =~ s/BASE/$base/g;
$batch_sql =~ s/\n/ /g;

my $returned = "$PostgreSQL::Test::Utils::tmp_check/returned_batches.txt";
unlink $returned;
my $connstr = $node->connstr('fleet');
my $script = qq{
for i in \$(seq 1 100000); do
	sql=\$(printf '%s' "\$BATCH_SQL" | sed "s/BATCH/\$i/g")
	psql -X -q -d "\$CONNSTR" -v ON_ERROR_STOP=1 -c "BEGIN; \$sql COMMIT;" >/dev/null 2>&1 || break
	echo \$i >> "\$RETURNED"
done
};
local $ENV{BATCH_SQL} = $batch_sql;
local $ENV{CONNSTR} = $connstr;
local $ENV{RETURNED} = $returned;
my $loader = IPC::Run::start([ 'bash', '-c', $script ]);

# Let batches (and the pipeline) run, then kill -9 the postmaster mid-stream.
$node->poll_query_until('fleet', "SELECT count(DISTINCT seq) >= 20 FROM fleet.position")
  or die 'no ingest progress';
crash_and_restart($node);
$loader->finish;

my @batches = do { open(my $fh, '<', $returned) or die "$returned: $!"; map { chomp; $_ } <$fh> };
ok(@batches >= 20, scalar(@batches) . ' batches returned before the crash');

# Every returned batch is complete.
my $missing = $node->safe_psql('fleet', qq{
	SELECT count(*) FROM unnest(ARRAY[@{[ join(',', @batches) ]}]::int[]) b
	 WHERE (SELECT count(*) FROM fleet.position p WHERE p.seq = b) <> 1000
	    OR (SELECT count(*) FROM fleet.event_log e WHERE e.kind = 'crash.mark' AND e.idem_key LIKE 'b' || b || '-%') <> 10});
is($missing, '0', 'every batch whose call returned is stored completely');

# No batch is stored in part (including one that may have committed without its reply).
is($node->safe_psql('fleet', 'SELECT count(*) FROM (SELECT seq FROM fleet.position GROUP BY seq HAVING count(*) <> 1000) x'),
	'0', 'no batch of fixes is stored in part');
is($node->safe_psql('fleet', qq{SELECT count(*) FROM (SELECT (payload ->> 'batch') FROM fleet.event_log
	WHERE kind = 'crash.mark' GROUP BY 1 HAVING count(*) <> 10) x}), '0', 'no batch of events is stored in part');
is($node->safe_psql('fleet', qq{SELECT count(*) FROM fleet.position p JOIN (SELECT DISTINCT seq FROM fleet.position) s USING (seq)
	WHERE NOT EXISTS (SELECT 1 FROM fleet.event_log e WHERE e.kind = 'crash.mark' AND e.idem_key = 'b' || p.seq || '-1')}),
	'0', 'fixes and events of a batch are stored together');

# The workers resume: every logged event is applied, none twice.
$node->poll_query_until('fleet', qq{
	SELECT (SELECT count(*) FROM crash.ledger) >= (SELECT count(*) FROM fleet.event_log WHERE kind = 'crash.mark')})
  or die 'pipeline did not catch up';
is($node->safe_psql('fleet', qq{
	SELECT (SELECT count(*) FROM fleet.event_log e WHERE e.kind = 'crash.mark'
	          AND NOT EXISTS (SELECT 1 FROM crash.ledger l WHERE l.event_id = e.event_id))
	    || ' missing, ' || (SELECT count(*) - count(DISTINCT event_id) FROM crash.ledger) || ' twice'}),
	'0 missing, 0 twice', 'consumers resumed with nothing lost or applied twice');
is($node->safe_psql('fleet', 'SELECT count(*) FROM fleet.dead_letter'), '0', 'no dead letters');

# Re-sending a returned batch after the restart stores nothing twice.
my $again = $batch_sql;
$again =~ s/BATCH/$batches[0]/g;
$again =~ s/SELECT count\(\*\) FROM fleet.ingest_positions/SELECT string_agg(DISTINCT status, ',') FROM fleet.ingest_positions/;
$again =~ s/SELECT count\(\*\) FROM fleet.ingest_events/SELECT string_agg(DISTINCT status, ',') FROM fleet.ingest_events/;
is($node->safe_psql('fleet', $again), "$tenant\nduplicate\nduplicate", 'a re-sent batch is all duplicates');

$node->stop;
done_testing();
