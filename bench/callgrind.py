"""Reading a callgrind profile for bench/run's fast-path table (bench/fastpath.c under
`valgrind --tool=callgrind --toggle-collect=zb_fastpath_loop`). Standard library only.

The profile lists, per function (fn=), cost lines "<position> <Ir>" for its own instructions, and after
each calls= line one cost line that is the call's inclusive cost (the callee and what it calls). Names are
compressed as "(id) name" the first time, "(id)" after. PLT stubs are not functions of their own
(callgrind's default --skip-plt=yes charges them to the caller), so the loop's own cost holds them.
"""

import re

LOOP = "zb_fastpath_loop"


def parse(path):
    """Returns (instructions outside the loop's own code: every function's self cost but the loop's,
    inclusive cost of the loop's calls to malloc, of its calls to free). A callee is "free" if its name
    has "free" in it, else "malloc" if it has "alloc" (malloc, mi_malloc, tc_malloc, je_malloc ...)."""
    names, self_cost, cur, callee, skip = {}, {}, None, None, False
    split = {"malloc": 0, "free": 0}
    with open(path) as f:
        for ln in f:
            if ln.startswith(("fn=", "cfn=")):
                v = ln.split("=", 1)[1].strip()
                mm = re.match(r"\((\d+)\)\s*(.*)", v)
                if mm:
                    if mm.group(2):
                        names[mm.group(1)] = mm.group(2)
                    v = names.get(mm.group(1), v)
                if ln.startswith("fn="):
                    cur = v
                else:
                    callee = v
            elif ln.startswith("calls="):
                skip = True
            elif ln[:1].isdigit() or ln[:1] in "+-*":
                parts = ln.split()
                if skip:
                    # A call's inclusive cost: the callee is listed under its own fn= too, so it is not
                    # added to the self costs; in the loop's block it gives malloc and free apart.
                    skip = False
                    if cur == LOOP and callee and len(parts) >= 2:
                        low = callee.lower()
                        kind = "free" if "free" in low else "malloc" if "alloc" in low else None
                        if kind:
                            split[kind] += int(parts[1])
                    continue
                if len(parts) >= 2 and cur is not None:
                    self_cost[cur] = self_cost.get(cur, 0) + int(parts[1])
    alloc = sum(v for k, v in self_cost.items() if k != LOOP)
    return alloc, split["malloc"], split["free"]
