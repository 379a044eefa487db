#!/bin/sh
# install_zmq.sh BUILD_DIR SCRATCH: install BUILD_DIR into SCRATCH/prefix, then build and run a program
# with find_package(zcmem COMPONENTS zmq) and zcmem::zcmem_zmq (an inproc round trip through zc_ep_*).
set -eu
build=$1 scratch=$2
rm -rf "$scratch" && mkdir -p "$scratch/use"
"$CMAKE" --install "$build" --prefix "$scratch/prefix" >/dev/null
for f in include/zcmem_zmq.h lib/libzcmem_zmq.so; do
  [ -e "$scratch/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
cat > "$scratch/use/main.c" <<'C'
#include <zcmem_zmq.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  zc_ep_t *c = zc_ep_listen("inproc://installed", ZC_CHAN_CONSUMER, NULL);
  zc_ep_t *p = zc_ep_connect("inproc://installed", ZC_CHAN_PRODUCER, NULL);
  if (c == NULL || p == NULL) return 1;
  char *b = zc_ep_loan(p, 10);
  strcpy(b, "installed");
  if (zc_ep_send(p, b, 10, 7) != 0) return 2;
  zc_chan_msg_t m;
  if (zc_ep_receive(c, &m, 5000) != 0 || m.type != 7) return 3;
  printf("%s\n", (const char *)m.data);
  zc_ep_release(c, &m);
  zc_ep_close(p);
  zc_ep_close(c);
  return 0;
}
C
cat > "$scratch/use/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(use_zcmem_zmq C)
find_package(zcmem REQUIRED COMPONENTS zmq)
add_executable(by_cmake main.c)
target_link_libraries(by_cmake PRIVATE zcmem::zcmem_zmq)
C
"$CMAKE" -S "$scratch/use" -B "$scratch/use/build" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
"$CMAKE" --build "$scratch/use/build" >/dev/null
out=$("$scratch/use/build/by_cmake")
[ "$out" = "installed" ] || { echo "FAIL: the installed zcmem_zmq printed '$out'"; exit 1; }
echo "zmq_install: find_package(zcmem COMPONENTS zmq) and zcmem::zcmem_zmq work"
