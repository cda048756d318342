# A fleet service as a child process of a TAP test (used by
# services/gateway/test/GatewayTest.pm and services/sync/test/SyncTest.pm):
# start it with its output appended to a log, wait for its "listening" line,
# stop it with SIGTERM (and a deadline) or kill -9, poll for a condition.
package ServiceProc;

use strict;
use warnings;
use POSIX ':sys_wait_h';
use Time::HiRes qw(usleep time);
use Exporter 'import';
our @EXPORT = qw(service_start service_stop service_kill9 poll_until);

# Start @$cmd with stdout and stderr appended to $log; wait (up to $tries x
# 50 ms) for the first line after the log's current end matching $listening
# and return (pid, its captures).  Dies if the program exits first or never
# reports.
sub service_start
{
	my ($name, $cmd, $log, $listening, $tries) = @_;
	my $off = -s $log || 0;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $log) or die;
		open(STDERR, '>>', $log) or die;
		exec(@$cmd) or POSIX::_exit(127);
	}
	for (my $i = 0; $i < ($tries || 300); $i++)
	{
		if (open(my $fh, '<', $log))
		{
			seek($fh, $off, 0);
			local $/;
			my $text = <$fh>;
			close $fh;
			my @got = $text =~ $listening;
			return ($pid, @got) if @got;
		}
		die "$name exited early, see $log" if waitpid($pid, WNOHANG) == $pid;
		usleep(50_000);
	}
	die "$name did not report its ports, see $log";
}

# SIGTERM (unless already sent) and wait; returns the exit status, -1 when
# the deadline passed (the process is then killed).
sub service_stop
{
	my ($pid, $timeout, $already_signalled) = @_;
	kill('TERM', $pid) unless $already_signalled;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		my $r = waitpid($pid, WNOHANG);
		return $? >> 8 if $r == $pid;
		usleep(20_000);
	}
	kill('KILL', $pid);
	waitpid($pid, 0);
	return -1;
}

sub service_kill9
{
	my ($pid) = @_;
	kill('KILL', $pid);
	waitpid($pid, 0);
	return;
}

# Poll a sub every 100 ms until it returns true (1) or the timeout passes (0).
sub poll_until
{
	my ($cb, $timeout) = @_;
	my $deadline = time + ($timeout || 60);
	while (time < $deadline)
	{
		return 1 if $cb->();
		usleep(100_000);
	}
	return 0;
}

1;
