# Shared part of the real-program tests: each script sources this file, runs its workload twice (system
# malloc, then LD_PRELOAD=libzcmem.so) and compares the outputs byte for byte.
# The zcmem run must prove that zcmem was the allocator of the program (zc_run_both PROG ...):
#   - the dynamic loader bound PROG's own calls to malloc to libzcmem.so (LD_DEBUG=bindings, written to
#     files, so a program that closes stderr is covered too), and
#   - ZCMEM_STATS=2 made at least one process print zcmem's JSON report at exit with memory reserved
#     (> 0 bytes), unless the script sets ZC_NO_STATS to the reason it cannot (e.g. sort closes stderr).
#
# Usage in a script:  . lib.sh; zc_init "$@"; zc_require prog...; zc_run_both name prog command args...
# Exit codes: 0 pass, 1 fail, 77 skip (a required program is missing and $CI is not set; under CI a
# missing program is a failure, since scripts/deps.sh installs them all).
set -u

zc_init() {
  ZC_LIB=${1:-}
  if [ -z "$ZC_LIB" ] || [ ! -f "$ZC_LIB" ]; then
    echo "FAIL: usage: $0 <path of libzcmem.so> (got '${ZC_LIB}')"
    exit 1
  fi
  ZC_LIB=$(cd "$(dirname "$ZC_LIB")" && pwd)/$(basename "$ZC_LIB")
  ZC_NAME=$(basename "$0" .sh)
  ZC_WORK=$(mktemp -d "${TMPDIR:-/tmp}/zcmem-prog-$ZC_NAME.XXXXXX")
  trap 'rm -rf "$ZC_WORK"' EXIT
  ZC_FAILED=0
  # the library must really load: the dynamic loader maps it into a preloaded process
  if ! LD_PRELOAD="$ZC_LIB" grep -q zcmem /proc/self/maps 2>"$ZC_WORK/preload.err"; then
    echo "FAIL: $ZC_NAME: LD_PRELOAD=$ZC_LIB does not load the library:"
    cat "$ZC_WORK/preload.err"
    exit 1
  fi
}

zc_require() {
  for p in "$@"; do
    if ! command -v "$p" >/dev/null 2>&1; then
      if [ -n "${CI:-}" ]; then
        echo "FAIL: $ZC_NAME: '$p' is not installed (CI must have it: scripts/deps.sh installs it)"
        exit 1
      fi
      echo "SKIP: $ZC_NAME: '$p' is not installed (run scripts/deps.sh as root to install it)"
      exit 77
    fi
  done
}

# zc_run_both NAME PROG CMD...: runs CMD in a fresh directory under the system malloc and under zcmem;
# stdout must match and both must exit 0; the zcmem run must print no "zcmem: error" line, and PROG (the
# program under test, started by CMD) must be shown to run on zcmem (see the top of this file).
zc_run_both() {
  local name=$1 prog=$2
  shift 2
  local mode
  for mode in system zcmem; do
    local dir="$ZC_WORK/$name.$mode"
    mkdir -p "$dir"
    local rc=0
    if [ "$mode" = system ]; then
      (cd "$dir" && env -u LD_PRELOAD -u ZCMEM_STATS "$@") >"$dir.out" 2>"$dir.err" || rc=$?
    else
      (cd "$dir" && LD_PRELOAD="$ZC_LIB" ZCMEM_STATS=2 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$ZC_WORK/$name.ld" "$@") \
        >"$dir.out" 2>"$dir.err" || rc=$?
    fi
    if [ $rc -ne 0 ]; then
      echo "FAIL: $ZC_NAME/$name under $mode malloc exited with $rc; stderr:"
      tail -n 30 "$dir.err"
      ZC_FAILED=1
    fi
  done
  zc_check_zcmem "$name" "$prog"
  if grep -q "zcmem: error" "$ZC_WORK/$name.zcmem.err"; then
    echo "FAIL: $ZC_NAME/$name: the allocator reported errors:"
    grep "zcmem: error" "$ZC_WORK/$name.zcmem.err" | head -n 5
    ZC_FAILED=1
  fi
  if ! cmp -s "$ZC_WORK/$name.system.out" "$ZC_WORK/$name.zcmem.out"; then
    echo "FAIL: $ZC_NAME/$name: output differs between the system malloc and zcmem:"
    diff "$ZC_WORK/$name.system.out" "$ZC_WORK/$name.zcmem.out" | head -n 20
    ZC_FAILED=1
  elif [ ! -s "$ZC_WORK/$name.system.out" ]; then
    echo "FAIL: $ZC_NAME/$name printed nothing: the comparison would prove nothing"
    ZC_FAILED=1
  else
    echo "ok: $ZC_NAME/$name: identical output ($(wc -c <"$ZC_WORK/$name.system.out") bytes) under both allocators"
  fi
}

# zc_check_zcmem NAME PROG: the zcmem run of NAME really ran PROG on zcmem.
zc_check_zcmem() {
  local name=$1 prog=$2
  local binds
  binds=$(cat "$ZC_WORK/$name.ld".* 2>/dev/null |
    grep -cE "binding file ([^ ]*/)?$prog \[0\] to [^ ]*libzcmem[^ ]* \[0\]: normal symbol .malloc'")
  if [ "${binds:-0}" -eq 0 ]; then
    echo "FAIL: $ZC_NAME/$name: the loader never bound $prog's malloc to libzcmem.so (LD_DEBUG=bindings)"
    ZC_FAILED=1
  else
    echo "ok: $ZC_NAME/$name: $prog's malloc bound to libzcmem.so in $binds process(es)"
  fi
  if [ -n "${ZC_NO_STATS:-}" ]; then
    echo "note: $ZC_NAME/$name: no ZCMEM_STATS check: $ZC_NO_STATS"
    return
  fi
  local reports
  reports=$(grep -cE '^\{"allocated":[0-9]+,"committed":[0-9]+,"purged":[0-9]+,"reserved":[1-9][0-9]*,' \
    "$ZC_WORK/$name.zcmem.err")
  if [ "${reports:-0}" -eq 0 ]; then
    echo "FAIL: $ZC_NAME/$name: no process printed zcmem's ZCMEM_STATS=2 report with memory reserved"
    ZC_FAILED=1
  else
    echo "ok: $ZC_NAME/$name: $reports zcmem exit report(s) with memory reserved"
  fi
}

zc_finish() {
  if [ "$ZC_FAILED" -ne 0 ]; then
    echo "$ZC_NAME: FAILED"
    exit 1
  fi
  echo "$ZC_NAME: passed"
  exit 0
}
