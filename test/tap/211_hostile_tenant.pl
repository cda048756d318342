# The hostile-tenant suite: a login of each fleet role plants, in pg_temp
# and in a schema of its own placed first on its search_path, domains named
# like every type fleet's SQL uses and views named like every fleet
# relation, each of which calls a trap function when it is touched.  Then
# the login drives every path fleet runs with the extension owner's rights
# (both ingests, the pipeline with retries and dead letters, replay, view
# capture, refresh and ensure_fresh, push, pull and the stop/job/proof
# triggers on insert, delete and reassignment, reconciliation, holds,
# metrics and health, webhooks, tokens), and a DBA runs maintenance and the
# tier steps with the attacker's schema first on its own path.
#
# The trap counts every call made with rights other than the planting
# login's on a sequence (not rolled back with a failing statement), warns in
# the server log, and tries what an attacker would: ALTER ROLE ... SUPERUSER.
# Pass: the counter stays 0, no login became superuser, every driven path
# completed.  A negative control (a SECURITY DEFINER function written the
# vulnerable way) shows the trap catches exactly that.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use FleetTest;

my $node = fleet_node('fleet_hostile', conf => "log_min_messages = warning\n");
my @logins = qw(h_app h_admin h_ingest h_analyst);
my %role = (h_app => 'fleet_app', h_admin => 'fleet_admin', h_ingest => 'fleet_ingest', h_analyst => 'fleet_analyst');

# types fleet's SQL uses, by their catalog names and the aliases that are
# names rather than keywords
my @types = qw(text int4 int8 int2 float8 float4 numeric bool timestamptz timestamp
  interval date jsonb json uuid xid8 regclass regprocedure oid bytea name varchar
  pg_snapshot tstzrange);

$node->safe_psql('fleet', q{
SELECT fleet.create_roles();
CREATE SEQUENCE public.hostile_hits;
GRANT USAGE, SELECT ON SEQUENCE public.hostile_hits TO PUBLIC;
CREATE TABLE public.hostile_pwned (who text, tag text);
GRANT INSERT ON public.hostile_pwned TO PUBLIC;
} . join('', map { "CREATE ROLE $_ LOGIN IN ROLE $role{$_};\nCREATE SCHEMA evil_$_ AUTHORIZATION $_;\n" } @logins));

