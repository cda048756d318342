# Security matrix, generated from the catalog: for each fleet role and each
# function and relation in schema fleet, the allowed and refused actions.
#   1. the effective privileges equal what fleet.role_grant declares (no
#      grant made behind its back, nothing to PUBLIC), and equal the
#      reviewed table test/security/privileges.tsv (a new object or grant
#      shows up as a difference to review; the new table is written to
#      tmp_check/tap/privileges.tsv.new)
#   2. the catalog's answer is what happens: every relation is read as
#      every role (allowed or permission denied), every refused function
#      is called and refused with SQLSTATE 42501
#   3. tenant isolation through every relation with a tenant_id (tables,
#      views, fleet views) and every function returning tenant_id rows
#      (SECURITY DEFINER ones included), as every role: with tenant A's
#      context no row of tenant B; with no context, no row at all (declared
#      exceptions: fleet_admin sees every row of fleet.tenant and keeps the
#      login bindings of every tenant, fleet.login_tenant)
#   4. fleet.metrics() as every role: no series labelled with another
#      tenant than the context's, none at all without a context
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;
use FleetChaos;

my $node = fleet_node('fleet_secmatrix');
my $ta = chaos_fixture($node, 2, name => 'Tenant A', imei_base => 352000000000000);
my $tb = chaos_fixture($node, 2, name => 'Tenant B', imei_base => 353000000000000, prefix => 'tb');
my @roles = qw(fleet_admin fleet_ingest fleet_app fleet_analyst);
for my $t ([ $ta, 352000000000000 ], [ $tb, 353000000000000 ])
{
	my ($tid, $base) = @$t;
	$node->safe_psql('fleet', qq{
SELECT fleet.set_tenant($tid);
SELECT count(*) FROM fleet.ingest_positions(
	(SELECT array_agg(($base + g % 2)::text ORDER BY g) FROM generate_series(0, 19) g),
	(SELECT array_agg(now() - interval '1 hour' + g * interval '1 s' ORDER BY g) FROM generate_series(0, 19) g),
	(SELECT array_agg(50 + g / 1e3 ORDER BY g)::float8[] FROM generate_series(0, 19) g),
	(SELECT array_agg(10 + g / 1e3 ORDER BY g)::float8[] FROM generate_series(0, 19) g),
	NULL, NULL, NULL, NULL, NULL, NULL);
SELECT fleet.clear_tenant();
SELECT count(fleet.refresh_view(relation)) FROM fleet.view_registry;});
}

# a login binding per tenant, so fleet.login_tenant has rows of both
$node->safe_psql('fleet', qq{
CREATE ROLE sec_bound_a NOLOGIN;
CREATE ROLE sec_bound_b NOLOGIN;
SELECT fleet.bind_login('sec_bound_a', $ta), fleet.bind_login('sec_bound_b', $tb);});

# ------------------------------------------------ 1. declared vs effective
my $matrix_sql = q{
WITH objs AS (
	SELECT 'TABLE' AS kind, c.oid::regclass::text AS name, c.oid AS oid, NULL::oid AS proid
	  FROM pg_class c WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
	UNION ALL
	SELECT 'FUNCTION', p.oid::regprocedure::text, NULL, p.oid
	  FROM pg_proc p WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind IN ('f', 'p', 'a')
), roles(r) AS (VALUES ('fleet_admin'), ('fleet_ingest'), ('fleet_app'), ('fleet_analyst')),
eff AS (
	SELECT r, kind, name,
	       CASE WHEN kind = 'FUNCTION' THEN
	                CASE WHEN has_function_privilege(r, proid, 'EXECUTE') THEN 'EXECUTE' END
	            ELSE nullif(concat_ws(',',
	                CASE WHEN has_table_privilege(r, oid, 'SELECT') THEN 'SELECT'
	                     WHEN has_any_column_privilege(r, oid, 'SELECT') THEN 'SELECT(columns)' END,
	                CASE WHEN has_table_privilege(r, oid, 'INSERT') THEN 'INSERT'
	                     WHEN has_any_column_privilege(r, oid, 'INSERT') THEN 'INSERT(columns)' END,
	                CASE WHEN has_table_privilege(r, oid, 'UPDATE') THEN 'UPDATE'
	                     WHEN has_any_column_privilege(r, oid, 'UPDATE') THEN 'UPDATE(columns)' END,
	                CASE WHEN has_table_privilege(r, oid, 'DELETE') THEN 'DELETE' END,
	                CASE WHEN has_table_privilege(r, oid, 'TRUNCATE') THEN 'TRUNCATE' END), '') END AS privs
	  FROM objs, roles)
};
my $matrix = $node->safe_psql('fleet', $matrix_sql . q{
SELECT r || E'\t' || kind || E'\t' || name || E'\t' || privs FROM eff WHERE privs IS NOT NULL ORDER BY 1});
my $cells = $node->safe_psql('fleet', $matrix_sql . q{SELECT count(*) FROM eff});
cmp_ok($cells, '>', 400, "$cells role x object cells generated from the catalog");

