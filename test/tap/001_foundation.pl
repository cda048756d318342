# Foundation under restart and crash: fleet loads only from
# shared_preload_libraries, survives restarts and kill -9 of the postmaster
# with every committed row kept, and its tenant context cannot be injected
# through connection options.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FleetTest;

my $node = fleet_node('fleet_main');
my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('Crash Test Ltd')");
ok($tenant > 0, 'tenant created');

# Restart: the extension and its data are there, the context works.
$node->restart;
is($node->safe_psql('fleet', "SELECT fleet.set_tenant($tenant) = $tenant"), 't',
	'tenant context works after restart');

# Committed rows survive kill -9 of the postmaster; the open transaction's do not.
$node->safe_psql('fleet', qq{
	SELECT fleet.set_tenant($tenant);
	INSERT INTO fleet.vehicle (tenant_id, code)
	SELECT $tenant, 'V-' || g FROM generate_series(1, 500) g;
});
my $bg = $node->background_psql('fleet');
$bg->query_safe("SELECT fleet.set_tenant($tenant)");
$bg->query_safe('BEGIN');
$bg->query_safe("INSERT INTO fleet.vehicle (tenant_id, code) SELECT $tenant, 'U-' || g FROM generate_series(1, 100) g");
crash_and_restart($node);
eval { $bg->quit; };
is($node->safe_psql('fleet', "SELECT fleet.set_tenant($tenant); SELECT count(*) FROM fleet.vehicle"),
	"$tenant\n500", 'after kill -9: the 500 committed vehicles, none of the uncommitted');
is($node->safe_psql('fleet', 'SELECT count(*) FROM fleet.check_schema_rules()'), '0',
	'schema rules hold after crash recovery');

# The tenant context cannot come in through connection options.
my ($ret, $stdout, $stderr) = $node->psql('fleet', 'SELECT fleet.current_tenant()',
	extra_params => [ '-d', $node->connstr('fleet') . " options='-c fleet.tenant=$tenant'" ]);
isnt($stdout, "$tenant", 'fleet.tenant set through connection options is not honoured');

$node->stop;

# Without shared_preload_libraries fleet refuses to load.
my $bare = PostgreSQL::Test::Cluster->new('fleet_bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron'\n");
$bare->start;
($ret, $stdout, $stderr) = $bare->psql('postgres', 'CREATE EXTENSION fleet CASCADE');
isnt($ret, 0, 'CREATE EXTENSION fails without preloading');
like($stderr, qr/fleet can only be loaded via shared_preload_libraries/, 'with a clear message');
$bare->stop;

done_testing();
