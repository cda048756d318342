# Hostile objects planted before CREATE EXTENSION (the "trojan" test,
# beyond test/regress/sql/00_install.sql): an unprivileged role plants, in
# public and ahead of fleet on the search path, functions and operators that
# match better than pg_catalog's (varchar and integer variants, which win
# over an implicit cast) and record every call in an audit table.  A
# superuser then creates the extension and uses it (tenant, devices,
# ingest, events, views, reconciliation).  Pass: no hostile object was ever
# called, none became part of the extension, and fleet's functions never
# resolve to them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('fleet_trojan');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'fleet,pg_cron'\ncron.database_name = 'fleet'\nfleet.database = 'fleet'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE fleet');

# mallory plants hostile look-alikes; each call is recorded
my @plant;
for my $f (
	[ 'lower(varchar)', 'text', "pg_catalog.lower(\$1::text)" ],
	[ 'upper(varchar)', 'text', "pg_catalog.upper(\$1::text)" ],
	[ 'length(varchar)', 'integer', "pg_catalog.length(\$1::text)" ],
	[ 'btrim(varchar)', 'text', "pg_catalog.btrim(\$1::text)" ],
	[ 'format(varchar)', 'text', "\$1::text" ],
	[ 'quote_ident(varchar)', 'text', "pg_catalog.quote_ident(\$1::text)" ],
	[ 'current_setting(varchar)', 'text', "pg_catalog.current_setting(\$1::text)" ],
	[ 'current_setting(varchar, boolean)', 'text', "pg_catalog.current_setting(\$1::text, \$2)" ],
	[ 'set_config(varchar, varchar, boolean)', 'text', "pg_catalog.set_config(\$1::text, \$2::text, \$3)" ],
	[ 'to_jsonb(varchar)', 'jsonb', "pg_catalog.to_jsonb(\$1::text)" ],
	[ 'abs(integer)', 'integer', "pg_catalog.abs(\$1::bigint)::integer" ],
	[ 'date_trunc(varchar, timestamptz)', 'timestamptz', "pg_catalog.date_trunc(\$1::text, \$2)" ],
	[ 'array_length(anyarray, smallint)', 'integer', "pg_catalog.array_length(\$1, \$2::integer)" ],
	[ 'generate_series(integer, integer)', 'SETOF integer', "SELECT pg_catalog.generate_series(\$1::bigint, \$2::bigint)::integer" ],
	[ 'hashtext(varchar)', 'integer', "pg_catalog.hashtext(\$1::text)" ],
	[ 'pg_advisory_xact_lock(integer)', 'void', "pg_catalog.pg_advisory_xact_lock(\$1::bigint)" ])
{
	my ($sig, $ret, $body) = @$f;
	my ($name) = $sig =~ /^(\w+)/;
	$body = "SELECT $body" unless $body =~ /^SELECT/;
	push @plant, qq{CREATE FUNCTION public.$sig RETURNS $ret LANGUAGE sql AS \$b\$
		INSERT INTO public.trojan_audit VALUES ('$name');
		$body \$b\$;};
}
$node->safe_psql('fleet', q{
CREATE ROLE mallory;
GRANT CREATE ON SCHEMA public TO mallory;
CREATE TABLE public.trojan_audit (called text, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT, SELECT ON public.trojan_audit TO PUBLIC;});
$node->safe_psql('fleet', "SET ROLE mallory;\n" . join("\n", @plant) . q{
CREATE FUNCTION public.eq_vc(varchar, varchar) RETURNS boolean LANGUAGE sql AS $b$
	INSERT INTO public.trojan_audit VALUES ('=(varchar,varchar)'); SELECT true $b$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.eq_vc);
CREATE FUNCTION public.eq_bi(bigint, integer) RETURNS boolean LANGUAGE sql AS $b$
	INSERT INTO public.trojan_audit VALUES ('=(bigint,integer)'); SELECT true $b$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.eq_bi);
CREATE FUNCTION public.cat_vc(varchar, varchar) RETURNS text LANGUAGE sql AS $b$
	INSERT INTO public.trojan_audit VALUES ('||(varchar,varchar)'); SELECT $1::text || $2::text $b$;
CREATE OPERATOR public.|| (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.cat_vc);});
my $planted = $node->safe_psql('fleet', q{SELECT count(*) FROM pg_proc WHERE proowner = 'mallory'::regrole});
cmp_ok($planted, '>=', 19, "$planted hostile functions planted by an unprivileged role");

# the installer runs with public first on its search path, then uses fleet
$node->safe_psql('fleet', q{
SET search_path = public, fleet;
CREATE EXTENSION fleet CASCADE;
SELECT fleet.create_roles();
SELECT fleet.create_tenant('Trojan Transport') AS t \\gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (fleet.current_tenant(), 'T-1');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT fleet.current_tenant(), 'trj-1', 'osmand', vehicle_id FROM fleet.vehicle;
SELECT count(*) FROM fleet.ingest_positions(ARRAY['trj-1', 'trj-1'], ARRAY[now() - interval '2 min', now() - interval '1 min'],
	ARRAY[50.0, 50.1], ARRAY[8.0, 8.1], NULL, NULL, NULL, NULL, NULL, NULL);
SELECT count(*) FROM fleet.ingest_positions(ARRAY['trj-1'], ARRAY[now() - interval '1 min'],
	ARRAY[50.1], ARRAY[8.1], NULL, NULL, NULL, NULL, NULL, NULL);
SELECT count(fleet.refresh_view(relation)) FROM fleet.view_registry;
SELECT count(*) FROM fleet.reconcile(now() - interval '1 day', now(), repair => true);
SELECT count(*) FROM fleet.check_schema_rules();
SELECT fleet.run_maintenance();});
pass('the extension installed and ran with the hostile objects in place');
is($node->safe_psql('fleet', q{SELECT coalesce(string_agg(DISTINCT called, ', '), '') FROM public.trojan_audit}), '',
	'no hostile function or operator was ever called');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	WHERE d.deptype = 'e' AND p.proowner = 'mallory'::regrole}), '0', 'no hostile object became a member of the extension');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_depend d
	JOIN pg_proc fp ON d.classid = 'pg_proc'::regclass AND d.objid = fp.oid AND fp.pronamespace = 'fleet'::regnamespace
	JOIN pg_proc hp ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = hp.oid AND hp.proowner = 'mallory'::regrole}),
	'0', 'no fleet function depends on a hostile one');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_depend d
	JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND d.refobjid = o.oid AND o.oprowner = 'mallory'::regrole}),
	'0', 'nothing (views, defaults, policies) depends on a hostile operator');
# control: the traps do fire for a careless caller
is($node->safe_psql('fleet', q{SET search_path = public, pg_catalog; SELECT lower('X'::varchar) || (1::bigint = 2::integer)::text;
	SELECT string_agg(called, ',' ORDER BY called) FROM public.trojan_audit}), "xtrue\n=(bigint,integer),lower",
	'control: a careless query on the same search path is captured by the traps');
$node->stop;
done_testing();
