# Shared helpers for fleet's TAP tests.
package FleetTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Exporter 'import';
our @EXPORT = qw(fleet_node crash_and_restart);

# A node with fleet and pg_cron preloaded and the extension created in
# database "fleet" (pg_cron's database).  Extra settings may be passed.
sub fleet_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} || {} });
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'fleet,pg_cron'
cron.database_name = 'fleet'
fleet.database = 'fleet'
} . ($opts{conf} || ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE fleet');
	$node->safe_psql('fleet', 'CREATE EXTENSION fleet CASCADE');
	return $node;
}

# kill -9 the postmaster, wait until the process is really gone (the
# sandbox's init may reap it late, and a live pid blocks the restart), then
# start again and wait for crash recovery.
sub crash_and_restart
{
	my ($node) = @_;
	my $pid = $node->{_pid};
	$node->kill9;
	for (my $i = 0; $i < 200 && kill(0, $pid); $i++)
	{
		usleep(50_000);
	}
	$node->start;
	return;
}

1;
