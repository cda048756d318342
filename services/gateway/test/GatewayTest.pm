# Helpers for the device gateway's end-to-end tests (test/tap/07*_gateway*.pl):
# start and stop fleet-gateway next to a TAP node, talk to it over real
# sockets, build Teltonika and GT06 frames.
package GatewayTest;

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use POSIX ':sys_wait_h';
use Time::HiRes qw(usleep time);
use Test::More;
use lib (($ENV{FLEET_REPO} || '.') . '/services/common/test');
use ServiceProc;
use Exporter 'import';
our @EXPORT = qw(gw_start gw_stop gw_kill9 tcp_connect send_hex read_reply expect_closed
  crc16_ibm tlt_login_hex tlt_avl_hex gt06_login_hex read_tsv http_get wait_for);

my $REPO = $ENV{FLEET_REPO} || '.';
our $BIN = "$REPO/services/build/fleet-gateway";

# Start fleet-gateway on free ports; returns a hash with pid and ports.
# %opts: dsn (required), dir (journal and log), extra (array of flags).
sub gw_start
{
	my (%o) = @_;
	my $log = "$o{dir}/gateway.log";
	my @cmd = ($BIN, '--dsn', $o{dsn}, '--bind', '127.0.0.1',
		'--osmand-port', 0, '--teltonika-port', 0, '--gt06-port', 0, '--admin-port', 0,
		'--journal-dir', "$o{dir}/journal", '--log-level', 'info', @{ $o{extra} || [] });
	my ($pid, @ports) = service_start('fleet-gateway', \@cmd, $log,
		qr/msg="listening" osmand=(-?\d+) teltonika=(-?\d+) teltonika_udp=(-?\d+) gt06=(-?\d+) admin=(\d+)/);
	my %gw = (pid => $pid, log => $log, dir => $o{dir});
	@gw{qw(osmand teltonika udp gt06 admin)} = @ports;
	return \%gw;
}

# SIGTERM and wait; returns the exit status (or -1 on timeout).
sub gw_stop
{
	my ($gw, $timeout, $already_signalled) = @_;
	return service_stop($gw->{pid}, $timeout || 30, $already_signalled);
}

sub gw_kill9
{
	my ($gw) = @_;
	service_kill9($gw->{pid});
	return;
}

sub tcp_connect
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
	  or die "connect $port: $!";
	$s->autoflush(1);
	setsockopt($s, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
	return $s;
}

sub send_hex
{
	my ($s, $hex) = @_;
	my $bytes = pack('H*', $hex);
	my $off = 0;
	while ($off < length $bytes)
	{
		my $w = syswrite($s, $bytes, length($bytes) - $off, $off);
		return 0 unless defined $w;
		$off += $w;
	}
	return 1;
}

# Read until n bytes arrived, EOF, or the timeout; returns the hex read.
sub read_reply
{
	my ($s, $n, $timeout) = @_;
	my $sel = IO::Select->new($s);
	my $buf = '';
	my $deadline = time + ($timeout // 10);
	while (length($buf) < $n)
	{
		my $left = $deadline - time;
		last if $left <= 0;
		last unless $sel->can_read($left);
		my $r = sysread($s, $buf, $n - length($buf), length($buf));
		last unless $r;
	}
	return unpack('H*', $buf);
}

# True if the peer closes the connection (EOF or reset) within the timeout
# without sending anything.
sub expect_closed
{
	my ($s, $timeout) = @_;
	my $sel = IO::Select->new($s);
	my $deadline = time + ($timeout // 10);
	while (time < $deadline)
	{
		next unless $sel->can_read($deadline - time);
		my $buf;
		my $r = sysread($s, $buf, 64);
		return 1 if !defined $r || $r == 0;
		return 0;				# got bytes
	}
	return 0;
}

sub crc16_ibm
{
	my ($bytes) = @_;
	my $crc = 0;
	for my $b (unpack('C*', $bytes))
	{
		$crc ^= $b;
		for (1 .. 8)
		{
			$crc = ($crc & 1) ? (($crc >> 1) ^ 0xA001) : ($crc >> 1);
		}
	}
	return $crc;
}

sub tlt_login_hex
{
	my ($imei) = @_;
	return unpack('H*', pack('n', length $imei) . $imei);
}

# A Codec 8 AVL packet: records are [ms, lat, lon, speed_kmh, angle, alt].
sub tlt_avl_hex
{
	my (@recs) = @_;
	my $data = pack('CC', 8, scalar @recs);
	for my $r (@recs)
	{
		my ($ms, $lat, $lon, $speed, $angle, $alt) = @$r;
		$data .= pack('Q>C', $ms, 0)
		  . pack('l>l>s>nCn', int($lon * 1e7), int($lat * 1e7), $alt // 0, $angle // 0, 9, $speed // 0)
		  . pack('CCCCCC', 0, 0, 0, 0, 0, 0);
	}
	$data .= pack('C', scalar @recs);
	return unpack('H*', pack('NN', 0, length $data) . $data . pack('N', crc16_ibm($data)));
}

# Read a TSV of vectors: skips comments, returns rows as arrays (or hashes
# when $header is true: the first non-comment line names the columns).
sub read_tsv
{
	my ($path, $header) = @_;
	open(my $fh, '<', $path) or die "$path: $!";
	my (@rows, @cols);
	while (my $l = <$fh>)
	{
		chomp $l;
		next if $l =~ /^#/ || $l eq '';
		my @f = split /\t/, $l, -1;
		if ($header && !@cols)
		{
			@cols = @f;
			next;
		}
		if ($header)
		{
			my %h;
			@h{@cols} = @f;
			push @rows, \%h;
		}
		else
		{
			push @rows, \@f;
		}
	}
	close $fh;
	return \@rows;
}

# Minimal HTTP/1.0 client: returns (status, body).
sub http_get
{
	my ($port, $method, $path, $ctype, $body, $headers) = @_;
	my $s = tcp_connect($port);
	$body //= '';
	my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n";
	$req .= "Content-Type: $ctype\r\n" if $ctype;
	$req .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers || {} };
	$req .= 'Content-Length: ' . length($body) . "\r\n" if $method ne 'GET' || length $body;
	$req .= "\r\n$body";
	syswrite($s, $req);
	my $sel = IO::Select->new($s);
	my $resp = '';
	my $deadline = time + 30;
	while (time < $deadline && $sel->can_read($deadline - time))
	{
		my $r = sysread($s, $resp, 65536, length $resp);
		last unless $r;
	}
	close $s;
	return (0, '') unless $resp =~ m{^HTTP/1\.\d (\d{3})};
	my $status = $1;
	my ($hdr, $b) = split /\r\n\r\n/, $resp, 2;
	return ($status, $b // '');
}

# Poll a sub until it returns true or the timeout passes.
sub wait_for { return poll_until(@_); }

1;
