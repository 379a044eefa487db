#!/bin/bash
# git under zcmem: init, add and commit many files, more commits, gc, fsck; the hashes and listings must
# match a run on the system malloc (dates and identities are fixed, so they are deterministic).
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require git awk
cat >"$ZC_WORK/work.sh" <<'SH'
set -e
export GIT_AUTHOR_NAME=zc GIT_AUTHOR_EMAIL=zc@example.invalid GIT_COMMITTER_NAME=zc
export GIT_COMMITTER_EMAIL=zc@example.invalid GIT_AUTHOR_DATE='2026-01-01T00:00:00Z'
export GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' GIT_CONFIG_NOSYSTEM=1 HOME=$PWD
git init -q -b main repo
cd repo
git config pack.threads 1
awk 'BEGIN { for (d = 1; d <= 20; d++) { system("mkdir -p dir" d)
  for (f = 1; f <= 100; f++) { p = "dir" d "/f" f ".txt"; printf "file %d of dir %d\n", f, d > p
    for (k = f; k <= f + d * 3; k++) print k > p
    close(p) } } }'
git add -A
git commit -q -m "2000 files"
for round in 1 2 3 4 5; do
  for d in $(seq $round 4 20); do sed -i "1s/\$/ round $round/" dir$d/f*.txt; done
  git add -A
  git commit -q -m "round $round"
done
git gc -q --aggressive
git fsck --strict --no-progress
git rev-parse HEAD HEAD~5
git rev-list --count HEAD
git ls-tree -r HEAD | sha256sum
git log --stat --format='%H %s' | sha256sum
git diff HEAD~3 HEAD --stat | tail -n 1
SH
zc_run_both git git bash "$ZC_WORK/work.sh"
zc_finish
