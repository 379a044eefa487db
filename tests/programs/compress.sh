#!/bin/bash
# Multi-threaded compressors under zcmem: xz -T2 (liblzma's threaded encoder: each worker thread allocates
# its multi-MiB block buffers, the main thread frees what the workers hand back) and zstd -T2 (zstdmt's
# worker pool and buffer pool, freed across threads), on 10 MB of generated text: each compresses and
# decompresses; the compressed streams' digests (the same bytes for the same thread count and block size)
# and the round-trip digests must equal the system malloc's.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require xz zstd awk sha256sum
awk 'BEGIN { for (i = 1; i <= 300000; i++) printf "%d row-%07d %s\n", (i * 7919) % 1000003, (i * 104729) % 9999991, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26, 1 + i % 17) }' \
  > "$ZC_WORK/input.txt"
size=$(wc -c < "$ZC_WORK/input.txt")
[ "$size" -gt 6000000 ] || { echo "FAIL: generated input is only $size bytes"; exit 1; }
# xz closes stderr at exit (tuklib_exit), before zcmem's exit report could be written
ZC_NO_STATS="xz closes stderr before the exit report"
zc_run_both xz xz sh -c 'f=$0
  xz -T2 -2 --block-size=1MiB -c "$f" > in.xz && sha256sum < in.xz
  xz -T2 -dc in.xz | sha256sum
  sha256sum < "$f"' "$ZC_WORK/input.txt"
unset ZC_NO_STATS
zc_run_both zstd zstd sh -c 'f=$0
  zstd -q -T2 -6 --long=24 -c "$f" > in.zst && sha256sum < in.zst
  zstd -q -T2 -dc --long=24 in.zst | sha256sum' "$ZC_WORK/input.txt"
zc_finish
