# SQL fuzz pass: every function and procedure in schema fleet (from the
# catalog), every argument position, called as each fleet role (with a
# tenant context) and as the extension owner with NULL, arrays with NULL elements, empty, 2-D and
# mismatched arrays, infinities, NaN, int8 extremes, 1 MB text and hostile
# JSON, the other arguments holding plausible values; then an all-NULL call.
# Each call runs in its own subtransaction, rolled back afterwards, so the
# fixture stays the same for every call.  The cold-segment decoders
# (fleet.cold_decode, fleet.cold_event_decode) get real segments bit-flipped,
# truncated, extended and random bytes.
# Asserts: no backend crashed (server log), no call ended in SQLSTATE class
# XX (internal error; the cold decoders' data_corrupted XX001 aside), and an ingest call
# whose every row was refused stored nothing (row counts of fleet's tables
# before and after, inside its subtransaction).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;

my $node = fleet_node('fleet_fuzz', conf => "log_min_messages = warning\n");
$node->safe_psql('fleet', q{
SELECT fleet.create_roles();
SELECT fleet.create_tenant('Fuzz Co') AS t \gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:t, 'FZ-1');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT :t, 'fz-dev-1', 'osmand', vehicle_id FROM fleet.vehicle WHERE tenant_id = :t;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:t, 'fz', 'Fuzz');
INSERT INTO fleet.customer (tenant_id, code, name) VALUES (:t, 'C1', 'Customer');
INSERT INTO fleet.job (tenant_id, code, driver_id, status)
SELECT :t, 'FZ-J', driver_id, 'assigned' FROM fleet.driver WHERE tenant_id = :t;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :t, job_id, 1, driver_id FROM fleet.job WHERE tenant_id = :t;
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:t, 'fz-provider', 'fz-secret-0123456789');
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000f1',
	(SELECT driver_id FROM fleet.driver WHERE tenant_id = :t));
SELECT fleet.ingest_positions(ARRAY['fz-dev-1'], ARRAY[now() - interval '1 minute'], ARRAY[1.0::float8], ARRAY[2.0::float8],
	NULL, NULL, NULL, NULL, NULL, NULL);
SELECT fleet.clear_tenant();

CREATE TABLE public.fuzz_result (role text, fn text, argpos int, val text, sqlstate text, message text);
CREATE TABLE public.fuzz_leak (role text, fn text, argpos int, val text);
GRANT INSERT ON public.fuzz_result, public.fuzz_leak TO PUBLIC;

-- row counts of fleet's tables, every tenant (the caller may see none)
CREATE FUNCTION public.fuzz_fingerprint() RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r regclass; n bigint; s text := '';
BEGIN
	FOR r IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p')
	          AND NOT c.relispartition ORDER BY c.relname LOOP
		EXECUTE format('SELECT count(*) FROM %s', r) INTO n;
		s := s || r::text || '=' || n || ' ';
	END LOOP;
	RETURN s;
END $$;
GRANT EXECUTE ON FUNCTION public.fuzz_fingerprint() TO PUBLIC;

