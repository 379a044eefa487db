#!/bin/bash
# perl under zcmem: hashes, arrays, regexes and string building over generated text; output compared.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require perl
cat >"$ZC_WORK/work.pl" <<'PL'
use strict; use warnings;
my ($seed, %count, %pos, @lines) = (12345);
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }
my @syl = qw(ka zu mi ro te na shi po lu ve qa dr);
for my $l (1 .. 60000) {
  my @w = map { join '', map { $syl[rnd() % @syl] } 1 .. 1 + rnd() % 4 } 1 .. 3 + rnd() % 12;
  push @lines, join ' ', @w;
  for my $i (0 .. $#w) { $count{$w[$i]}++; push @{ $pos{$w[$i]} }, $l if @{ $pos{$w[$i]} || [] } < 20; }
  shift @lines if @lines > 5000;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 24];
print "$_ $count{$_} @{$pos{$_}}[0..4]\n" for @top;
my $text = join "\n", @lines;
my $n = () = $text =~ /\b(\w*zu\w*)\b/g;
(my $t2 = $text) =~ s/(ka|mi)+/uc $&/ge;
print "words ", scalar(keys %count), " zu-words $n len ", length($t2), "\n";
my %rev; $rev{reverse $_} = $_ for keys %count;
print "palindromes ", scalar(grep { exists $count{$_} && $rev{$_} eq $_ } keys %rev), "\n";
PL
zc_run_both perl perl perl "$ZC_WORK/work.pl"
zc_finish
