# Helpers for the sync service's end-to-end tests (test/tap/08*_sync_service*.pl):
# a TAP node with a tenant, drivers, jobs and stops; fleet-sync started on
# free ports next to it; a real HTTP client (HTTP::Tiny, keep-alive).
package SyncTest;

use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use POSIX ':sys_wait_h';
use Time::HiRes qw(usleep time);
use lib (($ENV{FLEET_REPO} || '.') . '/services/common/test');
use ServiceProc;
use Exporter 'import';
our @EXPORT = qw(sync_start sync_stop api admin_get wait_until setup_tenant issue_token replica_apply);

my $REPO = $ENV{FLEET_REPO} || '.';
our $BIN = "$REPO/services/build/fleet-sync";
our $JSON = JSON::PP->new->canonical(1)->allow_nonref(1);

# Start fleet-sync on free ports; returns {pid, port, admin, log}.
# %o: dsn (required), dir (log), extra (array of flags).
sub sync_start
{
	my (%o) = @_;
	my $log = "$o{dir}/sync.log";
	my @cmd = ($BIN, '--dsn', $o{dsn}, '--bind', '127.0.0.1', '--port', 0, '--admin-port', 0,
		'--log-level', 'info', @{ $o{extra} || [] });
	my ($pid, $port, $admin) = service_start('fleet-sync', \@cmd, $log, qr/msg="listening" port=(\d+) admin=(\d+)/, 600);
	return { pid => $pid, log => $log, port => $port, admin => $admin,
		http => HTTP::Tiny->new(keep_alive => 1, timeout => 120) };
}

# SIGTERM (unless already sent) and wait; returns the exit status, -1 on timeout.
sub sync_stop
{
	my ($s, $timeout, $already_signalled) = @_;
	return service_stop($s->{pid}, $timeout || 60, $already_signalled);
}

# One API request: (status, decoded body or undef, raw body, headers).
# $body: a Perl structure (sent as JSON) or a string (sent as is).
sub api
{
	my ($s, $method, $path, $token, $body, %o) = @_;
	my %h = ('Content-Type' => 'application/json');
	$h{Authorization} = "Bearer $token" if defined $token;
	my %args = (headers => \%h);
	$args{content} = ref $body ? $JSON->encode($body) : $body if defined $body;
	my $http = $o{fresh} ? HTTP::Tiny->new(timeout => 120) : $s->{http};
	my $r = $http->request($method, "http://127.0.0.1:$s->{port}$path", \%args);
	my $j = eval { $JSON->decode($r->{content}) };
	return ($r->{status}, $j, $r->{content}, $r->{headers});
}

sub admin_get
{
	my ($s, $path) = @_;
	my $r = HTTP::Tiny->new(timeout => 30)->get("http://127.0.0.1:$s->{admin}$path");
	return ($r->{status}, $r->{content});
}

# Poll until the sub returns true or the timeout passes.
sub wait_until { return poll_until(@_); }

# A tenant with a vehicle, drivers, one job per driver and $stops stops each;
# returns {tenant, drivers => [ids], stops => {driver => [ids]}}.
sub setup_tenant
{
	my ($node, $name, $ndrivers, $stops) = @_;
	my $t = $node->safe_psql('fleet', "SELECT fleet.create_tenant('$name')");
	my %r = (tenant => $t, drivers => [], stops => {});
	for my $d (1 .. $ndrivers)
	{
		my $out = $node->safe_psql('fleet', qq{
			SELECT fleet.set_tenant($t);
			WITH v AS (INSERT INTO fleet.vehicle (tenant_id, code, name) VALUES ($t, '$name-V$d', 'Van $d') RETURNING vehicle_id),
			     dr AS (INSERT INTO fleet.driver (tenant_id, code, name) VALUES ($t, '$name-D$d', 'Driver $d') RETURNING driver_id),
			     j AS (INSERT INTO fleet.job (tenant_id, code, vehicle_id, driver_id, status)
			           SELECT $t, '$name-J$d', v.vehicle_id, dr.driver_id, 'assigned' FROM v, dr RETURNING job_id, driver_id)
			INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
			SELECT $t, j.job_id, g, j.driver_id, 'Street ' || g FROM j, generate_series(1, $stops) g
			RETURNING driver_id, stop_id;
		});
		my @lines = grep { /\|/ } split /\n/, $out;
		my ($driver) = split /\|/, $lines[0];
		push @{ $r{drivers} }, $driver;
		$r{stops}{$driver} = [ map { (split /\|/)[1] } @lines ];
	}
	return \%r;
}

# Register a client for a driver and issue a token; returns the token.
sub issue_token
{
	my ($node, $tenant, $client, $driver, $valid) = @_;
	$valid //= '1 day';
	return $node->safe_psql('fleet', qq{
		SELECT fleet.set_tenant($tenant) \\g /dev/null
		SELECT fleet.sync_register_client('$client', $driver) \\g /dev/null
		SELECT token FROM fleet.sync_issue_token('$client', '$valid');
	});
}

# Apply a pull page to a replica {"entity:id" => data}.
sub replica_apply
{
	my ($rep, $page) = @_;
	for my $c (@{ $page->{changes} })
	{
		if ($c->{op} eq 'clear') { %$rep = (); }
		elsif ($c->{op} eq 'del') { delete $rep->{"$c->{entity}:$c->{id}"}; }
		else { $rep->{"$c->{entity}:$c->{id}"} = $c->{data}; }
	}
	return;
}

1;
