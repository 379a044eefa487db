#!/bin/sh
# Runs examples/zmq_consumer and zmq_producer against each other over each transport, unchanged: a UNIX
# socket path (shared-memory channel), tcp://127.0.0.1:* and ipc://. Both must exit 0, and the consumer
# must count every request (it fails on a bad one).
set -u
consumer=$1 producer=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/zcmem-zmq-examples.XXXXXX")
trap 'rm -rf "$dir"' EXIT
threads=4 per=5000
[ -n "${ZC_TEST_QUICK:-}" ] && per=2000
total=$((threads * per))

run() { # run <endpoint to listen on>
  out=$dir/consumer.out
  rm -f "$out"
  timeout 100 "$consumer" "$1" $total >"$out" &
  cpid=$!
  ep=""
  i=0
  while [ -z "$ep" ] && [ $i -lt 1200 ]; do
    ep=$(sed -n 's/^listening on //p' "$out" 2>/dev/null)
    sleep 0.05
    i=$((i + 1))
  done
  [ -n "$ep" ] || { kill $cpid; echo "consumer on $1 never listened"; exit 1; }
  case "$ep" in /*) i=0; while [ ! -S "$ep" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done ;; esac
  timeout 100 "$producer" "$ep" $threads $per || { kill $cpid 2>/dev/null; echo "producer on $ep failed"; exit 1; }
  wait $cpid || { cat "$out"; echo "consumer on $ep failed"; exit 1; }
  cat "$out"
}

run "$dir/engine.sock"
run "tcp://127.0.0.1:*"
run "ipc://$dir/engine.ipc"
echo "zmq_examples: ok"
