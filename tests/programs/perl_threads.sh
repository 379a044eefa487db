#!/bin/bash
# perl ithreads under zcmem: six worker threads take arrays from a Thread::Queue, build hashes and send the
# results back through a second queue (each value is copied into the receiving thread's interpreter and
# freed by it: frees across threads), then are joined; output compared with the system malloc's.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require perl
perl -Mthreads -MThread::Queue -e 1 2>/dev/null || { echo "SKIP: this perl has no ithreads"; exit 77; }
cat >"$ZC_WORK/work.pl" <<'PL'
use strict; use warnings; use threads; use Thread::Queue;
my ($q, $r) = (Thread::Queue->new, Thread::Queue->new);
my @w = map {
  threads->create(sub {
    my $sum = 0;
    while (defined(my $x = $q->dequeue)) {
      my %h = map { $_ => "v$_" x (1 + $_ % 7) } @$x;
      $sum += length join '', values %h;
      $r->enqueue([ map { "$_-" . length($h{$_}) } sort keys %h ]);
    }
    return $sum;
  })
} 1 .. 6;
for my $i (1 .. 8000) { $q->enqueue([ map { $i * 7 + $_ } 1 .. 20 ]); }
$q->end;
my $tot = 0;
$tot += $_->join for @w;
my ($n, $len) = (0, 0);
while (defined(my $y = $r->dequeue_nb)) { $n += @$y; $len += length join '', @$y; }
print "$tot $n $len\n";
PL
zc_run_both perl_threads perl perl "$ZC_WORK/work.pl"
zc_finish
