#!/bin/bash
# sort(1) under zcmem: a generated file of about 50 MB sorted in memory (large buffers, threads) three
# ways; the sorted outputs must be identical to the system malloc's.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require sort awk sha256sum
# coreutils close stderr at exit (gnulib close_stdout), before zcmem's exit report could be written
ZC_NO_STATS="sort and sha256sum close stderr before the exit report"
awk 'BEGIN { for (i = 1; i <= 1500000; i++) printf "%d key-%07d %s\n", (i * 7919) % 1000003, (i * 104729) % 9999991, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26, 1 + i % 9) }' \
  > "$ZC_WORK/input.txt"
size=$(wc -c < "$ZC_WORK/input.txt")
[ "$size" -gt 30000000 ] || { echo "FAIL: generated input is only $size bytes"; exit 1; }
zc_run_both sort sort sh -c 'export LC_ALL=C; f=$0
  sort -S 300M --parallel=2 "$f" | sha256sum
  sort -n -k1,1 -k2,2 -S 300M "$f" | sha256sum
  sort -u -k3,3 "$f" | sha256sum
  sort -r -k2 "$f" | head -n 3' "$ZC_WORK/input.txt"
zc_finish
