#!/bin/bash
# gawk under zcmem: associative arrays, split, sprintf and sorting over generated text; output compared.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require gawk
cat >"$ZC_WORK/work.awk" <<'AWK'
BEGIN {
  srand(7)
  n = split("ka zu mi ro te na shi po lu ve qa dr", syl, " ")
  for (l = 1; l <= 80000; l++) {
    line = ""
    nw = 3 + int(rand() * 10)
    for (i = 0; i < nw; i++) {
      w = ""
      for (k = 0; k <= int(rand() * 4); k++) w = w syl[1 + int(rand() * n)]
      count[w]++
      line = line " " w
      if (length(first[w]) < 40) first[w] = first[w] sprintf("%d,", l)
    }
    keep[l % 3000] = line
  }
  PROCINFO["sorted_in"] = "@val_num_desc"
  shown = 0
  for (w in count) { if (shown++ < 25) printf "%s %d %s\n", w, count[w], first[w] }
  total = 0
  for (k in keep) total += split(keep[k], parts, / +/)
  delete count
  printf "kept words %d\n", total
}
AWK
zc_run_both gawk gawk gawk -f "$ZC_WORK/work.awk"
zc_finish
