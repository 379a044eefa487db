#!/bin/bash
# python3 under zcmem: threads, a JSON round trip of a big structure, dict churn, subprocess and
# multiprocessing (fork); output compared with a run on the system malloc.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require python3
cat >"$ZC_WORK/work.py" <<'PY'
import hashlib, json, multiprocessing, os, subprocess, sys, threading

# the interpreter runs on the allocator the harness chose
assert any("zcmem" in l for l in open("/proc/self/maps")) == ("zcmem" in os.environ.get("LD_PRELOAD", ""))

def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

# a big structure through JSON and back
big = {f"key{i}": {"n": i, "s": "x" * (i % 97), "l": list(range(i % 50)), "f": i / 7}
       for i in range(60000)}
text = json.dumps(big)
back = json.loads(text)
assert back == big
print("json", len(text), digest(back))

# dict churn
d = {}
for i in range(300000):
    d[(i * 7919) % 100003] = str(i) * (i % 5)
    if i % 3 == 0:
        d.pop((i * 31) % 100003, None)
print("dict", len(d), digest(sorted(d.items())[:1000]))

# threads building and dropping structures
results = [None] * 8
def work(k):
    acc = []
    for i in range(20000):
        acc.append({"k": k, "i": i, "v": [i] * (i % 8)})
        if len(acc) > 500:
            acc = acc[250:]
    results[k] = digest(acc)
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print("threads", results)

# a child interpreter (inherits LD_PRELOAD) and a pool of forked workers
out = subprocess.run([sys.executable, "-c", "print(sum(len(str(i)) for i in range(200000)))"],
                     capture_output=True, text=True, check=True).stdout.strip()
print("subprocess", out)
def square_list(n):
    return sum(x * x for x in list(range(n)))
if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        print("pool", pool.map(square_list, range(1000, 1040)))
PY
zc_run_both python python3 python3 "$ZC_WORK/work.py"
zc_finish