# the trap each login plants in its own schema: counts and reports any call
# made with other rights, then tries to make the planting login superuser
for my $l (@logins)
{
	$node->safe_psql('fleet', qq{
SET ROLE $l;
CREATE FUNCTION evil_$l.pwn(tag pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql AS \$t\$
BEGIN
	IF pg_catalog.current_user() OPERATOR(pg_catalog.<>) '$l' THEN
		PERFORM pg_catalog.nextval('public.hostile_hits'::pg_catalog.regclass);
		RAISE WARNING 'HOSTILE-%: % ran as %', 'TRAP', tag, pg_catalog.current_user();
		INSERT INTO public.hostile_pwned VALUES (pg_catalog.current_user(), tag);
		BEGIN
			EXECUTE 'ALTER ROLE $l SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END IF;
	RETURN true;
END
\$t\$;
});
}

# the fixture, as the DBA
my $t = $node->safe_psql('fleet', q{SELECT fleet.create_tenant('Hostile Haulage', 'Europe/Berlin')});
$node->safe_psql('fleet', qq{
SELECT fleet.set_tenant($t);
INSERT INTO fleet.vehicle (tenant_id, code, name) VALUES ($t, 'HV1', 'Van 1'), ($t, 'HV2', 'Van 2');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT $t, 'hx-' || v.code, 'osmand', v.vehicle_id FROM fleet.vehicle v;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES ($t, 'd1', 'Dana'), ($t, 'd2', 'Dirk');
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
	SELECT $t, 'HJ1', d.driver_id, (SELECT min(vehicle_id) FROM fleet.vehicle), 'assigned' FROM fleet.driver d WHERE d.code = 'd1';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
	SELECT $t, j.job_id, s, j.driver_id FROM fleet.job j, generate_series(1, 4) s;
SELECT fleet.sync_register_client('00000000-0000-0000-0000-00000000a001', (SELECT driver_id FROM fleet.driver WHERE code = 'd1'));
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES ($t, 'hostile-feed', 'hostile-secret-0123456789');
-- a kind whose handler (a fleet_admin's) fails on demand: retries and dead letters
CREATE SCHEMA handlers AUTHORIZATION h_admin;
SET ROLE h_admin;
CREATE FUNCTION handlers.hostile_handler(tenant bigint, event_id bigint, kind text, payload jsonb, occurred timestamptz)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS \$h\$
BEGIN
	IF payload OPERATOR(pg_catalog.->>) 'fail' OPERATOR(pg_catalog.=) 'yes' THEN
		RAISE EXCEPTION 'handler refuses this event';
	END IF;
END \$h\$;
SELECT fleet.register_event_kind('audit.hostile', 'audit', 1, '{}', 'handlers.hostile_handler(bigint,bigint,text,jsonb,timestamptz)');
RESET ROLE;
UPDATE fleet.event_class SET backoff_base = '0', max_attempts = 2 WHERE class = 'audit';
});
my $drivers = $node->safe_psql('fleet', qq{SELECT fleet.set_tenant($t) \\gset
SELECT string_agg(driver_id::text, '|' ORDER BY code) FROM fleet.driver});
my ($d1, $d2) = split /\|/, $drivers;
ok($d1 && $d2, "drivers $d1 and $d2");
my $token = $node->safe_psql('fleet', qq{
SET ROLE h_admin;
SELECT fleet.set_tenant($t) \\gset
SELECT token FROM fleet.sync_issue_token('00000000-0000-0000-0000-00000000a001', '1 day', 'hostile phone');
});
($token) = $token =~ /(\S+)\s*$/;
ok($token =~ /^fst/, 'a device token for the app');

# what a login plants in its session: pg_temp domains and views, and the
# same in its own schema, which it puts first on its search_path
my %schema_planted;

sub plant
{
	my ($l) = @_;
	my $sql = "SET search_path = evil_$l, \"\$user\", public;\n";
	my @schemas = ('pg_temp', $schema_planted{$l}++ ? () : ("evil_$l"));
	for my $ty (@types)
	{
		for my $s (@schemas)
		{
			$sql .= "CREATE DOMAIN $s.$ty AS pg_catalog.$ty CHECK (evil_$l.pwn('$s.$ty'));\n";
		}
	}
	$sql .= "SELECT 'step_plant_types';\n";
	return $sql;
}

# views named like every fleet relation, in pg_temp and the attacker's
# schema; a view over the fleet relation where the login may read it, so
# that a query through it would work as well as call the trap
my @rels = split /\n/, $node->safe_psql('fleet', q{
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
 ORDER BY 1});
cmp_ok(scalar(@rels), '>', 40, scalar(@rels) . ' fleet relations to impersonate');

sub plant_relations
{
	my ($l) = @_;
	my $sql = '';
	for my $r (@rels)
	{
		for my $s ('pg_temp', "evil_$l")
		{
			next if $s ne 'pg_temp' && $schema_planted{$l} > 1;
			$sql .= "SELECT CASE WHEN pg_catalog.has_table_privilege('fleet.$r', 'SELECT')"
			  . " THEN pg_catalog.format('CREATE VIEW %s.%I AS SELECT * FROM fleet.%I WHERE evil_$l.pwn(%L)', '$s', '$r', '$r', '$s.$r')"
			  . " ELSE pg_catalog.format('CREATE VIEW %s.%I AS SELECT 1 AS x WHERE evil_$l.pwn(%L)', '$s', '$r', '$s.$r') END \\gexec\n";
		}
	}
	return $sql . "SELECT 'step_plant_relations';\n";
}

# one psql session as the login: plant, then drive; every step prints its
# marker, and the session stops at the first error
sub drive
{
	my ($l, $steps) = @_;
	my $script = "\\set ON_ERROR_STOP 1\n" . plant($l) . plant_relations($l) . $steps;
	my ($ret, $out, $err) = $node->psql('fleet', $script, extra_params => [ '-U', $l ]);
	is($ret, 0, "$l: every step ran under the planted objects") or diag("stderr: $err");
	return $out;
}

sub has_steps
{
	my ($l, $out, @steps) = @_;
	for my $s (@steps)
	{
		like($out, qr/\b$s\b/, "$l: $s");
	}
}

my $fix = "now() - interval '10 minutes'";
my $ingest_out = drive('h_ingest', qq{
SELECT count(*) FILTER (WHERE status = 'accepted') AS accepted FROM fleet.ingest_positions(
	ARRAY['hx-HV1', 'hx-HV2', 'hx-HV1'], ARRAY[$fix, $fix, $fix + interval '1 second'],
	ARRAY[52.5, 52.6, 52.51], ARRAY[13.4, 13.5, 13.41], ARRAY[10, 0, 12]::real[], NULL, NULL, NULL, NULL,
	ARRAY['{"ign": true}', NULL, '{}']::jsonb[]);
SELECT 'step_ingest_positions';
SELECT count(*) FROM fleet.ingest_positions(ARRAY['hx-HV1'], ARRAY[$fix], ARRAY[52.5], ARRAY[13.4],
	NULL, NULL, NULL, NULL, NULL, NULL);
SELECT 'step_ingest_positions_duplicate';
SELECT fleet.set_tenant($t) IS NOT NULL;
SELECT status FROM fleet.ingest_events(ARRAY['gw', 'gw'], ARRAY['k1', 'k2'], ARRAY['audit.hostile', 'audit.hostile'],
	NULL, ARRAY[$fix, $fix], ARRAY['{"fail": "yes"}', '{"fail": "no"}']::jsonb[]);
SELECT 'step_ingest_events';
SELECT count(*) >= 0 FROM fleet.metrics();
SELECT 'step_metrics';
});
has_steps('h_ingest', $ingest_out, qw(step_plant_types step_plant_relations step_ingest_positions
  step_ingest_positions_duplicate step_ingest_events step_metrics));

# a webhook delivery, signed as the provider would
my $ts = time();
my $body = sprintf('{"positions": [{"device": "hx-HV2", "time": "%s", "lat": 52.7, "lon": 13.6}],'
  . ' "events": [{"key": "wh-1", "kind": "audit.hostile", "payload": {"fail": "no"}}]}', gmtime_iso($ts - 300));
my $sig = 'sha256=' . hmac_sha256_hex("$ts.$body", 'hostile-secret-0123456789');
(my $qbody = $body) =~ s/'/''/g;
my $wh_out = drive('h_ingest', qq{
SELECT item, status, reason FROM fleet.ingest_webhook('hostile-feed', $ts, '$sig', '$qbody');
SELECT 'step_webhook';
});
has_steps('h_ingest', $wh_out, qw(step_webhook));
like($wh_out, qr/position\|1?\|?accepted|accepted/, 'the webhook stored its position');

my $push = '[{"id": 1, "workflow": "stop_status", "args": {"stop_id": STOP, "status": "arrived"}, "client_time": "' . gmtime_iso(time() - 60) . '"},'
  . ' {"id": 2, "workflow": "proof_of_delivery", "args": {"stop_id": STOP, "kind": "signature", "metadata": {"signer": "x"}}}]';
my $app_out = drive('h_app', qq{
SELECT fleet.set_tenant($t) IS NOT NULL;
SELECT min(stop_id) AS stop FROM fleet.stop \\gset
SELECT result FROM fleet.sync_push('00000000-0000-0000-0000-00000000a001', pg_catalog.replace('$push', 'STOP', :'stop')::jsonb);
SELECT 'step_sync_push';
SELECT (fleet.sync_pull('00000000-0000-0000-0000-00000000a001', NULL, 100)) IS NOT NULL;
SELECT 'step_sync_pull';
UPDATE fleet.stop SET driver_id = $d2 WHERE stop_id = (SELECT max(stop_id) FROM fleet.stop);
SELECT 'step_stop_reassign';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id) SELECT $t, job_id, 9, $d1 FROM fleet.job LIMIT 1;
SELECT 'step_stop_insert';
UPDATE fleet.job SET vehicle_id = (SELECT max(vehicle_id) FROM fleet.vehicle);
SELECT 'step_job_update';
SELECT * FROM fleet.ingest_event('app', 'a1', 'audit.hostile', '{"fail": "no"}');
SELECT 'step_ingest_event';
SELECT fleet.ensure_fresh('fleet.vehicle_last_position') IS NOT NULL;
SELECT 'step_ensure_fresh';
SELECT count(*) >= 0 FROM fleet.metrics();
SELECT 'step_metrics';
SELECT fleet.clear_tenant();
SELECT tenant_id IS NOT NULL FROM fleet.sync_authenticate('$token');
SELECT 'step_token';
});
has_steps('h_app', $app_out, qw(step_sync_push step_sync_pull step_stop_reassign step_stop_insert
  step_job_update step_ingest_event step_ensure_fresh step_metrics step_token));

my $admin_out = drive('h_admin', qq{
SELECT fleet.set_tenant($t) IS NOT NULL;
DELETE FROM fleet.stop WHERE seq = 9;
SELECT 'step_stop_delete';
SELECT * FROM fleet.process_pending();
SELECT * FROM fleet.process_pending();
SELECT * FROM fleet.process_pending();
SELECT count(*) AS dead FROM fleet.dead_letter;
SELECT 'step_pipeline';
SELECT fleet.requeue_dead_letters();
SELECT * FROM fleet.process_pending();
SELECT 'step_dead_letters';
SELECT * FROM fleet.replay(now() - interval '1 hour', now());
SELECT 'step_replay';
SELECT fleet.projection_hash() IS NOT NULL;
SELECT fleet.refresh_view('fleet.vehicle_daily_activity');
SELECT fleet.refresh_view('fleet.vehicle_last_position');
SELECT count(*) FROM fleet.verify_view('fleet.vehicle_daily_activity');
SELECT 'step_views';
SELECT count(*) >= 0 FROM fleet.reconcile(now() - interval '1 day', now(), true);
SELECT 'step_reconcile';
SELECT fleet.place_hold($t, now() - interval '1 day', now(), 'claim 1') AS hold \\gset
SELECT fleet.row_held('fleet.position', $t, NULL, now() - interval '1 hour', now());
SELECT fleet.release_hold($t, :hold);
SELECT 'step_holds';
SELECT token_id IS NOT NULL FROM fleet.sync_issue_token('00000000-0000-0000-0000-00000000a001', '1 hour');
SELECT 'step_issue_token';
SELECT count(*) >= 0 FROM fleet.metrics();
SELECT count(*) >= 0 FROM fleet.health();
SELECT 'step_metrics_health';
});
has_steps('h_admin', $admin_out, qw(step_stop_delete step_pipeline step_dead_letters step_replay step_views
  step_reconcile step_holds step_issue_token step_metrics_health));

my $analyst_out = drive('h_analyst', qq{
SELECT fleet.set_tenant($t) IS NOT NULL;
SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity') IS NOT NULL;
SELECT fleet.view_age('fleet.vehicle_last_position') IS NOT NULL;
SELECT count(*) FROM fleet.dispatch_board;
SELECT 'step_views';
SELECT count(*) >= 0 FROM fleet.metrics();
SELECT count(*) >= 0 FROM fleet.health();
SELECT count(*) >= 0 FROM fleet.sync_figures(now() - interval '1 day', now());
SELECT 'step_figures';
});
has_steps('h_analyst', $analyst_out, qw(step_views step_figures));

# the DBA, tricked into the attacker's schema first on its own path, runs
# what pg_cron runs: maintenance, the tier steps, reconciliation, pipeline
my ($ret, $dba_out, $dba_err) = $node->psql('fleet', qq{
\\set ON_ERROR_STOP 1
SET search_path = evil_h_app, public;
SELECT fleet.run_maintenance();
UPDATE fleet.tier_policy SET warm_tablespace = NULL, hot_for = '1 day', cold_after = '1 day' WHERE relation = 'fleet.position'::regclass;
SET client_min_messages = warning;
CALL fleet.tier_maintenance(p_duty => 1);
SELECT count(*) >= 0 FROM fleet.reconcile_all('1 day', true);
SELECT * FROM fleet.process_pending();
SELECT 'step_dba';
});
is($ret, 0, 'the DBA ran maintenance with the attacker schema first') or diag($dba_err);
like($dba_out, qr/step_dba|ok/, 'DBA: step_dba');

my $hits = $node->safe_psql('fleet', q{SELECT last_value - 1 + is_called::int FROM public.hostile_hits});
is($hits, 0, 'no planted object ran with rights other than its planter\'s');
is($node->safe_psql('fleet', q{SELECT string_agg(who || ': ' || tag, ', ') FROM public.hostile_pwned}), '', 'no trap call recorded');
is($node->safe_psql('fleet', q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'h\_%' AND rolsuper}), 0, 'no login became superuser');
my $log = slurp_file($node->logfile);
unlike($log, qr/HOSTILE-TRAP/, 'no trap warning in the server log');
unlike($log, qr/terminated by signal/, 'no backend crashed');

