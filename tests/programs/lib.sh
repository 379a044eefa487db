# Shared part of the real-program tests: each script sources this file, runs its workload twice (system
# malloc, then LD_PRELOAD=libzcmem.so) and compares the outputs byte for byte.
#
# Usage in a script:  . lib.sh; zc_init "$@"; zc_require prog...; zc_run_both name command args...
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

# zc_run_both NAME CMD...: runs CMD in a fresh directory under the system malloc and under zcmem; stdout
# must match and both must exit 0; the zcmem run must print no "zcmem: error" line.
zc_run_both() {
  local name=$1
  shift
  local mode
  for mode in system zcmem; do
    local dir="$ZC_WORK/$name.$mode"
    mkdir -p "$dir"
    local rc=0
    if [ "$mode" = system ]; then
      (cd "$dir" && env -u LD_PRELOAD "$@") >"$dir.out" 2>"$dir.err" || rc=$?
    else
      (cd "$dir" && LD_PRELOAD="$ZC_LIB" "$@") >"$dir.out" 2>"$dir.err" || rc=$?
    fi
    if [ $rc -ne 0 ]; then
      echo "FAIL: $ZC_NAME/$name under $mode malloc exited with $rc; stderr:"
      tail -n 30 "$dir.err"
      ZC_FAILED=1
    fi
  done
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

zc_finish() {
  if [ "$ZC_FAILED" -ne 0 ]; then
    echo "$ZC_NAME: FAILED"
    exit 1
  fi
  echo "$ZC_NAME: passed"
  exit 0
}