-- fuzz values per type (SQL expressions); an element type's values make its array's
CREATE TABLE public.fuzz_value (typ regtype, v text);
INSERT INTO public.fuzz_value VALUES
	('text', 'NULL'), ('text', $v$''$v$), ('text', $v$repeat('x', 1048576)$v$), ('text', $v$E'\x01\u00e9\t'$v$),
	('text', $v$'infinity'$v$), ('text', $v$'-1'$v$),
	('bigint', 'NULL'), ('bigint', '0'), ('bigint', '-1'), ('bigint', '-9223372036854775808'), ('bigint', '9223372036854775807'),
	('integer', 'NULL'), ('integer', '0'), ('integer', '-2147483648'), ('integer', '2147483647'),
	('smallint', 'NULL'), ('smallint', '-32768'),
	('double precision', 'NULL'), ('double precision', $v$'NaN'$v$), ('double precision', $v$'Infinity'$v$),
	('double precision', $v$'-Infinity'$v$), ('double precision', '1e308'),
	('real', 'NULL'), ('real', $v$'NaN'$v$), ('real', $v$'-Infinity'$v$),
	('numeric', 'NULL'), ('numeric', $v$'NaN'$v$), ('numeric', $v$'Infinity'$v$), ('numeric', '1e1000'),
	('timestamp with time zone', 'NULL'), ('timestamp with time zone', $v$'infinity'$v$),
	('timestamp with time zone', $v$'-infinity'$v$), ('timestamp with time zone', $v$'4713-01-01 00:00+00 BC'$v$),
	('timestamp with time zone', $v$'294276-12-31 23:59:59+00'$v$),
	('date', 'NULL'), ('date', $v$'infinity'$v$), ('date', $v$'-infinity'$v$),
	('interval', 'NULL'), ('interval', $v$'-1 day'$v$), ('interval', $v$'178000000 years'$v$), ('interval', $v$'0'$v$),
	('boolean', 'NULL'), ('boolean', 'true'),
	('jsonb', 'NULL'), ('jsonb', $v$'null'$v$), ('jsonb', $v$'[]'$v$), ('jsonb', $v$'{}'$v$), ('jsonb', $v$'"x"'$v$),
	('jsonb', $v$'[null, {}, 1, "a", [1]]'$v$), ('jsonb', $v$'{"id": null, "payload": null, "time": "infinity"}'$v$),
	('jsonb', $v$pg_catalog.to_jsonb(repeat('x', 1048576))$v$),
	('jsonb', $v$(repeat('[', 2000) || repeat(']', 2000))::jsonb$v$),
	('jsonb', $v$'[{"id": 1, "workflow": "stop_status", "args": null, "client_time": "infinity", "hlc": "9:9"}]'$v$),
	('uuid', 'NULL'), ('uuid', $v$'00000000-0000-0000-0000-000000000000'$v$),
	('regclass', 'NULL'), ('regclass', $v$'pg_catalog.pg_class'$v$), ('regclass', '0'),
	('regprocedure', 'NULL'), ('regprocedure', $v$'pg_catalog.now()'$v$), ('regprocedure', '0'),
	('bytea', 'NULL'), ('bytea', $v$''::bytea$v$), ('bytea', $v$'\x00ffff'$v$),
	('xid8', 'NULL'), ('xid8', $v$'18446744073709551615'$v$),
	('character', 'NULL'), ('character', $v$'x'$v$),
	('name', 'NULL'), ('name', $v$''$v$);

-- plausible values for the arguments not being fuzzed
CREATE TABLE public.fuzz_benign (typ regtype, v text);
INSERT INTO public.fuzz_benign VALUES
	('text', $v$'x'$v$), ('bigint', '1'), ('integer', '1'), ('smallint', '1'), ('double precision', '1.5'),
	('real', '1.5'), ('numeric', '1.5'), ('timestamp with time zone', $v$pg_catalog.now() - interval '1 minute'$v$),
	('date', 'CURRENT_DATE'), ('interval', $v$'1 hour'$v$), ('boolean', 'false'), ('jsonb', $v$'{}'$v$),
	('uuid', $v$'00000000-0000-0000-0000-0000000000f1'$v$), ('regclass', $v$'fleet.position'$v$),
	('regprocedure', $v$'fleet.current_tenant()'$v$), ('bytea', $v$'\x00'$v$), ('xid8', $v$'1'$v$),
	('character', $v$'EUR'$v$), ('name', $v$'x'$v$);
GRANT SELECT ON public.fuzz_value, public.fuzz_benign TO PUBLIC;
});
my $tenant = $node->safe_psql('fleet', "SELECT tenant_id FROM fleet.tenant WHERE name = 'Fuzz Co'");

my $fns = $node->safe_psql('fleet', q{
SELECT count(*) FROM pg_proc p
 WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind IN ('f', 'p')
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)});
cmp_ok($fns, '>', 100, "$fns functions and procedures in schema fleet");

