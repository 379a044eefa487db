"""Reports of bench/run: the text and Markdown tables, the SVG plot (written by hand) and the gnuplot PNG.

Rows come from run_bench() in bench/run: {"bench", "metric", "unit", "better", "primary", "mode",
"cells": {column: {"median", "ratio", "n", "runs"}}}. Nothing here runs a benchmark.
Standard library only.
"""

import os
import shutil
import subprocess


def fmt_num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}G"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def spread(cell):
    """Half the spread of a cell's runs, (max - min) / 2, relative to its median; 0 with fewer than 2 runs."""
    runs_ = cell.get("runs") or []
    if len(runs_) < 2 or not cell.get("median"):
        return 0.0
    return (max(runs_) - min(runs_)) / 2 / abs(cell["median"])


def verdict(row):
    """The best column of a row, or "tie: a, b" when the row's ± is at least the gap between the first
    two: the larger ± of the two cells, against the second's ratio - 1. Every column whose gap to the best
    is within the larger ± of it and the best is named in the tie. "-" when fewer than two cells rank."""
    cells = sorted(((c, x) for c, x in row["cells"].items() if x.get("ratio") is not None),
                   key=lambda cx: cx[1]["ratio"])
    if not cells:
        return "-"
    if len(cells) < 2:
        return cells[0][0]
    best = cells[0][1]
    if max(spread(best), spread(cells[1][1])) < cells[1][1]["ratio"] - best["ratio"]:
        return cells[0][0]
    tied = [c for c, x in cells if x["ratio"] - best["ratio"] <= max(spread(best), spread(x))]
    return "tie: " + ", ".join(tied)


SPREAD_METRICS = ("faults_per_op", "faults_process")  # non-primary rows that show their ±


def table_lines(rows, cols, md):
    """A table: one line per row, a cell per column 'median ±spread (ratio)', and the row's best column
    (or a tie, see verdict())."""
    head = ["benchmark", "metric"] + cols + ["best"]
    body = []
    prev = None
    for r in rows:
        name = r["bench"] if (md or r["bench"] != prev) else ""
        prev = r["bench"]
        unit = r["unit"] + (" (higher is better)" if r["better"] == "higher" and md else "")
        line = [name, f"{r['metric']} [{r['unit']}]" if not md else f"{r['metric']} [{unit}]"]
        for c in cols:
            cell = r["cells"].get(c)
            if not cell or cell["median"] is None:
                line.append("n/a" if cell and cell.get("na") else "fail" if cell is not None else "-")
                continue
            rt = cell["ratio"]
            s = fmt_num(cell["median"])
            if (r["primary"] or r["metric"] in SPREAD_METRICS) and len(cell.get("runs") or []) >= 2 \
                    and cell["median"]:
                # The spread of the runs: how far to trust a ratio near 1.
                s += f" ±{100 * spread(cell):.0f}%"
            if rt is not None:
                s += f" ({rt:.2f})" if not (md and rt <= 1.0005) else " (**1.00**)"
            line.append(s)
        line.append(verdict({"cells": {c: x for c, x in r["cells"].items() if c in cols}}))
        body.append(line)
    if md:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] * 2 + ["---:"] * len(cols) + ["---"]) + "|"]
        out += ["| " + " | ".join(l) + " |" for l in body]
        return out
    w = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    fmt = lambda l: "  ".join(str(x).ljust(w[i]) if i < 2 or i == len(l) - 1 else str(x).rjust(w[i])
                              for i, x in enumerate(l))
    return [fmt(head), "-" * len(fmt(head))] + [fmt(l) for l in body]


def fastpath_lines(fp, md):
    """Per allocator and size: instructions per pair in malloc, in free, in both (the allocator), and with
    the caller's loop. fp: {allocator: {size: (malloc+free, with loop, malloc, free) or None}}."""
    if not fp:
        return []
    sizes = sorted({s for v in fp.values() for s in v})
    parts = (("malloc", 2), ("free", 3), ("malloc+free", 0), ("with loop", 1))
    head = ["allocator"] + [f"{s} B: {p}" for s in sizes for p, _ in parts]
    cell = lambda v, i: "-" if v is None else f"{v[i]:.1f}"
    body = [[a] + [cell(fp[a].get(s), i) for s in sizes for _, i in parts] for a in fp]
    if md:
        return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(parts) * len(sizes))]
                + ["| " + " | ".join(l) + " |" for l in body])
    w = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = lambda l: "  ".join(x.ljust(w[i]) if i == 0 else x.rjust(w[i]) for i, x in enumerate(l))
    return [fmt(head), "-" * len(fmt(head))] + [fmt(l) for l in body]


def svg_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]


