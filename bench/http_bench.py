#!/usr/bin/env python3
"""bench/http_bench.py: the HTTP example (examples/http) under wrk, zero-copy channels against the same
server over UNIX sockets with copies, at small (100 B) and large (256 KiB) response bodies.

    bench/http_bench.py                      3 rounds of 5 s per case, interleaved, medians
    bench/http_bench.py --rounds 5 --duration 10 --connections 32 --workers 2 --build build

Each round runs every (body size, transport) case once, in a rotating order, so a slow moment of the
shared machine hurts both transports alike. Per case: start the server (front end + N workers), 1 s of
wrk warm-up, then wrk -t1 -cC -dD --latency on GET /<size>, with /proc read before and after:
  req/s, p50, p99      wrk's figures
  CPU us/req           user + system time of the front end and all workers (/proc/PID/stat) per request,
                       and the front end's and the workers' parts
  syscalls/req         with --syscalls only: strace -c -f attached to the server's processes during the
                       measured run (one tracer on the front end, one on the workers), all calls / requests,
                       and in brackets the front end's part (the five most frequent of each on stderr)
  syscall bytes / response byte
                       bytes through read/write system calls of the server's processes (/proc/PID/io
                       rchar + wchar) per byte wrk read (head + body): what the kernel copied. The
                       channel's payload moves without system calls; writing to the client is the 1 both
                       have, reading the requests adds a little (about 40 B per request).
  RSS                  VmRSS of the front end and of each worker at the end (MiB), with the part that is
                       shared memory (RssShmem: the channels' segments, counted in each process mapping them)
Needs wrk (Debian: apt-get install wrk). Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / HZ  # utime, stime


def proc_io(pid):
    io = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            io[k] = int(v)
    return io["rchar"] + io["wchar"]


def proc_rss(pid):
    rss = shm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssShmem:"):
                shm = int(line.split()[1])
    return rss / 1024, shm / 1024


def to_us(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]


def to_bytes(v):
    m = re.match(r"([\d.]+)([KMGT]?B)$", v)
    return float(m.group(1)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[m.group(2)]


def start_server(exe, workers):
    p = subprocess.Popen([exe, "--port", "0", "--workers", str(workers)], stdout=subprocess.PIPE, text=True)
    pids, port = [], None
    while port is None:
        line = p.stdout.readline()
        if not line:
            sys.exit(f"{exe} did not start")
        m = re.match(r"worker \d+: pid (\d+)$", line.strip())
        if m:
            pids.append(int(m.group(1)))
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    return p, port, pids


def wrk(url, conns, duration):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url], capture_output=True,
                         text=True, check=True).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
         "n": int(re.search(r"(\d+) requests in", out).group(1)),
         "p50": to_us(re.search(r"\s50%\s+(\S+)", out).group(1)),
         "p99": to_us(re.search(r"\s99%\s+(\S+)", out).group(1)),
         "bytes": to_bytes(re.search(r"requests in \S+, (\S+) read", out).group(1))}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = re.search(r"Socket errors: (.*)", out)
    if bad or err:
        print(f"  warning: {url}: {bad.group(0) if bad else ''} {err.group(0) if err else ''}", file=sys.stderr)
    return r


def strace_summary(path):
    """{syscall: calls} from an `strace -c` summary file."""
    calls = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                try:
                    calls[parts[-1]] = int(parts[3])
                except ValueError:
                    pass
    return calls


def run_case(exe, size, args):
    p, port, pids = start_server(exe, args.workers)
    url = f"http://127.0.0.1:{port}/{size}"
    tracer = None
    try:
        wrk(url, args.connections, 1)  # warm-up: connections, channel segments, page faults
        procs = [p.pid] + pids
        cpu0 = [proc_cpu(x) for x in procs]
        io0 = sum(proc_io(x) for x in procs)
        if args.syscalls:  # one tracer on the front end, one on the workers: each part per request
            outs = [f"/tmp/http_bench_strace.{os.getpid()}.{k}" for k in ("front", "workers")]
            tracer = [subprocess.Popen(["strace", "-c", "-f", "-o", o] + [a for x in group for a in ("-p", str(x))],
                                       stderr=subprocess.DEVNULL) for o, group in zip(outs, ([p.pid], pids))]
            time.sleep(1)  # attached
        r = wrk(url, args.connections, args.duration)
        cpu1 = [proc_cpu(x) for x in procs]
        if tracer is not None:
            parts = []
            for t, o in zip(tracer, outs):
                t.send_signal(2)
                t.wait(timeout=30)
                parts.append(strace_summary(o))
                os.unlink(o)
            calls = {k: parts[0].get(k, 0) + parts[1].get(k, 0) for k in set(parts[0]) | set(parts[1])}
            r["sys_per_req"] = sum(calls.values()) / r["n"]
            r["sys_front"] = sum(parts[0].values()) / r["n"]
            r["sys_top"] = sorted(((v / r["n"], k) for k, v in calls.items()), reverse=True)[:5]
            r["sys_front_top"] = sorted(((v / r["n"], k) for k, v in parts[0].items()), reverse=True)[:5]
        r["cpu_us"] = (sum(cpu1) - sum(cpu0)) / r["n"] * 1e6
        r["cpu_front_us"] = (cpu1[0] - cpu0[0]) / r["n"] * 1e6
        r["cpu_workers_us"] = (sum(cpu1[1:]) - sum(cpu0[1:])) / r["n"] * 1e6
        r["sysb"] = (sum(proc_io(x) for x in procs) - io0) / r["bytes"]
        r["rss_front"] = proc_rss(p.pid)
        r["rss_workers"] = [proc_rss(x) for x in pids]
    finally:
        p.terminate()
        p.wait(timeout=20)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", default="100,262144")
    ap.add_argument("--syscalls", action="store_true",
                    help="attach strace -c -f to the server's processes during each measured run: system calls per "
                         "request (strace slows the server: its req/s, latency and CPU figures are then not comparable)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_bench.py needs wrk: apt-get install wrk (Debian package wrk)")
    exes = {t: os.path.join(args.build, "examples", "http", f"http_server_{t}") for t in ("chan", "sock")}
    for e in exes.values():
        if not os.access(e, os.X_OK):
            sys.exit(f"{e} missing: cmake -S . -B {args.build} && cmake --build {args.build} -j2")
    sizes = [int(s) for s in args.sizes.split(",")]
    cases = [(s, t) for s in sizes for t in ("chan", "sock")]
    res = {c: [] for c in cases}
    for rnd in range(args.rounds):
        order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
        for size, t in order:
            r = run_case(exes[t], size, args)
            res[(size, t)].append(r)
            print(f"round {rnd + 1} {t} {size} B: {r['rps']:.0f} req/s, p50 {r['p50']:.0f} us, p99 {r['p99']:.0f} us, "
                  f"{r['cpu_us']:.1f} CPU us/req (front {r['cpu_front_us']:.1f}, workers {r['cpu_workers_us']:.1f})"
                  + (f", {r['sys_per_req']:.2f} syscalls/req: " + ", ".join(f"{k} {v:.2f}" for v, k in r["sys_top"])
                     + f"; front end {r['sys_front']:.2f}: " + ", ".join(f"{k} {v:.2f}" for v, k in r["sys_front_top"])
                     if "sys_per_req" in r else ""), file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"\nHTTP example: wrk -t1 -c{args.connections} -d{args.duration}s, {args.workers} workers, "
          f"medians of {args.rounds} interleaved rounds ({os.cpu_count()} CPUs, load average {load:.1f} at the end)\n")
    print("| body | transport | req/s | p50 | p99 | CPU us/req (front + workers) | syscalls/req (front end) | syscall bytes / response byte | RSS front (shm) MiB | RSS per worker (shm) MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    med = statistics.median
    for size, t in cases:
        rs = res[(size, t)]
        fr = med(r["rss_front"][0] for r in rs), med(r["rss_front"][1] for r in rs)
        wk = [(med(r["rss_workers"][i][0] for r in rs), med(r["rss_workers"][i][1] for r in rs))
              for i in range(args.workers)]
        body = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        print(f"| {body} | {t} | {med(r['rps'] for r in rs):,.0f} | {med(r['p50'] for r in rs):.0f} us | "
              f"{med(r['p99'] for r in rs):.0f} us | {med(r['cpu_us'] for r in rs):.1f} ({med(r['cpu_front_us'] for r in rs):.1f} + "
              f"{med(r['cpu_workers_us'] for r in rs):.1f}) | "
              + (f"{med(r['sys_per_req'] for r in rs):.2f} ({med(r['sys_front'] for r in rs):.2f})"
                 if "sys_per_req" in rs[0] else "-") +
              f" | {med(r['sysb'] for r in rs):.2f} | "
              f"{fr[0]:.1f} ({fr[1]:.1f}) | " + ", ".join(f"{a:.1f} ({b:.1f})" for a, b in wk) + " |")


if __name__ == "__main__":
    main()
