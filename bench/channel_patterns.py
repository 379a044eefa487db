#!/usr/bin/env python3
"""bench/channel_patterns.py: every channel pattern's benchmark from one run, as one table.

    bench/channel_patterns.py [--build build] [--sizes 64,16384] [--scale 1.0] [--no-icount]

Patterns (each measured in its own process tree, one after the other, at each size):
  one-way             channel_bench what=oneway: one producer, one consumer process (zc_chan_*)
  request/response    svc_bench what=rr: zc_svc_call round trips, client and server processes
  work queue          svc_bench what=queue: a dispatcher keeps 64 requests in flight to 2 worker processes
                      (16 B replies)
  many-to-one         svc_bench what=many: 2 producer processes send one-way service messages to one consumer
  fan-out             channel_bench what=fanout subs=K: one publisher, K = 1, 2, 4 subscriber processes, each
                      reading every message
Columns:
  msgs/s              messages (round trips, requests) per second of wall-clock time: depends on the load of
                      the machine (it is shared: see the load average printed)
  p50 / p99           one-way: channel_bench what=lat (polled consumer, until it holds the message);
                      request/response: one round trip. The other patterns measure no latency ("-").
  CPU us/msg          user + system time of the whole process tree (os.wait4 of the benchmark, which waits
                      for every process it forks) / messages; set-up included (small against the counts)
  instr/msg           callgrind, the library's whole message path in one process with no waiting (the
                      benchmarks' what=icount modes): total of n2 minus total of n1, / (n2 - n1). Work queue:
                      the request/response round trip's figure (the same calls: request, receive, loan_reply,
                      reply, receive, release; the choice among 2 workers is not in it). Fan-out: loan + send +
                      every subscriber's receive and release, per message published.
Every payload byte is written once by the sender and read once by each receiver. Standard library only.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

SIZES = (64, 16384)


def run(cmd):
    """Run cmd; (stdout, CPU seconds of its whole waited process tree)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(cmd)}: exit status {status}")
    return out, ru.ru_utime + ru.ru_stime


def metric(out, name, variant=None):
    for line in out.splitlines():
        m = re.match(r"zcbench bench=\S+ variant=(\S+) metric=(\S+) value=(\S+)", line)
        if m and m.group(2) == name and (variant is None or m.group(1) == variant):
            return float(m.group(3))
    sys.exit(f"metric {name} missing in:\n{out}")


def icount(cmd_of_n, n1, n2):
    """Instructions per message: callgrind totals of cmd_of_n(n2) and cmd_of_n(n1), differenced."""
    tot = []
    for n in (n1, n2):
        with tempfile.NamedTemporaryFile(prefix="chanpat.cg.", delete=False) as f:
            path = f.name
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"] + cmd_of_n(n),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        with open(path) as f:
            total = next(int(l.split()[1]) for l in f if l.startswith(("totals:", "summary:")))
        os.unlink(path)
        tot.append(total)
    return (tot[1] - tot[0]) / (n2 - n1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--sizes", default="64,16384")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    ap.add_argument("--no-icount", action="store_true", help="skip the callgrind columns")
    args = ap.parse_args()
    cb = os.path.join(args.build, "bench", "channel_bench")
    sb = os.path.join(args.build, "bench", "svc_bench")
    for e in (cb, sb):
        if not os.access(e, os.X_OK):
            sys.exit(f"{e} missing: cmake -S . -B {args.build} -DCMAKE_BUILD_TYPE=Release && cmake --build {args.build} -j2")
    do_ic = not args.no_icount
    if do_ic and subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        sys.exit("valgrind missing (apt-get install valgrind), or pass --no-icount")
    load0 = os.getloadavg()[0]
    rows = []

    def scaled(n):
        return max(1000, int(n * args.scale))

    for size in (int(s) for s in args.sizes.split(",")):
        big = size > 1024
        sz = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        # one-way
        n = scaled(30000 if big else 300000)
        out, cpu = run([cb, "what=oneway", f"size={size}", "runs=1", f"n={n}"])
        rate = metric(out, f"msgs_per_s_{size}")
        lat, _ = run([cb, "what=lat", f"size={size}", f"lat={scaled(4000)}"])
        p50 = metric(lat, f"lat_polled_p50_{size}", "channel")
        p99 = metric(lat, f"lat_polled_p99_{size}", "channel")
        ic = icount(lambda k: [cb, "what=icount", f"size={size}", f"n={k}"], 2000, 12000) if do_ic else None
        rows.append(("one-way (1 producer, 1 consumer)", sz, rate, p50, p99, cpu / n * 1e6, ic))
        print(f"one-way {sz} done", file=sys.stderr)
        # request/response
        n = scaled(50000)
        out, cpu = run([sb, "what=rr", f"size={size}", f"n={n}"])
        ic_rr = icount(lambda k: [sb, "what=icount", f"size={size}", f"n={k}"], 2000, 12000) if do_ic else None
        rows.append(("request/response (zc_svc_call)", sz, metric(out, "round_trips_per_s", f"rr_{size}"),
                     metric(out, "p50", f"rr_{size}"), metric(out, "p99", f"rr_{size}"), cpu / n * 1e6, ic_rr))
        print(f"rr {sz} done", file=sys.stderr)
        # work queue
        n = scaled(20000 if big else 100000)
        out, cpu = run([sb, "what=queue", f"size={size}", f"n={n}"])
        rows.append(("work queue (1 -> 2 workers, 64 in flight)", sz + " / 16 B",
                     metric(out, "requests_per_s"), None, None, cpu / n * 1e6, ic_rr))
        print(f"queue {sz} done", file=sys.stderr)
        # many-to-one
        n = scaled(40000 if big else 400000)
        out, cpu = run([sb, "what=many", f"size={size}", f"n={n}"])
        ic = icount(lambda k: [sb, "what=icount_oneway", f"size={size}", f"n={k}"], 2000, 12000) if do_ic else None
        rows.append(("many-to-one (2 producers)", sz, metric(out, "msgs_per_s"), None, None, cpu / n * 1e6, ic))
        print(f"many {sz} done", file=sys.stderr)
        # fan-out
        for subs in (1, 2, 4):
            n = scaled(20000 if big else 200000)
            out, cpu = run([cb, "what=fanout", f"subs={subs}", f"size={size}", "runs=1", f"n={n}"])
            ic = icount(lambda k: [cb, "what=icount", f"size={size}", f"subs={subs}", f"n={k}"], 2000, 12000) \
                if do_ic else None
            rows.append((f"fan-out, {subs} subscriber{'s' if subs > 1 else ''}", sz,
                         metric(out, f"fanout_msgs_per_s_{size}_{subs}subs"), None, None, cpu / n * 1e6, ic))
        print(f"fan-out {sz} done", file=sys.stderr)

    load1 = os.getloadavg()[0]
    print(f"\nChannel patterns, one run ({os.cpu_count()} CPUs, load average {load0:.1f} at the start, "
          f"{load1:.1f} at the end; msgs/s and latencies depend on that load, CPU and instructions much less)\n")
    print("| pattern | size | msgs/s | p50 | p99 | CPU us/msg | instr/msg |")
    print("|---|---|---|---|---|---|---|")

    def ns(v):
        return "-" if v is None else (f"{v / 1000:.2f} us" if v >= 1000 else f"{v:.0f} ns")

    for name, sz, rate, p50, p99, cpu, ic in rows:
        print(f"| {name} | {sz} | {rate:,.0f} | {ns(p50)} | {ns(p99)} | {cpu:.2f} | "
              + ("-" if ic is None else f"{ic:.0f}") + " |")


if __name__ == "__main__":
    main()