# One role's pass, server-side.  For each function: every argument position
# with each fuzz value of its type (arrays: NULL, empty, one NULL element,
# 2-D, three elements, one of each element fuzz value), then all NULL.
my $pass = q{
SELECT fleet.set_tenant(TENANT) WHERE has_function_privilege('fleet.set_tenant(bigint,boolean)', 'EXECUTE');
DO $fuzz$
DECLARE
	f record;
	a integer;
	v text;
	args text[];
	call text;
	st text;
	msg text;
	fp text;
	fp2 text;
	nrej bigint;
	nall bigint;
	checked boolean;
BEGIN
	FOR f IN
		SELECT p.oid, p.oid::regprocedure::text AS sig, p.prokind, p.pronargs,
		       ARRAY(SELECT unnest(p.proargtypes::oid[])) AS types,
		       EXISTS (SELECT 1 FROM unnest(p.proargnames, p.proargmodes) x(n, m)
		                WHERE x.n = 'status' AND x.m IN ('o', 't')) AND p.proname LIKE 'ingest%' AS rowstatus
		  FROM pg_proc p
		 WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind IN ('f', 'p')
		   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
		   AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) t
		                    JOIN pg_type y ON y.oid = t WHERE y.typtype = 'p')
		 ORDER BY 2
	LOOP
		FOR a IN 0 .. f.pronargs LOOP		-- a = pronargs: the all-NULL call
			FOR v IN
				SELECT x.v FROM (
					SELECT fv.v FROM public.fuzz_value fv WHERE a < f.pronargs AND fv.typ = f.types[a + 1]
					UNION ALL
					SELECT e.v FROM pg_type y, LATERAL (
						SELECT 'NULL' AS v
						UNION ALL SELECT format('''{}''::%s', y.oid::regtype)
						UNION ALL SELECT format('ARRAY[NULL]::%s', y.oid::regtype)
						UNION ALL SELECT format('ARRAY[ARRAY[%1$s], ARRAY[%1$s]]::%2$s', b.v, y.oid::regtype)
						          FROM public.fuzz_benign b WHERE b.typ = y.typelem
						UNION ALL SELECT format('ARRAY[%1$s, NULL, %1$s]::%2$s', b.v, y.oid::regtype)
						          FROM public.fuzz_benign b WHERE b.typ = y.typelem
						UNION ALL SELECT format('ARRAY[%s]::%s', ev.v, y.oid::regtype)
						          FROM public.fuzz_value ev WHERE ev.typ = y.typelem AND ev.v <> 'NULL') e
					 WHERE a < f.pronargs AND y.oid = f.types[a + 1] AND y.typelem <> 0 AND y.typlen = -1
					UNION ALL
					SELECT 'NULL' WHERE a = f.pronargs
					UNION ALL		-- a type with no fuzz values: NULL at least
					SELECT 'NULL' WHERE a < f.pronargs
					   AND NOT EXISTS (SELECT 1 FROM public.fuzz_value fv WHERE fv.typ = f.types[a + 1])
					   AND NOT EXISTS (SELECT 1 FROM pg_type y WHERE y.oid = f.types[a + 1] AND y.typelem <> 0 AND y.typlen = -1)
				) x
			LOOP
				args := '{}';
				FOR i IN 1 .. f.pronargs LOOP
					args := args || CASE
						WHEN a = f.pronargs THEN format('NULL::%s', f.types[i]::regtype)
						WHEN i = a + 1 THEN format('(%s)::%s', v, f.types[i]::regtype)
						ELSE COALESCE(
							(SELECT format('(%s)::%s', b.v, f.types[i]::regtype) FROM public.fuzz_benign b WHERE b.typ = f.types[i]),
							(SELECT format('ARRAY[%s]::%s', b.v, f.types[i]::regtype)
							   FROM pg_type y JOIN public.fuzz_benign b ON b.typ = y.typelem WHERE y.oid = f.types[i]),
							format('NULL::%s', f.types[i]::regtype)) END;
				END LOOP;
				IF f.prokind = 'p' THEN
					call := format('CALL %s(%s)', f.oid::regproc, array_to_string(args, ', '));
				ELSIF f.rowstatus THEN
					call := format('SELECT count(*) FILTER (WHERE r.status = ''rejected''), count(*) FROM %s(%s) r',
					               f.oid::regproc, array_to_string(args, ', '));
				ELSE
					call := format('SELECT %s(%s)', f.oid::regproc, array_to_string(args, ', '));
				END IF;
				st := '00000';
				msg := NULL;
				checked := false;
				BEGIN
					PERFORM fleet.set_tenant(TENANT) WHERE has_function_privilege('fleet.set_tenant(bigint,boolean)', 'EXECUTE');
					IF f.rowstatus THEN
						fp := public.fuzz_fingerprint();
						EXECUTE call INTO nrej, nall;
						IF nall > 0 AND nrej = nall THEN
							fp2 := public.fuzz_fingerprint();
							IF fp2 IS DISTINCT FROM fp THEN
								INSERT INTO public.fuzz_leak VALUES (current_user, f.sig, a + 1, left(v, 80));
							END IF;
						END IF;
					ELSE
						EXECUTE call;
					END IF;
					RAISE EXCEPTION 'fuzz: undo' USING ERRCODE = 'FZ001';
				EXCEPTION WHEN OTHERS THEN
					IF SQLSTATE <> 'FZ001' THEN
						st := SQLSTATE;
						msg := left(SQLERRM, 300);
					END IF;
				END;
				INSERT INTO public.fuzz_result VALUES (current_user, f.sig, a + 1, left(v, 80), st, msg);
			END LOOP;
		END LOOP;
	END LOOP;
END
$fuzz$;
};
$pass =~ s/TENANT/$tenant/g;

my $log_offset = -s $node->logfile;
# the four fleet roles, then the extension owner (the functions no role may
# call: tier steps, partition and view management)
for my $role (qw(fleet_admin fleet_app fleet_ingest fleet_analyst owner))
{
	my $as = $role eq 'owner' ? 'RESET ROLE;' : "SET ROLE $role;";
	my ($ret, $out, $err) = $node->psql('fleet', "$as\n$pass", on_error_stop => 1);
	is($ret, 0, "$role: the fuzz pass ran to its end") or diag($err);
}

my $calls = $node->safe_psql('fleet', 'SELECT count(*) FROM public.fuzz_result');
cmp_ok($calls, '>', 4000, "$calls calls made");
my $fn_covered = $node->safe_psql('fleet', 'SELECT count(DISTINCT fn) FROM public.fuzz_result');
is($fn_covered, $node->safe_psql('fleet', q{
SELECT count(*) FROM pg_proc p
 WHERE p.pronamespace = 'fleet'::regnamespace AND p.prokind IN ('f', 'p')
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) t JOIN pg_type y ON y.oid = t WHERE y.typtype = 'p')}),
	"every function without pseudo-type arguments was called ($fn_covered)");
diag($node->safe_psql('fleet', q{
SELECT string_agg(format('%s x%s: %s', sqlstate, n, m), E'\n' ORDER BY n DESC)
  FROM (SELECT sqlstate, left(min(message), 100) AS m, count(*) AS n FROM public.fuzz_result GROUP BY 1 ORDER BY 3 DESC LIMIT 12) x}));
my $ok = $node->safe_psql('fleet', q{SELECT count(*) FROM public.fuzz_result WHERE sqlstate = '00000'});
cmp_ok($ok, '>', 100, "$ok calls succeeded (the fixture lets calls get past their first check)");

my $internal = $node->safe_psql('fleet', q{
SELECT string_agg(format('%s as %s, argument %s = %s: %s %s', fn, role, argpos, val, sqlstate, message), E'\n' ORDER BY fn, argpos)
  FROM (SELECT DISTINCT ON (fn, argpos, sqlstate, message) * FROM public.fuzz_result
         WHERE sqlstate = 'XX000' OR (sqlstate LIKE 'XX%' AND fn NOT LIKE 'fleet.cold%decode(bytea)')) x});
is($internal, '', 'no call ended in an internal error (XX000; the cold decoders may say XX001 data_corrupted)');

my $leaks = $node->safe_psql('fleet', q{
SELECT string_agg(format('%s as %s, argument %s = %s', fn, role, argpos, val), E'\n') FROM public.fuzz_leak});
is($leaks, '', 'an ingest call whose every row was refused stored nothing');

# ---------------------------------------------------------- cold decoders
# Real segments, then each mutated: one bit flipped at every 7th bit,
# truncated at every length, extended, and random bytes.
$node->safe_psql('fleet', q{
CREATE TABLE public.cold_case (kind text, seg bytea);
INSERT INTO public.cold_case
SELECT 'positions', fleet.cold_encode(
	array_agg(t ORDER BY t), array_agg(52 + g / 1000.0 ORDER BY t)::float8[], array_agg(13 + g / 1000.0 ORDER BY t)::float8[],
	array_agg(g::real ORDER BY t), array_agg((g % 360)::real ORDER BY t), array_agg(NULL::real ORDER BY t),
	array_agg(5::real ORDER BY t), array_agg(g::bigint ORDER BY t),
	array_agg(CASE WHEN g % 3 = 0 THEN jsonb_build_object('ign', g % 2 = 0) END ORDER BY t), array_agg(t ORDER BY t))
  FROM (SELECT g, timestamptz '2026-01-05 00:00Z' + g * interval '1.5 s' AS t FROM generate_series(1, 40) g) x;
INSERT INTO public.cold_case
SELECT 'events', fleet.cold_event_encode(
	array_agg(g::bigint ORDER BY g), array_agg(timestamptz '2026-01-05 00:00Z' + g * interval '1 s' ORDER BY g),
	array_agg(g::text::xid8 ORDER BY g), array_agg('audit'::text ORDER BY g), array_agg('audit.note'::text ORDER BY g),
	array_agg(1 ORDER BY g), array_agg(1 ORDER BY g), array_agg('s'::text ORDER BY g), array_agg('k' || g ORDER BY g),
	array_agg(timestamptz '2026-01-05 00:00Z' ORDER BY g), array_agg(jsonb_build_object('text', repeat('n', g)) ORDER BY g))
  FROM generate_series(1, 30) g;
SELECT setseed(0.21);
CREATE TABLE public.cold_mutant (kind text, how text, seg bytea);
INSERT INTO public.cold_mutant
SELECT c.kind, 'flip ' || b, set_bit(c.seg, b, 1 - get_bit(c.seg, b))
  FROM public.cold_case c, generate_series(0, length(c.seg) * 8 - 1, 7) b;
INSERT INTO public.cold_mutant
SELECT c.kind, 'cut ' || n, substring(c.seg FROM 1 FOR n) FROM public.cold_case c, generate_series(0, length(c.seg) - 1) n;
INSERT INTO public.cold_mutant
SELECT c.kind, 'extend ' || n, c.seg || gen_random_bytes(n) FROM public.cold_case c, generate_series(1, 64, 9) n;
INSERT INTO public.cold_mutant
SELECT c.kind, 'random ' || n, gen_random_bytes(n) FROM public.cold_case c, generate_series(1, 1024, 37) n;
INSERT INTO public.cold_mutant
SELECT c.kind, 'header of the other kind', substring(o.seg FROM 1 FOR 16) || substring(c.seg FROM 17)
  FROM public.cold_case c JOIN public.cold_case o ON o.kind <> c.kind;
CREATE TABLE public.cold_result (kind text, how text, sqlstate text, message text);
DO $$
DECLARE m record; st text; msg text;
BEGIN
	FOR m IN SELECT * FROM public.cold_mutant LOOP
		st := '00000'; msg := NULL;
		BEGIN
			IF m.kind = 'positions' THEN
				PERFORM count(*) FROM fleet.cold_decode(m.seg);
				PERFORM count(*) FROM fleet.cold_event_decode(m.seg);
			ELSE
				PERFORM count(*) FROM fleet.cold_event_decode(m.seg);
				PERFORM count(*) FROM fleet.cold_decode(m.seg);
			END IF;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := left(SQLERRM, 200);
		END;
		INSERT INTO public.cold_result VALUES (m.kind, m.how, st, msg);
	END LOOP;
END $$;
});
my $mutants = $node->safe_psql('fleet', 'SELECT count(*) FROM public.cold_result');
cmp_ok($mutants, '>', 500, "$mutants mutated cold segments decoded");
is($node->safe_psql('fleet', q{SELECT count(*) FROM public.cold_result WHERE sqlstate = '00000' AND how LIKE 'cut%' AND how <> 'cut 0'}),
	'0', 'no truncated segment decodes without an error');
my $cold_internal = $node->safe_psql('fleet', q{
SELECT string_agg(format('%s %s: %s %s', kind, how, sqlstate, message), E'\n')
  FROM (SELECT * FROM public.cold_result WHERE sqlstate LIKE 'XX%' AND sqlstate <> 'XX001' LIMIT 20) x});
is($cold_internal, '', 'no mutated segment makes a decoder fail with an internal error (corruption is XX001)');

# ------------------------------------------------------------ the server
is($node->safe_psql('fleet', 'SELECT 1'), '1', 'the server is up');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal|server process .* was terminated|was terminated by exception/,
	'no backend crashed (server log)');
unlike($log, qr/PANIC|TRAP:/, 'no PANIC or failed assertion in the server log');

$node->stop;
done_testing();