# negative control: a SECURITY DEFINER function written the vulnerable way
# (no pinned search_path, an unqualified cast) is caught by the same trap
$node->safe_psql('fleet', q{
CREATE FUNCTION public.vulnerable(v text) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $v$
BEGIN RETURN v::text IS NOT NULL; END $v$;
REVOKE ALL ON FUNCTION public.vulnerable(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.vulnerable(text) TO h_app;});
($ret, my $ctl_out, my $ctl_err) = $node->psql('fleet', "\\set ON_ERROR_STOP 1\n" . plant('h_app') . "SELECT public.vulnerable('x');\n",
	extra_params => [ '-U', 'h_app' ]);
is($ret, 0, 'control: the vulnerable function ran') or diag($ctl_err);
cmp_ok($node->safe_psql('fleet', q{SELECT last_value - 1 + is_called::int FROM public.hostile_hits}), '>', 0,
	'control: the trap caught the vulnerable function');
is($node->safe_psql('fleet', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'h_app'}), 't',
	'control: and the attack it carries works (h_app became superuser)');
$node->safe_psql('fleet', 'ALTER ROLE h_app NOSUPERUSER; DROP FUNCTION public.vulnerable(text)');

$node->stop;
done_testing();

sub gmtime_iso
{
	my @g = gmtime(shift);
	return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1, $g[3], $g[2], $g[1], $g[0]);
}
