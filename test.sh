#!/bin/bash
# The project's test command: ./test.sh [--quick] [--only NAME[,NAME...]]
# Installs missing tools (scripts/deps.sh), then builds and runs ctest in these flavours:
#   release   build/        Release: every test except those labelled `valgrind`
#   debug     build-debug/  Debug with ZCMEM_DEBUG=ON: every test
#   ubsan     build-ubsan/  ZCMEM_SANITIZE=undefined: every test except those labelled `nosanitize`
#                           (the override and the real programs under LD_PRELOAD included)
#   tsan      build-tsan/   ZCMEM_SANITIZE=thread: every test built there except `nosanitize`
#   asan      build-asan/   ZCMEM_SANITIZE=address: every test built there except `nosanitize`
#   valgrind  build/        the tests labelled `valgrind` (memcheck on the prefixed API and the override)
# Under TSan and ASan the override tests are not built: those runtimes replace malloc themselves
# (tests/CMakeLists.txt says which tests run where). To keep a test out of the sanitizer builds, label it
# `nosanitize` in its CMakeLists.txt with a comment saying why; nothing else needs to change here.
# CI (.ci/run) runs the full suite, `./test.sh` without --quick (about 25 minutes on 2 cores).
# --quick sets ZC_TEST_QUICK=1, which the tests read to run shorter loops (for a fast local check).
# --only release,tsan runs only the flavours named.
# ZC_BUILD_PREFIX=build-x puts the build directories at build-x, build-x-debug, ... instead.
# Ends with, for each failed flavour, its failing tests and the last 40 lines of each one's output (the CI
# log is kept only in part), then one line "test.sh: N passed, N failed" counting the flavours; exits
# non-zero on a failure.
set -u
cd "$(dirname "$0")" || exit 1

quick=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) shift; only=",${1:-},";;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument $1 (usage: ./test.sh [--quick] [--only NAME,...])"; exit 2 ;;
  esac
  shift
done
[ $quick -eq 1 ] && export ZC_TEST_QUICK=1

bash scripts/deps.sh || echo "test.sh: warning: some dependencies are missing (see above)"

jobs=2
passed=0
failed=0
failed_names=()

# The sanitizer runtimes: stop at the first report; leak checking is off (LeakSanitizer cannot see zcmem's
# blocks, and the tests' own short-lived buffers are not what is tested).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:halt_on_error=1}
total_start=$SECONDS

# flavour NAME DIR CTEST_FILTER CMAKE_ARGS...: configure, build and run ctest with the filter (e.g. "-LE x").
flavour() {
  local name=$1 dir=$2 filter=$3
  shift 3
  if [ -n "$only" ] && [[ "$only" != *",$name,"* ]]; then return; fi
  echo "=== test.sh: $name ($dir) ==="
  local start=$SECONDS
  mkdir -p "$dir"
  if [ $# -gt 0 ]; then
    if ! cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
      cat "$dir/configure.log"
      echo "test.sh: $name: cmake configure FAILED"
      failed=$((failed + 1)); failed_names+=("$name (configure)")
      return
    fi
    if ! cmake --build "$dir" -j$jobs >"$dir/build.log" 2>&1; then
      grep -E "error|Error" "$dir/build.log" | head -n 40
      echo "test.sh: $name: build FAILED (full log: $dir/build.log)"
      failed=$((failed + 1)); failed_names+=("$name (build)")
      return
    fi
  fi
  local args=(--output-on-failure -j$jobs --timeout 600)
  # shellcheck disable=SC2206
  [ -n "$filter" ] && args+=($filter)
  rm -f "$dir/Testing/Temporary/LastTestsFailed.log" # ctest leaves it from an earlier failed run
  if (cd "$dir" && ctest "${args[@]}"); then
    passed=$((passed + 1))
    echo "test.sh: $name: passed in $((SECONDS - start)) s"
  else
    failed=$((failed + 1)); failed_names+=("$name")
    echo "test.sh: $name: FAILED after $((SECONDS - start)) s"
    # kept now: the valgrind flavour runs in the release directory and overwrites its ctest logs
    failure_report "$name" "$dir" >>"$report"
  fi
  timings+=("$name $((SECONDS - start)) s")
}

# failure_report NAME DIR: each test ctest found failing in DIR, with the last 40 lines of its output
# (from DIR/Testing/Temporary/LastTest.log; a test run twice, after a timeout, shows its last run). Printed
# again at the very end, because the CI log is kept only in part.
failure_report() {
  local name=$1 dir=$2 t log=$2/Testing/Temporary/LastTest.log
  local list=$dir/Testing/Temporary/LastTestsFailed.log
  if [ ! -s "$list" ]; then
    echo "--- $name: ctest failed, but $list lists no test"
    return
  fi
  while IFS= read -r t; do
    t=${t#*:}
    echo "--- $name: $t FAILED; the last 40 lines of its output:"
    awk -v t="$t" '
      $0 ~ /^[0-9]+\/[0-9]+ Test: / { cur = $0; sub(/^[0-9]+\/[0-9]+ Test: /, "", cur); inout = 0; next }
      cur == t && $0 == "Output:" { inout = 1; n = 0; getline; next }
      cur == t && inout && $0 == "<end of output>" { inout = 0; last = n; for (i = 1; i <= n; i++) keep[i] = buf[i]; next }
      cur == t && inout { buf[++n] = $0 }
      END { s = last > 40 ? last - 39 : 1; for (i = s; i <= last; i++) print "  " keep[i]; if (!last) print "  (no output recorded)" }
    ' "$log" 2>/dev/null
  done <"$list"
}

b=${ZC_BUILD_PREFIX:-build}
report=$(mktemp "${TMPDIR:-/tmp}/zcmem-test-report.XXXXXX")
trap 'rm -f "$report"' EXIT
timings=()
san=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DZCMEM_BUILD_BENCH=OFF)
flavour release "$b" "-LE valgrind" -DCMAKE_BUILD_TYPE=Release
flavour debug "$b-debug" "" -DCMAKE_BUILD_TYPE=Debug -DZCMEM_DEBUG=ON
# Sanitizer runs are 2-15x slower: a test that times out is run once more (a real hang times out twice).
sf="-LE nosanitize --repeat after-timeout:2"
# ... and their spawned children get 180 s instead of 60 before their alarm (tests/common/zc_child.h).
export ZC_TEST_CHILD_S=${ZC_TEST_CHILD_S:-180}
flavour ubsan "$b-ubsan" "$sf" "${san[@]}" -DZCMEM_SANITIZE=undefined
flavour tsan "$b-tsan" "$sf" "${san[@]}" -DZCMEM_SANITIZE=thread
flavour asan "$b-asan" "$sf" "${san[@]}" -DZCMEM_SANITIZE=address
# valgrind: the release build's tests labelled `valgrind` (built there when valgrind is installed)
if [ -z "$only" ] || [[ "$only" == *",valgrind,"* ]]; then
  [ -z "$only" ] || [ -f "$b/CTestTestfile.cmake" ] || cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
  [ -z "$only" ] || cmake --build "$b" -j$jobs >/dev/null
  flavour valgrind "$b" "-L valgrind"
fi

if [ -s "$report" ]; then
  echo "=== test.sh: the failed tests, per flavour ==="
  cat "$report"
fi
echo "test.sh: times: ${timings[*]}; total $((SECONDS - total_start)) s"
[ ${#failed_names[@]} -gt 0 ] && echo "test.sh: failed: ${failed_names[*]}"
echo "test.sh: $passed passed, $failed failed"
[ $failed -eq 0 ]