# declared in fleet.role_grant (privilege lists expanded; column grants marked)
my $undeclared = $node->safe_psql('fleet', $matrix_sql . q{,
decl AS (
	SELECT g.role_name AS r, g.object_kind AS kind,
	       CASE WHEN g.object_kind = 'TABLE' THEN g.object_name::regclass::text ELSE g.object_name::regprocedure::text END AS name,
	       trim(p) || CASE WHEN g.columns IS NOT NULL THEN '(columns)' ELSE '' END AS priv
	  FROM fleet.role_grant g,
	       unnest(string_to_array(CASE WHEN g.privileges = 'ALL' THEN 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE' ELSE g.privileges END, ',')) p
	 WHERE g.object_kind <> 'SCHEMA'),
actual AS (SELECT r, kind, name, unnest(string_to_array(privs, ',')) AS priv FROM eff WHERE privs IS NOT NULL)
SELECT coalesce(string_agg(x, '; '), '') FROM (
	SELECT 'granted, not declared: ' || r || ' ' || priv || ' ' || name AS x FROM (SELECT * FROM actual EXCEPT SELECT * FROM decl) a
	UNION ALL
	SELECT 'declared, not granted: ' || r || ' ' || priv || ' ' || name FROM (SELECT * FROM decl EXCEPT SELECT * FROM actual) d
	ORDER BY 1) y});
is($undeclared, '', 'effective privileges of every fleet role = fleet.role_grant');
is($node->safe_psql('fleet', q{
SELECT count(*) FROM (
	SELECT 1 FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	 WHERE p.pronamespace = 'fleet'::regnamespace AND a.grantee = 0
	UNION ALL
	SELECT 1 FROM pg_class c, aclexplode(c.relacl) a
	 WHERE c.relnamespace = 'fleet'::regnamespace AND a.grantee = 0) x}), '0',
	'nothing in schema fleet is granted to PUBLIC');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'fleet\_%' AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)}),
	'0', 'no fleet role is superuser, bypasses RLS or creates roles or databases');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
	WHERE c.relnamespace = 'fleet'::regnamespace AND r.rolname IN ('fleet_admin', 'fleet_ingest', 'fleet_app', 'fleet_analyst')}),
	'0', 'no fleet role owns a relation (owners bypass unforced RLS)');
is($node->safe_psql('fleet', q{SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '') FROM pg_proc p
	WHERE p.pronamespace = 'fleet'::regnamespace AND p.prosecdef
	  AND NOT coalesce(array_to_string(p.proconfig, ',') ~ 'search_path=pg_catalog, ?pg_temp', false)}),
	'', 'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp');