def svg_panel(title, groups, cols, y0, width, height, cap):
    """A grouped-bar panel: groups = [(label, {col: ratio})]; bars are capped at `cap` (value printed)."""
    left, right, top, bottom = 50, 10, 50, 50
    pw, ph = width - left - right, height - top - bottom
    o = [f'<text x="{left}" y="{y0 + 18}" font-size="14" font-weight="bold">{svg_escape(title)}</text>']
    ymax = cap
    for t in range(0, int(ymax) + 1):
        y = y0 + top + ph - ph * t / ymax
        o.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{t}</text>')
    y1 = y0 + top + ph - ph * 1 / ymax
    o.append(f'<line x1="{left}" y1="{y1:.1f}" x2="{left + pw}" y2="{y1:.1f}" stroke="#333" stroke-dasharray="4,3"/>')
    if not groups:
        return o
    gw = pw / len(groups)
    bw = max(2.0, (gw * 0.8) / max(1, len(cols)))
    for gi, (label, vals) in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        for ci, c in enumerate(cols):
            v = vals.get(c)
            x = gx + ci * bw
            if v is None:
                o.append(f'<text x="{x + bw / 2:.1f}" y="{y0 + top + ph - 3:.1f}" font-size="8" '
                         f'text-anchor="middle" fill="#999">x</text>')
                continue
            h = ph * min(v, ymax) / ymax
            y = y0 + top + ph - h
            o.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                     f'fill="{COLORS[ci % len(COLORS)]}"><title>{svg_escape(c)}: {v:.2f}</title></rect>')
            if v > ymax:  # clipped: print the value above the bar, staggered so neighbours do not collide
                o.append(f'<text x="{x + bw / 2:.1f}" y="{y - 3 - 9 * (ci % 2):.1f}" font-size="8" '
                         f'text-anchor="middle">{v:.1f}</text>')
        # Labels below the axis, alternating between two rows so long names fit narrow groups.
        lx = left + gi * gw + gw / 2
        ly = y0 + top + ph + 14 + 13 * (gi % 2)
        o.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" text-anchor="middle">{svg_escape(label)}</text>')
    return o


def write_svg(path, speed, rss, cols, stamp):
    width = max(720, 70 * max(len(speed), len(rss), 1) + 80)
    ph = 300
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{2 * ph + 60}" '
         f'font-family="sans-serif">', f'<rect width="100%" height="100%" fill="white"/>']
    o += svg_panel("Primary metric relative to the best (1 = best: fastest, or leanest for rss; lower is "
                   "better)", speed, cols, 0, width, ph, 4)
    o += svg_panel("Peak RSS relative to the leanest (1 = leanest, lower is better)", rss, cols, ph, width,
                   ph, 4)
    lx = 50
    for ci, c in enumerate(cols):
        o.append(f'<rect x="{lx}" y="{2 * ph + 20}" width="12" height="12" fill="{COLORS[ci % len(COLORS)]}"/>')
        o.append(f'<text x="{lx + 16}" y="{2 * ph + 31}" font-size="12">{svg_escape(c)}</text>')
        lx += 30 + 8 * len(c)
    o.append(f'<text x="{width - 10}" y="{2 * ph + 31}" font-size="10" text-anchor="end" '
             f'fill="#666">zcmem bench/run {svg_escape(stamp)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def write_png(outdir, speed, rss, cols):
    """ratios.png with gnuplot, when it is installed."""
    if shutil.which("gnuplot") is None or not speed:
        return False
    for name, groups in (("speed", speed), ("rss", rss)):
        with open(os.path.join(outdir, f"ratios-{name}.dat"), "w") as f:
            f.write("bench " + " ".join(cols) + "\n")
            for label, vals in groups:
                f.write(label + " " + " ".join("NaN" if vals.get(c) is None else f"{vals[c]:.4f}"
                                                for c in cols) + "\n")
    plots = lambda name: ", ".join(
        f"'ratios-{name}.dat' using {i + 2}:xtic(1) title columnheader({i + 2}) lc rgb '{COLORS[i % len(COLORS)]}'"
        for i in range(len(cols)))
    script = f"""set terminal pngcairo size 1200,800 font ",10"
set output 'ratios.png'
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set key top left horizontal reverse Left
set yrange [0:4]
set grid ytics
set xtics rotate by 30 right
set title 'Primary metric relative to the best (1 = best, lower is better)'
plot {plots('speed')}
set title 'Peak RSS relative to the leanest (1 = leanest, lower is better)'
plot {plots('rss')}
unset multiplot
"""
    with open(os.path.join(outdir, "ratios.gp"), "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", "ratios.gp"], cwd=outdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("  gnuplot failed: " + r.stderr.decode(errors="replace").strip()[:200])
        return False
    return True
