# The README's function reference and the grants are one truth, and every
# documented grant works.
#   1. README.md's tables "| function | who | what |" are parsed: each
#      function named in the first column (fleet.name(...)) is documented
#      for the fleet roles its "who" column names ("all fleet roles" and
#      "fleet roles": the four; DBA, owner, superuser, pg_cron: none).  Both
#      ways: a documented role may execute every overload of the name, a
#      role not documented may execute none (has_function_privilege, which
#      follows fleet.role_grant: 206_security_matrix.pl checks that).
#   2. Every documented (function, role) pair is called by a login granted
#      only that role, acting for a tenant of a small fixture, with
#      sensible arguments; the call is rolled back afterwards.  No call may
#      be refused for privileges (42501) nor fail internally (XX000), and
#      every call with arguments listed below must succeed unless a SQLSTATE
#      it is expected to end with is listed next to it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;
use FleetChaos;

my $repo = $ENV{FLEET_REPO} or plan skip_all => 'FLEET_REPO not set';
my @roles = qw(fleet_admin fleet_ingest fleet_app fleet_analyst);

# ------------------------------------------------ 1. README vs grants
open(my $fh, '<', "$repo/README.md") or die "README.md: $!";
my (%doc, $in_table);
while (my $line = <$fh>)
{
	if ($line =~ /^\|\s*function\s*\|\s*who\s*\|\s*what\s*\|/) { $in_table = 1; next; }
	if ($line !~ /^\|/) { $in_table = 0; next; }
	next unless $in_table;
	next if $line =~ /^\|\s*-+\s*\|/;
	my (undef, $fn_cell, $who) = split /(?<!\\)\|/, $line;
	my %who;
	$who{$_} = 1 for ($who =~ /\b(fleet_(?:admin|ingest|app|analyst))\b/g);
	%who = map { $_ => 1 } @roles if $who =~ /\b(?:all )?fleet roles\b/;
	# functions: fleet.name followed by "(" (relations in these tables are
	# described, their grants are in test/security/privileges.tsv)
	for my $name ($fn_cell =~ /\bfleet\.([a-z_][a-z0-9_]*)\(/g)
	{
		die "README documents fleet.$name twice" if exists $doc{$name};
		$doc{$name} = { map { $_ => 1 } keys %who };
	}
}
close $fh;
cmp_ok(scalar(keys %doc), '>', 50, scalar(keys %doc) . ' functions documented in README.md');

my $node = fleet_node('fleet_docgrants');
my $ta = chaos_fixture($node, 1, name => 'Doc Tenant', imei_base => 354000000000000, prefix => 'dg');
my $tb = chaos_fixture($node, 1, name => 'Other Tenant', imei_base => 355000000000000, prefix => 'do');

my $values = join(",\n", map {
	my $name = $_;
	map { "('$name', '$_', " . ($doc{$name}{$_} ? 'true' : 'false') . ')' } @roles
} sort keys %doc);
my $mismatch = $node->safe_psql('fleet', qq{
WITH d(name, role, documented) AS (VALUES $values),
p AS (
	SELECT d.name, d.role, d.documented, count(p.oid) AS overloads,
	       count(p.oid) FILTER (WHERE has_function_privilege(d.role, p.oid, 'EXECUTE')) AS executable
	  FROM d LEFT JOIN pg_proc p ON p.pronamespace = 'fleet'::regnamespace AND p.proname = d.name
	 GROUP BY 1, 2, 3)
SELECT coalesce(string_agg(CASE WHEN overloads = 0 THEN 'no such function: fleet.' || name
                                WHEN documented THEN 'documented, not granted: ' || role || ' fleet.' || name
                                ELSE 'granted, not documented: ' || role || ' fleet.' || name END, E'\\n' ORDER BY name, role), '')
  FROM p
 WHERE overloads = 0 OR (documented AND executable < overloads) OR (NOT documented AND executable > 0)});
is($mismatch, '', "README.md's who column equals the grants, both ways") or diag($mismatch);

# ------------------------------------------------ 2. every documented pair, called
my $imei = 354000000000000;
$node->safe_psql('fleet', qq{
SELECT fleet.set_tenant($ta);
INSERT INTO fleet.driver (tenant_id, code, name) VALUES ($ta, 'dg-d1', 'Doc Driver');
SELECT fleet.sync_register_client('00000000-0000-0000-0000-00000000d0c1',
	(SELECT driver_id FROM fleet.driver WHERE code = 'dg-d1'));
SELECT fleet.clear_tenant();
CREATE SCHEMA doc;
-- run a statement and roll it back: 'ok', or its SQLSTATE and message
CREATE FUNCTION doc.try(q text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
	BEGIN
		EXECUTE q;
		RAISE EXCEPTION 'doc.try: roll back';
	EXCEPTION WHEN OTHERS THEN
		IF SQLERRM = 'doc.try: roll back' THEN
			RETURN 'ok';
		END IF;
		RETURN SQLSTATE || ' ' || SQLERRM;
	END;
END
\$\$;
GRANT USAGE ON SCHEMA doc TO PUBLIC;
GRANT EXECUTE ON FUNCTION doc.try(text) TO PUBLIC;
CREATE ROLE doc_fleet_admin LOGIN IN ROLE fleet_admin;
CREATE ROLE doc_fleet_ingest LOGIN IN ROLE fleet_ingest;
CREATE ROLE doc_fleet_app LOGIN IN ROLE fleet_app;
CREATE ROLE doc_fleet_analyst LOGIN IN ROLE fleet_analyst;
CREATE ROLE doc_bindable NOLOGIN;});

my $client = q{'00000000-0000-0000-0000-00000000d0c1'::uuid};
my $day = q{now() - interval '1 day', now()};
# name => [ call, SQLSTATE the call is expected to end with (none: success) ]
my %call = (
	set_tenant => ["SELECT fleet.set_tenant($ta)"],
	clear_tenant => ['SELECT fleet.clear_tenant()'],
	current_tenant => ['SELECT fleet.current_tenant()'],
	create_tenant => [q{SELECT fleet.create_tenant('Doc Grants Ltd')}],
	check_schema_rules => ['SELECT * FROM fleet.check_schema_rules()'],
	bind_login => ["SELECT fleet.bind_login('doc_bindable', $ta)"],
	unbind_login => [q{SELECT fleet.unbind_login('doc_bindable')}],
	ingest_positions => ["SELECT * FROM fleet.ingest_positions(ARRAY['$imei'], ARRAY[now() - interval '1 minute'],"
		  . ' ARRAY[50.1]::float8[], ARRAY[10.1]::float8[], NULL, NULL, NULL, NULL, NULL, NULL)'],
	ingest_events => [q{SELECT * FROM fleet.ingest_events(ARRAY['doc'], ARRAY['e1'], ARRAY['vehicle.state'], NULL,
		  ARRAY[now()], ARRAY['{"vehicle": "CH-0"}'::jsonb])}],
	ingest_event => [q{SELECT * FROM fleet.ingest_event('doc', 'e2', 'vehicle.state', '{"vehicle": "CH-0"}')}],
	register_event_kind => [q{SELECT fleet.register_event_kind('doc.note', 'audit')}],
	register_event_upcaster => [q{SELECT fleet.register_event_upcaster('doc.none', 1, 'fleet.current_tenant()')}, '22023|42704|P0002|23503'],
	process_pending => ['SELECT * FROM fleet.process_pending()'],
	requeue_dead_letters => ['SELECT fleet.requeue_dead_letters()'],
	replay => ["SELECT * FROM fleet.replay($day)"],
	projection_hash => ['SELECT fleet.projection_hash()'],
	sync_register_client => [q{SELECT fleet.sync_register_client('00000000-0000-0000-0000-00000000d0c2',
		  (SELECT driver_id FROM fleet.driver WHERE code = 'dg-d1'))}],
	sync_push => ["SELECT * FROM fleet.sync_push($client, '[]')"],
	sync_pull => ["SELECT fleet.sync_pull($client)"],
	sync_deactivate_client => ["SELECT fleet.sync_deactivate_client($client)"],
	set_sync_rule => [q{SELECT fleet.set_sync_rule('stop_status', 'forward_only_status')}],
	sync_resolve_review => [q{SELECT fleet.sync_resolve_review(-1, 'kept')}, '42704'],
	reconcile => ["SELECT * FROM fleet.reconcile($day)"],
	reconcile_all => ['SELECT fleet.reconcile_all()'],
	sync_figures => ["SELECT * FROM fleet.sync_figures($day)"],
	sync_backlog => ['SELECT * FROM fleet.sync_backlog()'],
	view_age => [q{SELECT fleet.view_age('fleet.vehicle_last_position')}],
	ensure_fresh => [q{SELECT fleet.ensure_fresh('fleet.vehicle_last_position')}],
	refresh_view => [q{SELECT fleet.refresh_view('fleet.vehicle_last_position')}],
	alter_view => [q{SELECT fleet.alter_view('fleet.vehicle_last_position', interval '45 seconds', true)}],
	verify_view => [q{SELECT * FROM fleet.verify_view('fleet.vehicle_last_position')}],
	time_partitions => [q{SELECT * FROM fleet.time_partitions('fleet.position')}],
	position_range => ["SELECT * FROM fleet.position_range($day)"],
	event_log_range => ["SELECT * FROM fleet.event_log_range($day)"],
	place_hold => ["SELECT fleet.place_hold($ta, $day, 'doc: litigation')"],
	release_hold => ["SELECT fleet.release_hold($ta, -1)", 'P0002'],
	verify_ledger => ['SELECT * FROM fleet.verify_ledger()'],
	quarantine_replay => ['SELECT * FROM fleet.quarantine_replay()'],
	metrics => ['SELECT * FROM fleet.metrics()'],
	health => ['SELECT * FROM fleet.health()'],
	report_service_metrics => [q{SELECT fleet.report_service_metrics('doc-svc', 'i1', '[{"name": "journal_depth", "value": 0}]')}],
);

my ($pairs, $good) = (0, 0);
for my $role (@roles)
{
	my @names = sort grep { $doc{$_}{$role} } keys %doc;
	my @calls;
	for my $name (@names)
	{
		my $q = $call{$name} ? $call{$name}[0] : $node->safe_psql('fleet', qq{
SELECT format('SELECT fleet.%I(%s)', p.proname,
              coalesce((SELECT string_agg(format('(SELECT NULL::%s)', format_type(t, NULL)), ', ' ORDER BY i)
                          FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)), ''))
  FROM pg_proc p WHERE p.pronamespace = 'fleet'::regnamespace AND p.proname = '$name' AND p.prokind = 'f'
 ORDER BY p.oid LIMIT 1});
		next if $q eq '';	# a procedure: CALL has no SELECT form
		(my $lit = $q) =~ s/'/''/g;
		push @calls, "SELECT '$name' || E'\\t' || doc.try('$lit');";
	}
	my ($out, $err) = ('', '');
	$node->psql('fleet', "SELECT fleet.set_tenant($ta);\n" . join("\n", @calls),
		extra_params => [ '-U', "doc_$role", '-At' ], stdout => \$out, stderr => \$err);
	is($err, '', "$role: the calls ran") or diag($err);
	my %got = map { split /\t/, $_, 2 } grep { /\t/ } split /\n/, $out;
	for my $name (@names)
	{
		next unless exists $got{$name} || $call{$name};
		$pairs++;
		my $r = $got{$name} // '(no answer)';
		unlike($r, qr/^(42501|XX)/, "$role may call fleet.$name (no 42501, no internal error)");
		if ($call{$name})
		{
			my $expect = $call{$name}[1];
			if ($expect) { like($r, qr/^(ok|(?:$expect) )/, "$role: fleet.$name succeeds or ends in $expect") or diag($r); }
			else { is($r, 'ok', "$role: fleet.$name succeeds") or diag($r); }
		}
		$good++ if $r eq 'ok';
	}
}
note("$pairs documented (function, role) pairs called, $good succeeded");

$node->stop;
done_testing();
