#!/bin/sh
# Runs the two example programs against each other: the engine (consumer) listens, the web-server stand-in
# (producer) connects with 4 threads; both must exit 0 (the engine fails on any bad request).
set -u
consumer=$1 producer=$2
sock=${TMPDIR:-/tmp}/zcmem-examples-$$.sock
"$consumer" "$sock" &
cpid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
"$producer" "$sock" 4 20000 || { kill $cpid 2>/dev/null; echo "producer failed"; exit 1; }
wait $cpid || { echo "consumer failed"; exit 1; }
