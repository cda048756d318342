#!/usr/bin/perl
# reliability-table.pl RESULTS.tsv DOC.md
#
# Render the figures the fault scenarios (test/tap/2xx_*.pl) wrote with
# FleetChaos::record_result into the table between the markers
#   <!-- reliability:begin --> ... <!-- reliability:end -->
# of DOC.md (docs/RELIABILITY.md); the rest of the document is kept.
# RESULTS.tsv columns: scenario, load, faults, acknowledged, lost, doubled,
# recovery, run (short|soak), note.
use strict;
use warnings;

my ($results, $doc) = @ARGV;
die "usage: reliability-table.pl RESULTS.tsv DOC.md\n" unless $results && $doc;
open(my $rf, '<', $results) or die "$results: $! (run make test or make soak first)\n";
my @rows = map { chomp; [ split /\t/, $_, -1 ] } grep { /\S/ } <$rf>;
close $rf;
die "$results: no figures\n" unless @rows;

my $host = `uname -srm`;
chomp $host;
my $cpus = `nproc 2>/dev/null` || '?';
chomp $cpus;
my ($date) = `date -u '+%Y-%m-%d %H:%M UTC'` =~ /(.+)/;
my %runs = map { $_->[7] => 1 } @rows;
my $table = "Last run: $date, " . join('/', sort keys %runs) . " scenarios, on $host with $cpus CPUs"
  . " (shared machine: figures are order-of-magnitude).\n\n"
  . "| Scenario | Load held | Faults injected | Acknowledged | Lost | Doubled | Recovery | Note |\n"
  . "|---|---|---|---:|---:|---:|---:|---|\n";
for my $r (@rows)
{
	my @c = map { my $x = $_ // ''; $x =~ s/\|/\\|/g; $x } @$r;
	$table .= "| $c[0] | $c[1] | $c[2] | $c[3] | $c[4] | $c[5] | $c[6] | $c[8] |\n";
}

open(my $df, '<', $doc) or die "$doc: $!\n";
my $text = do { local $/; <$df> };
close $df;
$text =~ s/(<!-- reliability:begin -->\n).*?(<!-- reliability:end -->)/$1$table$2/s
  or die "$doc: markers <!-- reliability:begin/end --> not found\n";
open($df, '>', $doc) or die "$doc: $!\n";
print $df $text;
close $df;
print "reliability-table: ", scalar(@rows), " scenarios written to $doc\n";
