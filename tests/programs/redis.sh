#!/bin/bash
# redis-server under zcmem: 200,000 keys filled, read back, freed by FLUSHALL ASYNC (lazy free: redis's
# background thread frees what the main thread allocated, every free a remote free), filled again, and
# digested; the client's output compared with a run on the system malloc (Debian's redis links jemalloc,
# whose malloc the preload takes over; the check below proves the binding).
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require redis-server redis-cli
cat >"$ZC_WORK/work.sh" <<'SH'
set -u
sock=$PWD/redis.sock
redis-server --port 0 --unixsocket "$sock" --dir "$PWD" --save '' --appendonly no --logfile "$PWD/redis.log" \
  --enable-debug-command yes --lazyfree-lazy-user-flush yes &
pid=$!
for _ in $(seq 1200); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
cli() { redis-cli -s "$sock" "$@"; }
cli debug populate 200000 key 64
cli dbsize
cli get key:4711
cli debug digest
for i in $(seq 50); do cli rpush list "item-$i-$(printf '%0*d' $((i * 37)) 0)" >/dev/null; done
cli hset h a 1 b 22 c 333
cli append key:7 "-grown-$(printf '%0300d' 7)" >/dev/null
cli strlen key:7
cli lrange list 10 12 | cut -c1-40
cli debug digest
cli flushall async
for _ in $(seq 100); do [ "$(cli dbsize)" = 0 ] && break; sleep 0.05; done
cli dbsize
cli debug populate 100000 other 200
cli dbsize
cli debug digest
cli shutdown nosave >/dev/null 2>&1
wait $pid
echo "exit $?"
SH
zc_run_both redis redis-server bash "$ZC_WORK/work.sh"
zc_finish
