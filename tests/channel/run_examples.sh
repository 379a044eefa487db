#!/bin/sh
# Runs the two example programs against each other: the engine (consumer) listens, the web-server stand-in
# (producer) connects with 4 threads of 10000 requests; both must exit 0 (the producer fails if a loan or
# send failed, the engine on any bad request or any error but the producer's end), and the engine must
# count exactly 40000 good requests.
set -u
consumer=$1 producer=$2
sock=${TMPDIR:-/tmp}/zcmem-examples-$$.sock
out=${TMPDIR:-/tmp}/zcmem-examples-$$.out
"$consumer" "$sock" >"$out" &
cpid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
# The socket file appears at bind, a moment before listen: a connect in between is refused. Only that
# failure (before any message went) is retried; any other failure of the producer fails the test.
err=${TMPDIR:-/tmp}/zcmem-examples-$$.err
i=0
while :; do
  if "$producer" "$sock" 4 10000 2>"$err"; then break; fi
  if grep -q "Connection refused" "$err" && [ $i -lt 400 ]; then i=$((i + 1)); sleep 0.05; continue; fi
  cat "$err"; rm -f "$err" "$out"; kill $cpid 2>/dev/null; echo "producer failed"; exit 1
done
cat "$err"; rm -f "$err"
wait $cpid || { cat "$out"; rm -f "$out"; echo "consumer failed"; exit 1; }
cat "$out"
grep -q "^engine: 40000 requests (.*), bad 0," "$out" || { rm -f "$out"; echo "the engine did not count 40000 good requests"; exit 1; }
rm -f "$out"
echo "examples: 40000 requests end to end"
