#!/bin/bash
# Make sure the tools the build and the tests need are installed (Debian packages).
# As root with apt-get: installs what is missing (apt-get update first, only if something is missing).
# Otherwise: prints what is missing and how to install it. Exit 0 when everything is there afterwards,
# 1 if something is still missing.
set -u

# command -> Debian package
declare -A need=(
  [cmake]=cmake [gcc]=gcc [make]=make [python3]=python3 [sqlite3]=sqlite3 [git]=git
  [gawk]=gawk [perl]=perl [valgrind]=valgrind [sort]=coreutils [sha256sum]=coreutils
  [pkg-config]=pkgconf [redis-server]=redis-server [redis-cli]=redis-tools
  [bash]=bash [tar]=tar [gzip]=gzip [find]=findutils [xz]=xz-utils [zstd]=zstd
)
# libraries without a command: the sanitizer runtimes of gcc 12 (UBSan, TSan, ASan), and libzmq
libs=(libubsan1 libtsan2 libasan8 libzmq3-dev) # libzmq3-dev: the ZeroMQ transport (zcmem_zmq) and its tests

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${libs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
# one entry per package
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps.sh: all build and test dependencies are installed"
  exit 0
fi
echo "deps.sh: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: not root or no apt-get: install them with: sudo apt-get install -y ${missing[*]}"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "deps.sh: apt-get update failed"; exit 1; }
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  { echo "deps.sh: apt-get install ${missing[*]} failed"; exit 1; }
echo "deps.sh: installed ${missing[*]}"
exit 0
