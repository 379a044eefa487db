#!/bin/sh
# install_test.sh BUILD_DIR SCRATCH: install BUILD_DIR into SCRATCH/prefix and use the package two ways.
set -eu
build=$1 scratch=$2
rm -rf "$scratch" && mkdir -p "$scratch/use"
"$CMAKE" --install "$build" --prefix "$scratch/prefix" >/dev/null
for f in include/zcmem.h lib/libzcmem.a lib/pkgconfig/zcmem.pc lib/cmake/zcmem/zcmemConfig.cmake; do
  [ -e "$scratch/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
cat > "$scratch/use/main.c" <<'C'
#include <zcmem.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char *p = zc_malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "installed");
  printf("%s %zu\n", p, zc_usable_size(p) >= 100 ? (size_t)1 : (size_t)0);
  zc_free(p);
  return 0;
}
C
# 1. pkg-config (the .pc file finds its prefix from where it is installed)
pcdir="$scratch/prefix/lib/pkgconfig"
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs zcmem)
$CC "$scratch/use/main.c" $flags -Wl,-rpath,"$scratch/prefix/lib" -o "$scratch/use/by_pkgconfig"
out=$("$scratch/use/by_pkgconfig")
[ "$out" = "installed 1" ] || { echo "FAIL: pkg-config build printed '$out'"; exit 1; }
# 2. find_package(zcmem)
cat > "$scratch/use/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(use_zcmem C)
find_package(zcmem REQUIRED)
add_executable(by_cmake main.c)
target_link_libraries(by_cmake PRIVATE zcmem::zcmem_prefixed)
C
"$CMAKE" -S "$scratch/use" -B "$scratch/use/build" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
"$CMAKE" --build "$scratch/use/build" >/dev/null
out=$("$scratch/use/build/by_cmake")
[ "$out" = "installed 1" ] || { echo "FAIL: find_package build printed '$out'"; exit 1; }
echo "install_package: headers, libraries, pkg-config and CMake package work"
