# Helpers for the fault scenarios (test/tap/2xx_*.pl): a simulated fleet
# with vehicles, fleet-loadgen runs in the background with ack and sent
# logs, the checker (test/checker/fleet-check), and the figures each
# scenario records for docs/RELIABILITY.md (scripts/reliability-table.pl).
#
# FLEET_SOAK=1 (make soak) makes every scenario run longer and harder;
# soak(short, long) picks the figure.
package FleetChaos;

use strict;
use warnings;
use POSIX ':sys_wait_h';
use Time::HiRes qw(time usleep);
use Test::More;
use Exporter 'import';
our @EXPORT = qw(soak chaos_fixture loadgen_start loadgen_wait fleet_check record_result
  gw_metric pids_of_cluster signal_cluster backend_pids);

my $REPO = $ENV{FLEET_REPO} || '.';
our $LOADGEN = "$REPO/services/build/fleet-loadgen";
our $CHECKER = "$REPO/test/checker/fleet-check";

sub soak
{
	my ($short, $long) = @_;
	return $ENV{FLEET_SOAK} ? $long : $short;
}

# A tenant with n Teltonika, n OsmAnd and n GT06 devices, each on its own
# vehicle, and a login role "gw" for the gateway.  Returns the tenant id.
# %o: name, imei_base, prefix (OsmAnd ids are <prefix>-osm-<n>; default ch).
sub chaos_fixture
{
	my ($node, $n, %o) = @_;
	my $base = $o{imei_base} || 350000000000000;
	my $prefix = $o{prefix} || 'ch';
	my $tenant = $node->safe_psql('fleet', "SELECT fleet.create_tenant('" . ($o{name} || 'Chaos Carriers') . "')");
	$node->safe_psql('fleet', qq{
		SELECT fleet.create_roles();
		DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gw') THEN
			CREATE ROLE gw LOGIN IN ROLE fleet_ingest; END IF; END \$\$;
		SELECT fleet.set_tenant($tenant);
		INSERT INTO fleet.vehicle (tenant_id, code) SELECT $tenant, 'CH-' || g FROM generate_series(0, 3 * $n - 1) g;
		INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
		SELECT $tenant, CASE WHEN g < $n OR g >= 2 * $n THEN ($base + g)::text ELSE '$prefix-osm-' || (g - $n) END,
		       CASE WHEN g < $n THEN 'teltonika' WHEN g < 2 * $n THEN 'osmand' ELSE 'gt06' END,
		       (SELECT vehicle_id FROM fleet.vehicle v WHERE v.tenant_id = $tenant AND v.code = 'CH-' || g)
		  FROM generate_series(0, 3 * $n - 1) g;
	});
	return $tenant;
}

# Start fleet-loadgen in the background against a gateway; its logs go to
# $dir/$name.{acked,sent,out}.  %o: n (devices per protocol), duration,
# rate, extra (array).  The device layout matches chaos_fixture (Teltonika
# first, then OsmAnd ids ch-osm-<n>, then GT06).
sub loadgen_start
{
	my ($gw, $dir, $name, %o) = @_;
	my $n = $o{n} || 5;
	my @cmd = ($LOADGEN, '--teltonika-port', $gw->{teltonika}, '--osmand-port', $gw->{osmand},
		'--gt06-port', $gw->{gt06}, '--teltonika', $n, '--osmand', $n, '--gt06', $n,
		'--id-prefix', $o{prefix} || 'ch', '--imei-base', $o{imei_base} || 350000000000000,
		'--duration', $o{duration} || 5, '--per-packet', 3, '--seed', $o{seed} || 11,
		'--ack-file', "$dir/$name.acked", '--sent-file', "$dir/$name.sent",
		($o{rate} ? ('--rate', $o{rate}) : ()), @{ $o{extra} || [] });
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', "$dir/$name.out") or die;
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd) or POSIX::_exit(127);
	}
	return { pid => $pid, dir => $dir, name => $name, t0 => time };
}

# Wait for the load generator to finish; returns its summary as a hash.
sub loadgen_wait
{
	my ($lg) = @_;
	waitpid($lg->{pid}, 0);
	my $out = do { local $/; open(my $fh, '<', "$lg->{dir}/$lg->{name}.out") or die; <$fh> };
	note("loadgen $lg->{name}: $out");
	my %kv = $out =~ /(\w+)=(\S+)/g;
	$kv{acked_file} = "$lg->{dir}/$lg->{name}.acked";
	$kv{sent_file} = "$lg->{dir}/$lg->{name}.sent";
	return \%kv;
}

# Run the checker against a node; returns (figures hash, exit code).
# %o: loadgens (array of loadgen_wait results), acked/sent (extra
# KIND:FILE specs), views, reconcile ("from,to").
sub fleet_check
{
	my ($node, %o) = @_;
	my @args = ('--dsn', $node->connstr('fleet'));
	for my $r (@{ $o{loadgens} || [] })
	{
		push @args, '--acked', "position:$r->{acked_file}", '--sent', "position:$r->{sent_file}";
	}
	push @args, map { ('--acked', $_) } @{ $o{acked} || [] };
	push @args, map { ('--sent', $_) } @{ $o{sent} || [] };
	push @args, '--views' if $o{views};
	push @args, '--reconcile', $o{reconcile} if $o{reconcile};
	my $out = `'$CHECKER' @{[ map { "'$_'" } @args ]} 2>&1`;
	my $rc = $? >> 8;
	diag($out);					# the counts are printed with every scenario
	my ($line) = $out =~ /^(fleet-check: acknowledged=.*)$/m;
	my %fig = ($line // '') =~ /(\w+)=(\S+)/g;
	return (\%fig, $rc);
}

# Append a scenario's figures to the results file read by
# scripts/reliability-table.pl.
sub record_result
{
	my (%r) = @_;
	my $file = $ENV{FLEET_RESULTS} || (($ENV{TESTDIR} || '.') . '/reliability.tsv');
	open(my $fh, '>>', $file) or return;
	my $f = $r{fig} || {};
	print $fh join("\t", $r{scenario}, $r{load}, $r{faults}, $f->{acknowledged} // '-',
		$f->{lost} // '-', $f->{doubled} // '-',
		defined $r{recovery} ? sprintf('%.1f s', $r{recovery}) : '-',
		$ENV{FLEET_SOAK} ? 'soak' : 'short', $r{note} // ''), "\n";
	close $fh;
	return;
}

# A gauge or counter from the gateway's /metrics.
sub gw_metric
{
	my ($gw, $name) = @_;
	my ($st, $body) = GatewayTest::http_get($gw->{admin}, 'GET', '/metrics');
	return $body =~ /^\Q$name\E(?:\{[^}]*\})? (\S+)$/m ? $1 : undef;
}

# Pids of a cluster's postmaster and all its children.
sub pids_of_cluster
{
	my ($node) = @_;
	my $pm = $node->{_pid};
	my @kids = grep { /^\d+$/ } split /\s+/, `pgrep -P $pm 2>/dev/null`;
	return ($pm, @kids);
}

sub signal_cluster
{
	my ($node, $sig) = @_;
	kill($sig, pids_of_cluster($node));
	return;
}

# Backend pids of a login role's connections (the TAP framework sets
# PGAPPNAME, which hides the services' application names).
sub backend_pids
{
	my ($node, $user) = @_;
	return grep { /^\d+$/ } split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE usename = '$user' AND backend_type = 'client backend'");
}

1;
