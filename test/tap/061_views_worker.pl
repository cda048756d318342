# The fleet views worker keeps views within their bound without anyone
# calling refresh, and every refresh announces itself with NOTIFY.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;

my $node = fleet_node('fleet_views', conf => "fleet.views_naptime = 100\n");

$node->safe_psql('fleet', q{
	CREATE TABLE public.reading (tenant_id bigint NOT NULL, sensor int NOT NULL, at timestamptz NOT NULL, v int);
	SELECT fleet.create_view('public.reading_latest', 'latest', '2 seconds', source => 'public.reading',
		keys => ARRAY['tenant_id', 'sensor'], columns => ARRAY['v'], order_by => ARRAY['at']);
	SELECT fleet.create_view('public.reading_total', 'rollup', '3 seconds', source => 'public.reading',
		keys => ARRAY['tenant_id'], aggregates => ARRAY['n = count(*)', 's = sum(v)']);
});

# Rows written after the views were built show up without any explicit refresh.
$node->safe_psql('fleet', q{
	INSERT INTO public.reading SELECT 1, g % 10, now() - g * interval '1 s', g FROM generate_series(1, 1000) g;
});
ok($node->poll_query_until('fleet', q{SELECT n = 1000 FROM public.reading_total}),
	'the worker merged the new rows into the rollup');
ok($node->poll_query_until('fleet', q{SELECT count(*) = 10 FROM public.reading_latest}),
	'and into the latest view');

# It keeps refreshing (as_of moves on even without new rows) and stays within the bound.
my $before = $node->safe_psql('fleet',
	q{SELECT refreshes FROM fleet.view_status WHERE view = 'public.reading_latest'::regclass});
ok($node->poll_query_until('fleet',
	qq{SELECT refreshes > $before + 2 FROM fleet.view_status WHERE view = 'public.reading_latest'::regclass}),
	'refreshed again without new rows');
is($node->safe_psql('fleet', q{SELECT count(*) FROM fleet.view_status WHERE last_error IS NOT NULL}),
	'0', 'no refresh failed');
is($node->safe_psql('fleet', q{SELECT count(*) FROM fleet.view_status WHERE as_of IS NULL}),
	'0', 'every view, built-in ones included, has been refreshed');

# Every view verifies against a recomputation.
is($node->safe_psql('fleet',
	q{SELECT count(*) FROM fleet.view_status s, LATERAL fleet.verify_view(s.view) d}),
	'0', 'every view equals a full recomputation');

# NOTIFY after each refresh, with the view, its as_of and the rows changed.
my ($ret, $stdout, $stderr) = $node->psql('fleet', q{
	LISTEN fleet_view_refreshed;
	INSERT INTO public.reading VALUES (2, 1, now(), 5);
	SELECT fleet.refresh_view('public.reading_total');
});
like($stdout, qr/Asynchronous notification "fleet_view_refreshed" with payload "\{"view" : "public\.reading_total", "as_of" : "[^"]+", "rows_changed" : 1, "rebuild" : false\}"/,
	'NOTIFY fleet_view_refreshed carries view, as_of and rows changed');

# Switched off, the worker leaves the views alone; switched on again, it resumes.
$node->safe_psql('fleet', q{ALTER SYSTEM SET fleet.views_enabled = off; SELECT pg_reload_conf();});
sleep(1);
my $off = $node->safe_psql('fleet', q{SELECT sum(refreshes) FROM fleet.view_status});
sleep(3);
is($node->safe_psql('fleet', q{SELECT sum(refreshes) FROM fleet.view_status}), $off,
	'no refreshes while fleet.views_enabled is off');
$node->safe_psql('fleet', q{ALTER SYSTEM RESET fleet.views_enabled; SELECT pg_reload_conf();});
ok($node->poll_query_until('fleet', qq{SELECT sum(refreshes) > $off FROM fleet.view_status}),
	'refreshes resume when it is on again');

$node->stop;
done_testing();
