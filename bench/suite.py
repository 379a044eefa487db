"""The benchmark registry read by bench/run: one Bench(...) entry per benchmark, and the allocators.

Adding a benchmark is one entry in BENCHMARKS (and, for a new program, one zcbench_add() line in
bench/CMakeLists.txt). The fields:

  name       the row name in the tables and the --only key
  binary     the program: a bare name is in <build>/bench/ (where zcbench_add() puts every program), a
             path with a slash is relative to the build directory (e.g. "examples/foo")
  quick      arguments in quick mode (the program also gets -q)
  full       arguments in full mode
  metric     the primary metric: the `metric=` of the zcbench line the tables rank by
  extra      further metrics of the same program shown as their own rows (optional)
  mode       "each": the same binary under every allocator (LD_PRELOAD), columns are allocators;
             "once": the program compares its own variants, columns are variants (see `variants`)
  variants   for mode "once": {column name: [extra arguments]}; each variant runs as its own process
             (so peak RSS is per variant) interleaved like allocators. If empty, the program runs once
             per repetition and its zcbench lines carry `variant=<name>`, which become the columns.
  preload    for mode "once": the allocator to run the program under (None = glibc, "zcmem" = the
             library built in this tree); ignored for mode "each"
  needs      what the program is built only with, for the message when it is not built (optional)
  about      one line for --list and the Markdown report

Everything else (medians, ratios, peak RSS, the plot) the runner derives. Programs follow the protocol
in bench/common.h: `-q`, key=value parameters, `zcbench bench=... metric=... value=... unit=...
better=...` lines on stdout.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Bench:
    name: str
    binary: str
    quick: List[str]
    full: List[str]
    metric: str
    about: str
    extra: List[str] = field(default_factory=list)
    mode: str = "each"
    variants: Dict[str, List[str]] = field(default_factory=dict)
    preload: Optional[str] = None
    needs: Optional[str] = None


BENCHMARKS = [
    # Program defaults are the full sizes and -q the quick ones (a few seconds / a few tenths of a
    # second on 2 cores); arguments here only choose a variant of a program.
    Bench("prodcons", "prodcons", [], [], "msgs",
          "1 producer -> 1 consumer, messages 32 B-64 KiB written, checked, freed remotely"),
    Bench("prodcons-2x2", "prodcons", ["producers=2", "consumers=2"], ["producers=2", "consumers=2"], "msgs",
          "2 producers -> 2 consumers (4 threads on the cores we have)"),
    Bench("larson", "larson", [], [], "ops",
          "2 chains of 5000 blocks of 8-1000 B: replace random ones, a new thread every 100,000 ops"),
    Bench("xmalloc", "xmalloc", [], [], "ops",
          "2 threads only allocate, 2 threads only free"),
    Bench("cache-thrash", "cache", ["mode=thrash"], ["mode=thrash"], "time",
          "active false sharing: each thread allocates and writes small objects"),
    Bench("cache-scratch", "cache", ["mode=scratch"], ["mode=scratch"], "time",
          "passive false sharing: objects allocated by main, freed by the workers"),
    Bench("mstress", "mstress", [], [], "time",
          "power-of-two sizes, realloc, blocks migrate and outlive their threads"),
    Bench("rptest", "rptest", [], [], "ops",
          "sizes 8 B-16 KiB log-uniform, 10% of frees cross-thread", extra=["inflight_peak"]),
    Bench("alloc-test1", "alloctest", ["threads=1"], ["threads=1"], "ops",
          "Pareto sizes under 1 KiB, one thread"),
    Bench("alloc-testN", "alloctest", ["threads=2"], ["threads=2"], "ops",
          "Pareto sizes under 1 KiB, all (2) threads"),
    Bench("churn", "churn", [], [], "ops",
          "one thread, 8 B-1 MiB, sliding-window lifetimes, realloc growth"),
    Bench("large", "large", [], [], "ops",
          "2 threads allocate, write and free 64 KiB-32 MiB buffers"),
    # Bounded by time (0.5 s / 2 s per run) rather than steps: glibc maps and faults in every buffer and
    # would take minutes for what the others do in a second; the metrics are per buffer either way.
    Bench("large-ring", "large", ["max=8M", "touch=page", "keep=8", "ms=500"],
          ["max=8M", "touch=page", "keep=8", "ms=2000"], "ops",
          "2 threads each keep a ring of 8 buffers of 64 KiB-8 MiB, touch every 4 KiB page"),
    Bench("rounds", "rounds", [], [], "ops",
          "8 threads a round pass objects to the next round's threads: every free remote"),
    Bench("rss", "rss", [], [], "rss_free_1s",
          "1 GiB (quick: 256 MiB) of small/medium blocks, free 90% then all; resident MiB",
          extra=["rss_full", "rss_90", "rss_90_1s", "rss_free"]),
    # The lifetime allocators (issue 4): the message workload (allocate, fill, hand to another thread,
    # free) through each allocator in its own process; "malloc" is the process's malloc, i.e. glibc here.
    # The entry after it runs the same malloc variant under every allocator (zcmem, mimalloc, ...).
    Bench("lifetime", "lifetime_msg", [], [], "msgs_per_s",
          "messages by lifetime: pool, counted pages, chunk ring, against glibc malloc",
          mode="once", variants={"pool": ["alloc=pool"], "pages": ["alloc=pages"], "ring": ["alloc=ring"],
                                 "glibc malloc": ["alloc=malloc"]}),
    Bench("lifetime-malloc", "lifetime_msg", ["alloc=malloc"], ["alloc=malloc"], "msgs_per_s",
          "the lifetime message workload on plain malloc, under every allocator"),
    # The zero-copy channel (issue 5) against a UNIX socket copy in the same run; one process prints both.
    Bench("channel", "channel_bench", [], [], "msgs_per_s_64",
          "zero-copy channel against a UNIX socket copy, 64 B / 1 KiB / 16 KiB",
          mode="once", extra=["msgs_per_s_1024", "msgs_per_s_16384", "gb_per_s_16384", "lat_polled_p50_64",
                              "lat_polled_p99_64", "lat_polled_p50_16384", "lat_blocking_p50_16384",
                              "lat_blocking_p99_16384", "payload_copies_64", "payload_copies_16384"]),
    # zcmem's ZeroMQ transport (zero-copy send of a zcmem loan) against libzmq as usually written (a copy
    # into zmq_msg_init_size), and the shared-memory channel for scale (up to 64 KiB); one process pair per
    # transport and size, tcp://127.0.0.1. The program defines malloc & co. (counting the calls) and hands
    # them to zcmem: "run under glibc" in the report means no LD_PRELOAD, every variant's malloc is zcmem's.
    Bench("zmq", "zmq_bench", [], [], "msgs_per_s_64",
          "zcmem over ZeroMQ against plain ZeroMQ with a copy, and the channel, 64 B / 16 KiB / 1 MiB; "
          "one-way, request/response and fan-out to 2 subscribers",
          mode="once", needs="libzmq (Debian package libzmq3-dev)",
          extra=["msgs_per_s_16384", "msgs_per_s_1048576", "lat_p50_64", "lat_p99_64", "lat_p50_16384",
                 "lat_p99_16384", "lat_p50_1048576", "lat_p99_1048576", "cpu_us_per_msg_64",
                 "cpu_us_per_msg_16384", "cpu_us_per_msg_1048576", "alloc_calls_per_msg_64",
                 "alloc_calls_per_msg_16384", "alloc_calls_per_msg_1048576", "rr_per_s_64", "rr_p50_64",
                 "rr_p99_64", "rr_per_s_16384", "rr_p50_16384", "rr_per_s_1048576", "rr_p50_1048576",
                 "rr_alloc_calls_64", "pub_msgs_per_s_64", "pub_p50_64", "pub_p99_64", "pub_msgs_per_s_16384",
                 "pub_p50_16384", "pub_msgs_per_s_1048576", "pub_p50_1048576", "pub_cpu_us_per_msg_64",
                 "pub_cpu_us_per_msg_16384", "pub_cpu_us_per_msg_1048576", "pub_alloc_calls_per_msg_64"]),
]

# The fast path: instructions per malloc/free pair under callgrind (bench/fastpath.c).
FASTPATH = {
    "binary": "fastpath",
    "sizes": {"quick": [32, 256], "full": [32, 256]},
    "pairs": {"quick": 200000, "full": 1000000},
}

# name, shared object (glob patterns tried in order; None = the system malloc), Debian package.
# "zcmem" is special: the library built by the runner in <build>/src/.
ALLOCATORS = [
    ("glibc", None, "libc6"),
    ("jemalloc", ["/usr/lib/*/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2"], "libjemalloc2"),
    ("mimalloc", ["/usr/lib/*/libmimalloc.so.2", "/usr/lib/libmimalloc.so.2"], "libmimalloc2.0"),
    ("tcmalloc", ["/usr/lib/*/libtcmalloc_minimal.so.4", "/usr/lib/libtcmalloc_minimal.so.4"],
     "libtcmalloc-minimal4"),
    ("zcmem", "BUILD", None),
]
