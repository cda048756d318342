#!/usr/bin/perl
# owner_sql.pl - fail when SQL text in the extension's C files names a type
# or a relation without its schema.
#
# fleet runs much of its SQL with the extension owner's rights (FleetAsOwner,
# see extension/owner.c), where search_path is pinned to "pg_catalog, pg_temp"
# and any role can create temporary types and tables.  Pinning keeps the
# caller's schemas out, but a relation or a type that is not in pg_catalog
# would still be looked up in pg_temp; so every cast (::type, CAST(.. AS
# type)) and every relation after FROM, JOIN, INTO, UPDATE, TABLE, USING or
# LIKE in a C string literal must carry its schema (pg_catalog.int8,
# fleet.stop).  Function calls (a name followed by "(") are left to the
# pinned path: functions and operators are never looked up in pg_temp.
#
# Usage: perl test/lint/owner_sql.pl [files...]   (default: extension/*.c)
# Prints each finding as file:line: text and exits 1 if there is any.
use strict;
use warnings;

my @files = @ARGV ? @ARGV : glob('extension/*.c');
my %keyword = map { $_ => 1 } qw(
  select lateral only rows unnest values with as on where set not exists
  distinct all recursive coalesce nullif greatest least case when then
  else end row array and or null true false default conflict do nothing
  of generate_series jsonb_to_recordset jsonb_array_elements jsonb_each
  jsonb_each_text jsonb_populate_recordset fleet pg_catalog);
my $bad = 0;

for my $file (@files)
{
	open my $fh, '<', $file or die "$file: $!";
	my @lines = <$fh>;
	close $fh;
	my $text = join '', @lines;
	# drop comments, keep line numbers (newlines stay)
	$text =~ s{/\*.*?\*/}{ (my $c = $&) =~ s/[^\n]/ /g; $c }gse;
	$text =~ s{//[^\n]*}{ ' ' x length($&) }ge;
	# statements' string literals: adjacent literals joined, with the line
	# of the first one
	my @chunks;
	while ($text =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g)
	{
		my $lit   = $1;
		my $start = $-[1];
		my $line  = 1 + (substr($text, 0, $start) =~ tr/\n//);
		my $sql   = join '', ($lit =~ /"((?:[^"\\\n]|\\.)*)"/g);
		$sql =~ s/\\n/ /g;
		$sql =~ s/\\t/ /g;
		$sql =~ s/\\"/"/g;
		# SQL text starts with a statement keyword (messages do not)
		next unless $sql =~ /^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|LOCK|TABLE|VALUES|SET|ANALYZE|TRUNCATE|MERGE)\b/i
		  || $sql =~ /^\s*(FROM|JOIN|WHERE|AND|OR|ON|,|\))\s/i;
		push @chunks, [ $line, $sql ];
	}
	for my $c (@chunks)
	{
		my ($line, $sql) = @$c;
		# strings inside the SQL (quoted literals) are not names
		(my $s = $sql) =~ s/'(?:[^']|'')*'/''/g;
		# format placeholders (%s, %I, %u, ...) are filled by the caller
		$s =~ s/%[-0-9.]*[a-zA-Z]+/ _placeholder_ /g;
		# common table expressions are found before any schema: not relations
		my %cte = map { lc($_) => 1 } ($s =~ /(?:\bWITH(?:\s+RECURSIVE)?|,)\s*([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(/gi);
		my @found;
		while ($s =~ /::\s*((?>"?[A-Za-z_]\w*"?))(?!\s*\.)/g)
		{
			push @found, "cast to $1";
		}
		while ($s =~ /\bCAST\s*\(.*?\bAS\s+((?>"?[A-Za-z_]\w*"?))(?!\s*\.)/gi)
		{
			push @found, "cast to $1";
		}
		while ($s =~ /\b(FROM|JOIN|INTO|UPDATE|TABLE|USING|LIKE)\s+(?:ONLY\s+)?((?>"?[A-Za-z_]\w*"?))(?!\s*\.)/gi)
		{
			my ($kw, $name) = ($1, $2);
			# after FROM, JOIN or USING a name and "(" is a function call
			next if $kw =~ /^(FROM|JOIN|USING)$/i && substr($s, pos($s)) =~ /^\s*\(/;
			next if $keyword{ lc $name };
			next if $name eq '_placeholder_' || $cte{ lc $name };
			next if uc($kw) eq 'LIKE' && $s !~ /\bCREATE\b/i;
			push @found, "relation $name after \U$kw";
		}
		for my $f (@found)
		{
			print "$file:$line: unqualified $f in: $sql\n";
			$bad = 1;
		}
	}
}
exit $bad;