# the reviewed table
my $reviewed_file = "$ENV{FLEET_REPO}/test/security/privileges.tsv";
my $new_file = ($ENV{TESTDIR} || '.') . '/privileges.tsv.new';
if (open(my $nf, '>', $new_file)) { print $nf "# role\tkind\tobject\tprivileges (generated by test/tap/206_security_matrix.pl; reviewed)\n$matrix\n"; close $nf; }
my $reviewed = -r $reviewed_file ? join('', grep { !/^#/ } do { open(my $fh, '<', $reviewed_file); <$fh> }) : '';
chomp $reviewed;
my %have = map { $_ => 1 } split /\n/, $matrix;
my %want = map { $_ => 1 } split /\n/, $reviewed;
my @diff = ((map { "+ $_" } grep { !$want{$_} } sort keys %have), (map { "- $_" } grep { !$have{$_} } sort keys %want));
is(scalar(@diff), 0, 'the matrix equals the reviewed test/security/privileges.tsv')
  or diag("differences (+ now granted, - no longer): review, then copy $new_file to test/security/privileges.tsv\n" . join("\n", @diff));

# ------------------------------------------------ 2. enforcement = catalog
for my $role (@roles)
{
	my $res = $node->safe_psql('fleet', qq{
CREATE TEMP TABLE enf (obj text, expected boolean, sqlstate text);
GRANT ALL ON enf TO PUBLIC;
SET ROLE $role;
DO \$\$
DECLARE o record; st text; call text;
BEGIN
  FOR o IN SELECT c.oid::regclass AS rel FROM pg_class c
            WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition LOOP
    st := '00000';
    BEGIN
      EXECUTE format('SELECT 1 FROM %s LIMIT 0', o.rel);
    EXCEPTION WHEN OTHERS THEN st := SQLSTATE;
    END;
    INSERT INTO enf VALUES (o.rel::text, has_any_column_privilege(o.rel, 'SELECT'), st);
  END LOOP;
  -- functions and aggregates; support functions taking internal cannot be
  -- called from SQL at all, and polymorphic arguments are given integers
  FOR o IN SELECT p.oid, p.oid::regproc::text AS fn, p.pronargs FROM pg_proc p
            WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind IN ('f', 'a')
              AND NOT 'internal'::regtype::oid = ANY (p.proargtypes::oid[])
              AND NOT has_function_privilege(p.oid, 'EXECUTE') LOOP
    -- (SELECT NULL::type), not a constant: a STRICT function with constant
    -- NULL arguments is folded away by the planner without being called
    SELECT format('SELECT %s(%s)', o.fn, coalesce(string_agg('(SELECT NULL::'
             || CASE WHEN t IN ('anyelement'::regtype, 'anycompatible'::regtype) THEN 'integer' ELSE format_type(t, NULL) END
             || ')', ', ' ORDER BY i), ''))
      INTO call FROM unnest((SELECT proargtypes::oid[] FROM pg_proc WHERE oid = o.oid)) WITH ORDINALITY a(t, i);
    st := '00000';
    BEGIN
      EXECUTE call;
    EXCEPTION WHEN OTHERS THEN st := SQLSTATE;
    END;
    INSERT INTO enf VALUES (o.oid::regprocedure::text, false, st);
  END LOOP;
END \$\$;
SELECT count(*) || ' ' || count(*) FILTER (WHERE expected) || ' ' ||
       coalesce(string_agg(obj || ':' || sqlstate, ' ') FILTER (WHERE (expected AND sqlstate <> '00000') OR (NOT expected AND sqlstate <> '42501')), '')
  FROM enf;});
	my ($total, $allowed, $bad) = split / /, $res, 3;
	is($bad, '', "$role: $total actions tried, $allowed allowed; every refusal is SQLSTATE 42501 and every allowed read works");
}

# ------------------------------------------------ 3. tenant isolation
my $iso_sql = q{
CREATE TEMP TABLE iso (obj text, mine bigint, foreign_rows bigint, err text);
GRANT ALL ON iso TO PUBLIC;
SET ROLE ROLE;
SELECT fleet.set_tenant(TENANT) WHERE TENANT IS NOT NULL;
DO $$
DECLARE o record; m bigint; f bigint; st text; call text;
BEGIN
  FOR o IN SELECT c.oid::regclass AS rel FROM pg_class c
            WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
              AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
              AND has_table_privilege(c.oid, 'SELECT') LOOP
    EXECUTE format('SELECT count(*) FILTER (WHERE tenant_id = %s), count(*) FILTER (WHERE tenant_id IS DISTINCT FROM %s) FROM %s',
                   coalesce(TENANT::text, '-1'), coalesce(TENANT::text, '-1'), o.rel) INTO m, f;
    INSERT INTO iso VALUES (o.rel::text, m, f, NULL);
  END LOOP;
  FOR o IN SELECT p.oid, p.oid::regproc::text AS fn FROM pg_proc p
            WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind = 'f' AND p.proretset
              AND 'tenant_id' = ANY (p.proargnames) AND has_function_privilege(p.oid, 'EXECUTE')
              AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) t WHERE t IN ('internal'::regtype, 'anyelement'::regtype)) LOOP
    SELECT format('SELECT count(*) FILTER (WHERE x.tenant_id = %s), count(*) FILTER (WHERE x.tenant_id IS DISTINCT FROM %s) FROM %s(%s) x',
                  coalesce(TENANT::text, '-1'), coalesce(TENANT::text, '-1'), o.fn,
                  coalesce(string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY i), ''))
      INTO call FROM unnest((SELECT proargtypes::oid[] FROM pg_proc WHERE oid = o.oid)) WITH ORDINALITY a(t, i);
    BEGIN
      EXECUTE call INTO m, f;
      INSERT INTO iso VALUES (o.oid::regprocedure::text, m, f, NULL);
    EXCEPTION WHEN OTHERS THEN
      INSERT INTO iso VALUES (o.oid::regprocedure::text, 0, 0, SQLSTATE);
    END;
  END LOOP;
