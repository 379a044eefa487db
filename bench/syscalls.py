"""The system-call pass of bench/run: memory system calls per operation, counted with strace.

A benchmark program marks its measured phase with two faccessat() calls on paths that do not exist
(zb_phase_begin / zb_phase_end in bench/common.c). This pass runs the program once more per allocator
under `strace -f`, tracing only the calls counted here and the marks (with --seccomp-bpf, so the other
system calls run at full speed), counts the calls between the marks, and divides them by the `ops_done` the
program reports. The pass is separate from the timed runs: strace slows every traced call, so its run is
never timed. Counts depend a little on timing (an allocator that purges on a clock purges more in a slower
run), so they are what one run did, not a median.

strace is a Debian package (strace); without it the rows say n/a. It needs no root: a process may trace
its own child. Standard library only.
"""

import os
import re
import shutil
import subprocess

MARK_BEGIN, MARK_END = "/zcbench-phase/begin", "/zcbench-phase/end"
# Counted calls. sched_yield and futex show lock contention (an allocator spinning or sleeping on a lock);
# the benchmarks' own hand-offs use them too, so read them across allocators, not as absolute figures.
COUNTED = ["mmap", "munmap", "madvise", "mremap", "mprotect", "brk", "sched_yield", "futex"]
# The calls shown as rows of the report (every counted call is in results.json).
SHOWN = ["madvise", "mmap", "munmap"]

LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
CALL = re.compile(r"^([a-z_0-9]+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
RET = re.compile(r"\)\s+=\s+(0x[0-9a-f]+|-?\d+)")


def available():
    return shutil.which("strace") is not None


def _int(s):
    try:
        return int(s.strip(), 0)
    except ValueError:
        return None


def count_phase(path):
    """Calls between the two marks of a strace -f output file: {name: count}, or None without marks.

    A call interrupted by another thread's is printed as "name(... <unfinished ...>" and completed later
    on a "<... name resumed>" line: the call counts once, when it starts. Calls on thread stacks are the
    C library's, not the allocator's: every allocator's run has them alike (a thread's stack is mapped
    with MAP_STACK, its unused part given back with madvise when the thread exits), so they are counted
    apart, as stack_<name>."""
    counts, inside, seen = {}, False, False
    stacks = []      # [start, end) of the mappings made with MAP_STACK
    pending = {}     # pid -> (args of an unfinished MAP_STACK mmap)
    with open(path, errors="replace") as f:
        for ln in f:
            m = LINE.match(ln.rstrip("\n"))
            if not m:
                continue
            pid, rest = m.group(1), m.group(2)
            r = RESUMED.match(rest)
            if r:
                if r.group(1) == "mmap" and pid in pending:
                    size = pending.pop(pid)
                    ret = RET.search(r.group(2))
                    addr = _int(ret.group(1)) if ret else None
                    if addr is not None and addr > 0 and size:
                        stacks.append([addr, addr + size])
                continue
            c = CALL.match(rest)
            if not c:
                continue
            name, args = c.group(1), c.group(2)
            if name == "faccessat":
                if MARK_BEGIN in args:
                    inside, seen = True, True
                elif MARK_END in args:
                    inside = False
                continue
            parts = args.split(", ")
            on_stack = False
            if name == "mmap" and "MAP_STACK" in args:
                on_stack = True
                size = _int(parts[1]) if len(parts) > 1 else None
                ret = RET.search(args)
                if ret:
                    addr = _int(ret.group(1))
                    if addr is not None and addr > 0 and size:
                        stacks.append([addr, addr + size])
                else:
                    pending[pid] = size
            elif name in ("munmap", "madvise", "mprotect") and len(parts) > 1:
                addr = _int(parts[0])
                if addr is not None:
                    hit = next((sr for sr in stacks if sr[0] <= addr < sr[1]), None)
                    on_stack = hit is not None
                    if hit is not None and name == "munmap":
                        stacks.remove(hit)
            if inside:
                key = ("stack_" + name) if on_stack else name
                counts[key] = counts.get(key, 0) + 1
    return counts if seen else None


def run_traced(cmd, preload, timeout, tmp, line_re):
    """Run cmd once under strace. Returns ({call: count in the phase}, ops_done, error or None)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    trace = "trace=" + ",".join(COUNTED + ["faccessat"])
    base = ["strace", "-f", "-qq", "-e", trace, "-e", "signal=none", "-o", tmp]
    # (mmap's flags and addresses are printed in full by default, which count_phase() needs)
    if preload:
        base += ["-E", f"LD_PRELOAD={preload}"]
    err = ""
    for extra in (["--seccomp-bpf"], []):  # without the filter when this kernel or strace refuses it
        try:
            r = subprocess.run(base[:1] + extra + base[1:] + cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None, f"timeout after {timeout:.0f} s under strace"
        err = r.stderr.decode(errors="replace")
        if r.returncode == 0 or "seccomp" not in err:
            break
    try:
        if r.returncode != 0:
            return None, None, f"exit status {r.returncode} under strace: " + \
                (err.strip().splitlines() or [""])[-1][:160]
        ops = None
        for ln in r.stdout.decode(errors="replace").splitlines():
            m = line_re.match(ln.strip())
            if m and "metric=ops_done " in ln:
                kv = dict(x.split("=", 1) for x in m.group(1).split() if "=" in x)
                ops = float(kv["value"])
        counts = count_phase(tmp)
        if counts is None or not ops:
            return None, None, "the program does not mark its measured phase (zb_phase_begin/end)"
        return counts, ops, None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
