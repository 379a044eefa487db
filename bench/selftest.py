#!/usr/bin/env python3
"""Self-test of the benchmark runner's arithmetic and parsers (ctest: bench_selftest).

    bench/selftest.py [<build>/bench]

Checks, on made-up inputs, what the report's figures rest on: the "tie" verdict, the system-call count of
the measured phase (marks, unfinished calls, thread stacks counted apart) and the split of a callgrind
profile into malloc and free. Given the directory of the built programs, it also checks the real thing: a
program's phase lines, a strace pass over a program that maps and unmaps (if strace is installed) and a
callgrind run of the fast-path loop (if valgrind is). Exits 0 when all pass, 1 on a failure.
Standard library only.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import callgrind  # noqa: E402
import suite  # noqa: E402
import syscalls  # noqa: E402
from report import verdict  # noqa: E402

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def cell(median, runs, ratio):
    return {"median": median, "runs": runs, "ratio": ratio}


def test_verdict():
    # a: 100 ±5%, b: 90 ±2% (ratio 1.11): the gap 0.11 is wider than the larger ± -> a wins.
    row = {"cells": {"a": cell(100, [95, 100, 105], 1.0), "b": cell(90, [89, 90, 91], 100 / 90)}}
    check(verdict(row) == "a", "verdict: a gap wider than both spreads names the best")
    # a: 100 ±15%, b: 90 (ratio 1.11): the gap is inside a's ± -> tie, both named, best first.
    row = {"cells": {"a": cell(100, [85, 100, 115], 1.0), "b": cell(90, [89, 90, 91], 100 / 90),
                     "c": cell(50, [50, 50, 50], 2.0)}}
    check(verdict(row) == "tie: a, b", "verdict: a gap inside the best's ± is a tie of the two")
    # The second's spread counts too.
    row = {"cells": {"a": cell(100, [100, 100, 100], 1.0), "b": cell(90, [70, 90, 110], 100 / 90)}}
    check(verdict(row) == "tie: a, b", "verdict: a gap inside the second's ± is a tie")
    row = {"cells": {"a": cell(None, [], None), "b": cell(90, [90], 1.0)}}
    check(verdict(row) == "b", "verdict: a failed cell does not rank")


TRACE = """\
100 mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7f0000000000
100 mmap(NULL, 4194304, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7e0000000000
100 faccessat(AT_FDCWD, "/zcbench-phase/begin", F_OK) = -1 ENOENT (No such file or directory)
101 madvise(0x7e0000010000, 65536, MADV_DONTNEED <unfinished ...>
100 mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0 <unfinished ...>
101 <... madvise resumed>) = 0
100 <... mmap resumed>) = 0x7d0000000000
102 madvise(0x7d0000001000, 8000000, MADV_DONTNEED) = 0
101 madvise(0x7f0000002000, 8000000, MADV_DONTNEED) = 0
101 munmap(0x7e0000000000, 4194304) = 0
[pid   103] mmap(NULL, 1048576, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7c0000000000
100 faccessat(AT_FDCWD, "/zcbench-phase/end", F_OK) = -1 ENOENT (No such file or directory)
100 munmap(0x7c0000000000, 1048576) = 0
"""


def test_count_phase():
    with tempfile.NamedTemporaryFile("w", suffix=".trace", delete=False) as f:
        f.write(TRACE)
    try:
        c = syscalls.count_phase(f.name)
    finally:
        os.unlink(f.name)
    check(c is not None, "count_phase: finds the phase marks")
    c = c or {}
    check(c.get("madvise") == 1, f"count_phase: one heap madvise in the phase (got {c.get('madvise')})")
    check(c.get("stack_madvise") == 2,
          f"count_phase: madvise on both thread stacks counted apart (got {c.get('stack_madvise')})")
    check(c.get("mmap") == 1 and c.get("stack_mmap") == 1,
          f"count_phase: the stack mapping made inside the phase counted apart (got {c})")
    check(c.get("munmap") == 1, "count_phase: the munmap after the end mark is left out")
    with tempfile.NamedTemporaryFile("w", suffix=".trace", delete=False) as f:
        f.write("100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1000\n")
    try:
        check(syscalls.count_phase(f.name) is None, "count_phase: no marks, no counts")
    finally:
        os.unlink(f.name)


PROFILE = """\
# callgrind format
version: 1
events: Ir
summary: 1300

ob=(5) /lib/liballoc.so
fl=(140) ???
fn=(594) malloc
0 200
cfn=(596) malloc_slow
calls=2 0
0 100

fn=(596)
0 100

fn=(672) free
0 500

ob=(6) /bench/fastpath
fl=(148) fastpath.c
fn=(682) zb_fastpath_loop
24 100
cob=(5)
cfi=(140)
cfn=(594)
calls=10 -25
* 300
+1 100
cfn=(672)
calls=10 -26
* 500
"""


def test_callgrind_parse():
    with tempfile.NamedTemporaryFile("w", suffix=".cg", delete=False) as f:
        f.write(PROFILE)
    try:
        alloc, in_malloc, in_free = callgrind.parse(f.name)
    finally:
        os.unlink(f.name)
    check(alloc == 800, f"callgrind.parse: self costs outside the loop add up (800, got {alloc})")
    check(in_malloc == 300, f"callgrind.parse: malloc's inclusive cost from the loop (300, got {in_malloc})")
    check(in_free == 500, f"callgrind.parse: free's inclusive cost from the loop (500, got {in_free})")


def run_program(bindir, args, by_variant=False):
    r = subprocess.run([os.path.join(bindir, args[0])] + args[1:], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, env={k: v for k, v in os.environ.items()
                                                                  if k != "LD_PRELOAD"})
    out = r.stdout.decode(errors="replace")
    if by_variant:
        return r.returncode, {(m.group(1), m.group(2)): float(m.group(3)) for m in
                              re.finditer(r"^zcbench bench=\S+ variant=(\S+) metric=(\S+) value=(\S+)", out, re.M)}
    return r.returncode, {m.group(1): float(m.group(2))
                          for m in re.finditer(r"metric=(\S+) value=(\S+)", out)}


def test_zmq_bench(bindir):
    """The suite's "zmq" entry and the program agree: every metric the entry names for 64 B comes out for
    each transport, with a plausible value (zcmem's transport makes a loan and frees it per message)."""
    if not os.path.exists(os.path.join(bindir, "zmq_bench")):
        print("skip  zmq_bench: not built (libzmq missing)")
        return
    entry = next((b for b in suite.BENCHMARKS if b.name == "zmq"), None)
    check(entry is not None and entry.binary == "zmq_bench" and entry.mode == "once" and not entry.variants,
          "suite: the zmq entry runs zmq_bench once per repetition, transports as variants")
    if entry is None:
        return
    names = [m[:-3] for m in [entry.metric] + entry.extra if m.endswith("_64")]
    for t in ("zcmem-zmq", "plain-zmq", "channel"):
        rc, m = run_program(bindir, ["zmq_bench", "-q", f"only={t}", "size=64"], by_variant=True)
        missing = [n for n in names if (t, n + "_64") not in m]
        check(rc == 0 and not missing and m.get((t, "msgs_per_s_64"), 0) > 0,
              f"zmq_bench {t}: prints {', '.join(names)} for 64 B (rc {rc}, missing {missing})")
    check(m.get(("channel", "alloc_calls_per_msg_64"), 1) < 0.5,
          f"zmq_bench channel: no allocator call per message (got {m.get(('channel', 'alloc_calls_per_msg_64'))})")


RSSWHERE_FIELDS = ["allocated", "committed", "purged", "reserved", "rss", "peak_rss", "remote_frees",
                   "remote_batches", "segments", "large_live", "large_cached", "threads", "abandoned", "errors",
                   "dirty"]


def test_rsswhere(bindir):
    """bench/rsswhere.c: its copy of zc_stats_t's leading fields is the header's; under a program that
    reports its own live data (bench/rss: 16 MiB written, 90% freed, then all), the live bytes it counts
    reach that much (usable sizes: a little more), come back to nothing at exit, and the resident peak it
    samples holds them."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "include", "zcmem.h")) as f:
        hdr = f.read()
    body = re.search(r"typedef struct zc_stats_s \{(.*?)\} zc_stats_t;", hdr, re.S)
    names = re.findall(r"uint64_t (\w+);", re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)) if body else []
    with open(os.path.join(root, "bench", "rsswhere.c")) as f:
        src = f.read()
    copy = re.search(r"uint64_t (allocated,[^;]*);", src)
    copied = [w.strip() for w in copy.group(1).split(",")] if copy else []
    check(copied == RSSWHERE_FIELDS and names[:len(copied)] == copied,
          f"rsswhere: its zc_stats_t fields are the header's first ones ({copied} vs {names[:len(copied)]})")
    lib = os.path.join(bindir, "librsswhere.so")
    if not os.path.exists(lib):
        check(False, f"rsswhere: {lib} is built")
        return
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["LD_PRELOAD"] = lib
    r = subprocess.run([os.path.join(bindir, "rss"), "-q", "total=16M", "delay=0"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, env=env)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    m = re.search(r"metric=live_full value=(\S+)", out)
    w = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", next(
        (ln for ln in err.splitlines() if ln.startswith("rsswhere ")), ""))}
    live = float(m.group(1)) if m else 0
    check(r.returncode == 0 and live >= 15 and w.get("samples", 0) >= 1,
          f"rsswhere: bench/rss runs under it and both report (live_full {live}, rsswhere {w})")
    check(live <= w.get("live_peak", 0) <= live * 1.3 + 1,
          f"rsswhere: live_peak counts the program's live data (live_full {live} MiB, live_peak {w.get('live_peak')})")
    check(w.get("live_end", 99) < 0.5, f"rsswhere: the frees are counted: nothing live at exit ({w.get('live_end')})")
    check(w.get("peak_rss", 0) >= w.get("live_at_peak", 99),
          f"rsswhere: the sampled resident peak holds the live data of its sample ({w})")


def test_spawn_faults(bindir):
    """The spawn helper's report: peak RSS and the whole process's minor faults (the faults_process row),
    which include the phase's. 64 buffers touched page by page fault at least once per fresh page."""
    rfd, wfd = os.pipe()
    r = subprocess.run([os.path.join(bindir, "spawn"), str(wfd), "", os.path.join(bindir, "large"), "-q",
                        "threads=1", "steps=64", "keep=8", "max=8M", "touch=page"], pass_fds=(wfd,),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        report = f.read()
    m = re.search(r"maxrss_kib=(\d+) cpu_s=([\d.]+) status=(-?\d+) minflt=(\d+)", report)
    phase = {}
    for ln in r.stdout.decode().splitlines():
        kv = dict(x.split("=", 1) for x in ln.split()[1:] if "=" in x) if ln.startswith("zcbench") else {}
        if "metric" in kv:
            phase[kv["metric"]] = float(kv["value"])
    in_phase = phase.get("faults_per_op", 0) * phase.get("ops_done", 0)
    check(r.returncode == 0 and m is not None and in_phase > 640 and int(m.group(4)) >= in_phase,
          f"spawn: reports the whole process's minor faults, at least the phase's ({report.strip()!r}, "
          f"phase {in_phase:.0f})")


def test_programs(bindir):
    test_rsswhere(bindir)
    test_zmq_bench(bindir)
    rc, m = run_program(bindir, ["larson", "-q", "ops=4000", "gen=1000", "slots=100"])
    check(rc == 0 and m.get("ops_done") == 8000,
          f"larson: reports ops_done of its phase (2 chains x 4000 = 8000, got {m.get('ops_done')})")
    check(m.get("faults_per_op", -1) >= 0 and m.get("cpu_us_per_op", -1) >= 0,
          "larson: reports faults_per_op and cpu_us_per_op")
    # 64 buffers of 64 KiB-8 MiB touched page by page: the first touch of a fresh page faults, so the
    # faults per buffer are at least in the tens (a buffer averages ~1.7 MiB, ~400 pages).
    rc, m = run_program(bindir, ["large", "-q", "threads=1", "steps=64", "keep=8", "max=8M", "touch=page"])
    check(rc == 0 and m.get("ops_done") == 64 and m.get("faults_per_op", 0) > 10,
          f"large touch=page: 64 buffers, faults counted in the phase (got {m})")
    test_spawn_faults(bindir)
    if not syscalls.available():
        print("skip  strace pass: strace is not installed")
    else:
        line_re = re.compile(r"^zcbench\s+(.*)$")
        tmp = os.path.join(tempfile.gettempdir(), f"zcbench-selftest-{os.getpid()}.trace")
        # glibc serves a 32 MiB block by mmap and gives it back by munmap at free: both in the phase.
        counts, ops, err = syscalls.run_traced(
            [os.path.join(bindir, "large"), "-q", "threads=1", "steps=3", "keep=1", "max=64M", "seed=3"],
            None, 120, tmp, line_re)
        check(err is None and ops == 3, f"strace pass: runs and reads ops_done (error: {err})")
        counts = counts or {}
        check(counts.get("mmap", 0) >= 1 and counts.get("munmap", 0) >= 1,
              f"strace pass: glibc's mmap and munmap of big buffers are counted (got {counts})")
        counts, ops, err = syscalls.run_traced(
            [os.path.join(bindir, "rounds"), "-q", "threads=2", "rounds=3", "objects=10"], None, 120, tmp,
            line_re)
        check(err is None and (counts or {}).get("stack_mmap", 0) >= 1,
              f"strace pass: thread stacks are recognised and counted apart (got {counts}, {err})")
    if shutil.which("valgrind") is None:
        print("skip  callgrind run: valgrind is not installed")
    else:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "cg.out")
            r = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=zb_fastpath_loop",
                                f"--callgrind-out-file={out}", os.path.join(bindir, "fastpath"),
                                "pairs=1000", "size=32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=300, env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
            ok = r.returncode == 0 and os.path.exists(out)
            alloc, in_malloc, in_free = callgrind.parse(out) if ok else (0, 0, 0)
            # glibc: a 32 B pair takes over 50 instructions; malloc and free are both called 1000 times.
            check(ok and in_malloc > 1000 * 10 and in_free > 1000 * 10,
                  f"callgrind: the loop's malloc and free calls are found ({in_malloc}, {in_free})")
            check(ok and abs(alloc - in_malloc - in_free) <= alloc * 0.05,
                  f"callgrind: malloc + free is what the allocator ran ({in_malloc} + {in_free} vs {alloc})")


def main():
    test_verdict()
    test_count_phase()
    test_callgrind_parse()
    if len(sys.argv) > 1:
        test_programs(sys.argv[1])
    print(f"selftest: {len(failures)} failed" if failures else "selftest: all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
