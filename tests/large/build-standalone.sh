#!/bin/sh
# Standalone build of the large-region test without CMake: gcc on src/large.c, src/os_linux.c and the
# test stub (useful while the core does not build). Run from the repository root:
#   tests/large/build-standalone.sh [extra cflags]  ->  build-large/test_large <case>
set -e
mkdir -p build-large
gcc -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter "$@" -Iinclude -Isrc \
  src/large.c src/os_linux.c tests/large/stub.c tests/large/test_large.c -lpthread -o build-large/test_large
