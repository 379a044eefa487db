#!/bin/bash
# Everyday tools under zcmem: bash (arrays, subshells, command substitution), tar piped through gzip (both
# ways), find over /usr/include, make -j2 driving gcc (cc1, as, collect2: the compiler's own obstacks and
# big allocations) on generated C files whose program is then run. Outputs must match the system malloc's.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require bash tar gzip find make gcc sha256sum
ZC_NO_STATS="tar, find and sha256sum close stderr before the exit report"

zc_run_both bash bash bash -c 'declare -A m; s=""
  for i in $(seq 1 20000); do a[$i]=$((i * i % 7919)); m[k$i]=${a[$i]}; done
  for i in $(seq 1 300); do s+=$(echo "$i" | tr 0-9 a-j); done
  echo "${#a[@]} ${#m[@]} ${#s} ${m[k12345]} $(printf "%s\n" "${a[@]}" | sort -n | tail -n 1)"'

zc_run_both tar tar sh -c 'tar -cf - -C /usr/include --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner . \
  2>/dev/null | gzip -n -6 | gzip -d | tar -tvf - | sha256sum'

zc_run_both find find sh -c 'find /usr/include -name "*.h" -size +2k | LC_ALL=C sort | sha256sum'

# Generated sources: 12 files with many functions and a big initialised table each.
mkdir -p "$ZC_WORK/src"
for f in $(seq 1 12); do
  {
    echo "int f$f(int x);"
    echo "static const int t$f[] = {"; seq -s, 1 3000; echo "};"
    for g in $(seq 1 150); do echo "static int g${f}_$g(int x) { return x * $g + t$f[x % 3000] - $f; }"; done
    echo "int f$f(int x) { int s = 0;"
    for g in $(seq 1 150); do echo "  s += g${f}_$g(x + $g);"; done
    echo "  return s; }"
  } > "$ZC_WORK/src/f$f.c"
done
{
  echo "#include <stdio.h>"
  for f in $(seq 1 12); do echo "int f$f(int x);"; done
  echo "int main(void) { long s = 0;"
  for f in $(seq 1 12); do echo "  s += f$f($f);"; done
  echo "  printf(\"%ld\\n\", s); return 0; }"
} > "$ZC_WORK/src/main.c"
cat > "$ZC_WORK/src/Makefile" <<'MK'
OBJS := $(patsubst %.c,%.o,$(sort $(wildcard $(SRC)/*.c)))
prog: $(notdir $(OBJS))
	gcc -o $@ $^
%.o: $(SRC)/%.c
	gcc -O2 -c -o $@ $<
MK
zc_run_both make cc1 sh -c 'make -s -j2 -f "$0/Makefile" SRC="$0" && ./prog' "$ZC_WORK/src"
zc_finish
