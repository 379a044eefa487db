#!/bin/sh
# Runs examples/zmq_pub and two zmq_sub against each other, unchanged, over a UNIX socket path (the
# shared-memory fan-out), tcp://127.0.0.1:* and ipc:// (ZeroMQ). All must exit 0; each subscriber must
# count every notice, in order and intact (it fails on a bad one).
set -u
pub=$1 sub=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/zcmem-pub-examples.XXXXXX")
trap 'rm -rf "$dir"' EXIT
notices=5000
[ -n "${ZC_TEST_QUICK:-}" ] && notices=2000

run() { # run <endpoint to listen on>
  out=$dir/pub.out
  rm -f "$out"
  timeout 100 "$pub" "$1" 2 $notices >"$out" &
  ppid_=$!
  ep=""
  i=0
  while [ -z "$ep" ] && [ $i -lt 1200 ]; do
    ep=$(sed -n 's/^listening on //p' "$out" 2>/dev/null)
    sleep 0.05
    i=$((i + 1))
  done
  [ -n "$ep" ] || { kill $ppid_; echo "publisher on $1 never listened"; exit 1; }
  timeout 100 "$sub" "$ep" $notices >"$dir/s1.out" &
  s1=$!
  timeout 100 "$sub" "$ep" $notices >"$dir/s2.out" &
  s2=$!
  ok=1
  wait $s1 || ok=0
  wait $s2 || ok=0
  wait $ppid_ || ok=0
  cat "$out" "$dir/s1.out" "$dir/s2.out"
  [ $ok = 1 ] || { echo "fan-out examples on $ep failed"; exit 1; }
}

run "$dir/cache.sock"
run "tcp://127.0.0.1:*"
run "ipc://$dir/cache.ipc"
echo "zmq_pub_examples: ok"
