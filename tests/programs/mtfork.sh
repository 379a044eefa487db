#!/bin/bash
# The multithreaded fork program (mtfork.c) under zcmem; output compared with the system malloc's.
# Usage: mtfork.sh <libzcmem.so> <mtfork executable>
. "$(dirname "$0")/lib.sh"
zc_init "$1"
zc_require sort
if [ ! -x "${2:-}" ]; then echo "FAIL: mtfork executable '${2:-}' not found"; exit 1; fi
zc_run_both mtfork "$(basename "$2")" "$2"
zc_finish
