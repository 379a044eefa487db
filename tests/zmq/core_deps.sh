#!/bin/sh
# The core library needs only libc, pthreads and the kernel, even in a build that has the ZeroMQ transport:
# its NEEDED entries are libc's family (and a sanitizer build's runtime), never libzmq; neither the shared
# library nor the static archive calls a zmq_ symbol; the transport library is the one that needs libzmq.
# The transport library neither forks nor registers fork handlers (docs/zmq.md, "Fork"): it imports none of
# fork, vfork, clone, posix_spawn, pthread_atfork (__register_atfork).
# Usage: core_deps.sh LIBZCMEM.so LIBZCMEM_STATIC.a LIBZCMEM_ZMQ.so
core=$1 archive=$2 zmqlib=$3
fail=0
needed=$(readelf -d "$core" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || { echo "core_deps: no NEEDED entries read from $core"; exit 1; }
for lib in $needed; do
  case "$lib" in
    libc.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libm.so.*|ld-linux*.so.*|libgcc_s.so.*) ;;
    libubsan.so.*|libasan.so.*|libtsan.so.*) ;; # a sanitizer build's runtime
    *) echo "core_deps: $core needs $lib"; fail=1 ;;
  esac
done
calls=$( (nm -u "$archive"; nm -D --undefined-only "$core") 2>/dev/null | grep -o 'zmq_[A-Za-z0-9_]*' | sort -u)
if [ -n "$calls" ]; then
  echo "core_deps: the core library calls libzmq:" $calls; fail=1
fi
readelf -d "$zmqlib" | grep -q 'NEEDED.*libzmq' || { echo "core_deps: $zmqlib does not need libzmq?"; fail=1; }
forks=$(nm -D --undefined-only "$zmqlib" 2>/dev/null |
  grep -oE '\b(fork|vfork|clone|clone3|posix_spawnp?|pthread_atfork|__register_atfork)(@[A-Z_.0-9]+)?$' | sort -u)
if [ -n "$forks" ]; then
  echo "core_deps: $zmqlib forks or registers fork handlers:" $forks; fail=1
fi
nm -D --defined-only "$zmqlib" 2>/dev/null | grep -q ' zc_zmq_bind$' ||
  { echo "core_deps: no dynamic symbols read from $zmqlib"; fail=1; }
echo "core_deps: $core needs: $needed"
[ $fail = 0 ] && echo "core_deps: passed"
exit $fail
