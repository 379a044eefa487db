#!/bin/bash
# The project's test command: ./test.sh [--quick]
# Installs missing tools (scripts/deps.sh), then builds and runs ctest in four flavours:
#   build/        Release: every test
#   build-debug/  Debug with ZCMEM_DEBUG=ON: every test
#   build-ubsan/  ZCMEM_SANITIZE=undefined: the tests labelled `sanitize` (prefixed library only)
#   build-tsan/   ZCMEM_SANITIZE=thread: the tests labelled `sanitize`
# --quick (CI) sets ZC_TEST_QUICK=1, which the tests read to run shorter loops.
# ZC_BUILD_PREFIX=build-x puts the four build directories at build-x, build-x-debug, ... instead.
# Ends with one line "test.sh: N passed, N failed" counting the ctest runs; exits non-zero on a failure.
set -u
cd "$(dirname "$0")" || exit 1

quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument $a (usage: ./test.sh [--quick])"; exit 2 ;;
  esac
done
[ $quick -eq 1 ] && export ZC_TEST_QUICK=1

bash scripts/deps.sh || echo "test.sh: warning: some dependencies are missing (see above)"

jobs=2
passed=0
failed=0
failed_names=()

# flavour NAME DIR LABEL CMAKE_ARGS...: configure, build and run ctest (only tests labelled LABEL if set).
flavour() {
  local name=$1 dir=$2 label=$3
  shift 3
  echo "=== test.sh: $name ($dir) ==="
  local start=$SECONDS
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
  local args=(--output-on-failure -j$jobs --timeout 600)
  [ -n "$label" ] && args+=(-L "$label")
  if (cd "$dir" && ctest "${args[@]}"); then
    passed=$((passed + 1))
    echo "test.sh: $name: passed in $((SECONDS - start)) s"
  else
    failed=$((failed + 1)); failed_names+=("$name")
    echo "test.sh: $name: FAILED after $((SECONDS - start)) s"
  fi
}

b=${ZC_BUILD_PREFIX:-build}
mkdir -p "$b" "$b-debug" "$b-ubsan" "$b-tsan"
flavour release "$b" "" -DCMAKE_BUILD_TYPE=Release
flavour debug "$b-debug" "" -DCMAKE_BUILD_TYPE=Debug -DZCMEM_DEBUG=ON
flavour ubsan "$b-ubsan" sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZCMEM_SANITIZE=undefined -DZCMEM_BUILD_BENCH=OFF
flavour tsan "$b-tsan" sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZCMEM_SANITIZE=thread -DZCMEM_BUILD_BENCH=OFF

[ ${#failed_names[@]} -gt 0 ] && echo "test.sh: failed: ${failed_names[*]}"
echo "test.sh: $passed passed, $failed failed"
[ $failed -eq 0 ]
