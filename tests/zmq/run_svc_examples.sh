#!/bin/sh
# Runs examples/zmq_svc_server and zmq_svc_client against each other, unchanged, over a local service name
# (the shared-memory channel services) and over tcp://127.0.0.1:* (ZeroMQ). Both must exit 0 and the
# client must find every reply right (it fails on a bad one).
set -u
server=$1 client=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/zcmem-svc-examples.XXXXXX")
trap 'rm -rf "$dir"' EXIT
calls=3000
[ -n "${ZC_TEST_QUICK:-}" ] && calls=1000

run() { # run <endpoint to listen on>
  out=$dir/server.out
  rm -f "$out"
  timeout 100 "$server" "$1" >"$out" &
  spid=$!
  ep=""
  i=0
  while [ -z "$ep" ] && [ $i -lt 1200 ]; do
    ep=$(sed -n 's/^listening on //p' "$out" 2>/dev/null)
    sleep 0.05
    i=$((i + 1))
  done
  [ -n "$ep" ] || { kill $spid; echo "server on $1 never listened"; exit 1; }
  timeout 100 "$client" "$ep" $calls || { kill $spid 2>/dev/null; echo "client on $ep failed"; exit 1; }
  wait $spid || { cat "$out"; echo "server on $ep failed"; exit 1; }
  cat "$out"
  grep -q "^server .*: $calls requests served" "$out" || { echo "server on $ep did not serve $calls"; exit 1; }
}

run "zcmem-svc-example-$$"
run "tcp://127.0.0.1:*"
echo "zmq_svc_examples: ok"