END $$;
-- declared exception: fleet_admin manages every tenant row (policy tenant_admin)
DELETE FROM iso WHERE current_user = 'fleet_admin' AND obj IN ('fleet.tenant', 'fleet.login_tenant');
SELECT count(*) || '|' || coalesce(sum(mine), 0) || '|' || coalesce(string_agg(obj || ':' || foreign_rows, ' ') FILTER (WHERE foreign_rows > 0), '')
       || '|' || coalesce(string_agg(obj || ':' || err, ' ') FILTER (WHERE err LIKE 'XX%'), '')
  FROM iso;
};
for my $role (@roles)
{
	for my $t ([ "tenant A", $ta ], [ 'no tenant context', 'NULL' ])
	{
		(my $sql = $iso_sql) =~ s/ROLE;/$role;/;
		$sql =~ s/TENANT/$t->[1]/g;
		my $res = $node->safe_psql('fleet', $sql);
		$res =~ s/^.*\n//s while $res =~ /\n/;	# the set_tenant line
		my ($objs, $mine, $foreign, $internal) = split /\|/, $res, -1;
		is($foreign, '', "$role, $t->[0]: $objs relations and functions read, no row of another tenant");
		is($internal, '', "$role, $t->[0]: no internal error");
		if ($t->[1] eq 'NULL')
		{
			is($mine, 0, "$role, no tenant context: fails closed (0 rows)");
		}
		elsif ($role ne 'fleet_ingest')
		{
			cmp_ok($mine, '>', 0, "$role, tenant A: sees tenant A's rows ($mine)");
		}
	}
}

# ------------------------------------------------ 4. metrics per tenant
# a dead letter of tenant B gives a series labelled with B's id
$node->safe_psql('fleet', qq{
INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate, history)
VALUES ($tb, -1, now(), 'operational', 'stop.status', 8, 'handler failed', 'P0001', '[]');});
is($node->safe_psql('fleet', qq{SELECT count(*) > 0 FROM fleet.metrics() WHERE labels ->> 'tenant' = '$tb'}), 't',
	"the DBA sees tenant B's series");
for my $role (@roles)
{
	for my $t ([ "tenant A", $ta ], [ 'no tenant context', 'NULL' ])
	{
		my $res = $node->safe_psql('fleet', qq{
SET ROLE $role;
SELECT fleet.set_tenant($t->[1]) WHERE $t->[1] IS NOT NULL;
SELECT 'foreign=' || count(*) FILTER (WHERE labels ->> 'tenant' IS DISTINCT FROM ($t->[1])::text)
       || ' own=' || count(*) FILTER (WHERE labels ->> 'tenant' = ($t->[1])::text)
  FROM fleet.metrics() WHERE labels ? 'tenant';});
		like($res, qr/foreign=0 own=\d+$/, "$role, $t->[0]: fleet.metrics() shows no other tenant's series");
	}
}
$node->safe_psql('fleet', q{DELETE FROM fleet.dead_letter WHERE event_id = -1});

# ------------------------------------------------ 5. legal holds per tenant
# a hold on tenant B's fixes: only fleet_admin and the DBA count or probe it
$node->safe_psql('fleet', qq{SELECT fleet.place_hold($tb, now() - interval '2 hours', now(), 'secmatrix: claim')});
for my $role (@roles)
{
	my $sees = $role eq 'fleet_admin';
	if ($role =~ /^fleet_(admin|analyst)$/)	# the readers of fleet.tier_status
	{
		my $res = $node->safe_psql('fleet', qq{
SET ROLE $role;
SELECT fleet.set_tenant($ta);
SELECT coalesce(sum(holds), 0) > 0 FROM fleet.tier_status;});
		$res =~ s/^.*\n//s;
		is($res, $sees ? 't' : 'f', "$role, tenant A: fleet.tier_status counts tenant B's hold only for fleet_admin");
	}
	my ($rc, $o, $e) = $node->psql('fleet', qq{
SET ROLE $role;
SELECT fleet.set_tenant($ta);
SELECT fleet.row_held('fleet.position', $tb, NULL, '-infinity', 'infinity');});
	if ($sees) { like($o, qr/\bt$/, "$role: fleet.row_held answers for tenant B"); }
	else { like($e, qr/not visible to this role/, "$role: fleet.row_held refuses tenant B (42501)"); }
}

$node->stop;
done_testing();
