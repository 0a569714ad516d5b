#!/usr/bin/env python3
"""Turns criterion's output (target/criterion) into BENCHMARKS.md tables and an SVG plot.

Usage: python3 benches/report.py [CRITERION_DIR] [PLOT.svg]
(after `cargo bench --bench transfer`, `--bench protection` and `--bench virtual_copy`)
Prints the Markdown tables on stdout and writes the plots (throughput against size, one line
per case and baseline; and next to it virtual_copy.svg, the time of physical and virtual
copies against size). Needs only the Python standard library.
"""

import json
import math
import os
import sys
from collections import defaultdict

GIB = 1 << 30


def load(root):
    """{group: {function: (mean_ns, bytes_or_None)}} from every new/benchmark.json."""
    results = defaultdict(dict)
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        # iter_custom and iter both give a slope when enough samples; prefer it
        point = (est.get("slope") or est["mean"])["point_estimate"]
        throughput = bench.get("throughput") or {}
        name = bench["function_id"]
        if bench.get("value_str"):
            name += "/" + bench["value_str"]
        results[bench["group_id"]][name] = (point, throughput.get("Bytes"))
    return results


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


def tables(results):
    out = []
    transfer = sorted((g for g in results if g.startswith("transfer/")), key=lambda g: int(g.split("/")[1]))
    for group in transfer:
        rows = results[group]
        memcpy = rows.get("baseline/memcpy", (None,))[0]
        pages = int(group.split("/")[1])
        out.append(f"\n### {pages} page{'s' if pages > 1 else ''} ({pages * 64} KiB)\n")
        out.append("| case | time | GiB/s | × memcpy |")
        out.append("|---|---:|---:|---:|")
        for name, (ns, nbytes) in sorted(rows.items(), key=lambda kv: (not kv[0].startswith("baseline"), kv[0])):
            gibs = nbytes / ns * 1e9 / GIB if nbytes else float("nan")
            ratio = memcpy / ns if memcpy else float("nan")
            out.append(f"| {name} | {fmt_time(ns)} | {gibs:.2f} | {ratio:.2f} |")
    protection = sorted(g for g in results if g.startswith("protection/"))
    if protection:
        out.append("\n### protection (guest protection on and off, one run)\n")
        out.append("| case | on | off | on / off |")
        out.append("|---|---:|---:|---:|")
        for group in protection:
            rows = results[group]
            on, off = rows.get("on", (None,))[0], rows.get("off", (None,))[0]
            ratio = f"{on / off:.2f}×" if on and off else ""
            out.append(f"| {group.split('/', 1)[1]} | {fmt_time(on) if on else ''} | {fmt_time(off) if off else ''} | {ratio} |")
            for name, (ns, _) in sorted(rows.items()):
                if name not in ("on", "off"):
                    out.append(f"| {group.split('/', 1)[1]}: {name} | {fmt_time(ns)} | | |")
    virtual = sorted((g for g in results if g.startswith("virtual_copy/")),
                     key=lambda g: int(g.split("_")[-1]))
    if virtual:
        out.append("\n### virtual copies (physical and virtual in one run per size)\n")
        out.append("| pages | case | physical | virtual | virtual / physical | virtual × hot memcpy |")
        out.append("|---:|---|---:|---:|---:|---:|")
        for group in virtual:
            rows = results[group]
            pages = int(group.split("_")[-1])
            hot = rows.get("memcpy_hot", (None,))[0]
            fresh = rows.get("memcpy_fresh", (None,))[0]
            out.append(f"| {pages} | memcpy hot / fresh | {fmt_time(hot) if hot else ''} | "
                       f"{fmt_time(fresh) if fresh else ''} | | |")
            for case in ("read", "read_store", "read_sum", "read_write", "copy", "read_source_writes"):
                phys = rows.get(f"physical/{case}", (None,))[0]
                virt = rows.get(f"virtual/{case}", (None,))[0]
                if not (phys and virt):
                    continue
                out.append(f"| {pages} | {case} | {fmt_time(phys)} | {fmt_time(virt)} | "
                           f"{virt / phys:.3f} | {virt / hot if hot else float('nan'):.3f} |")
    for group in sorted(g for g in results
                        if not g.startswith(("transfer/", "protection/", "virtual_copy/"))):
        out.append(f"\n### {group}\n")
        out.append("| case | time per call |")
        out.append("|---|---:|")
        for name, (ns, _) in sorted(results[group].items()):
            out.append(f"| {name} | {fmt_time(ns)} |")
    return "\n".join(out)


# The plots' geometry: size, and the margins around the axes (the legend is on the right).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 960, 560, 80, 280, 30, 60


def chart(path, series, xticks, yticks, px, py, style, xlabel, ylabel):
    """Writes an SVG line chart: `series` {name: [(x, y)]}, ticks [(value, label)], the
    value-to-pixel maps, and `style(name, i)` -> (colour, dash attribute) per line."""
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>']
    svg.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>')
    svg.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>')
    for x, label in xticks:
        svg.append(f'<text x="{px(x):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{label}</text>')
    for y, label in yticks:
        svg.append(f'<text x="{LEFT - 8}" y="{py(y) + 4:.1f}" text-anchor="end">{label}</text>')
        svg.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{WIDTH - RIGHT}" y2="{py(y):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 15}" text-anchor="middle">{xlabel}</text>')
    mid = (TOP + HEIGHT - BOTTOM) / 2
    svg.append(f'<text x="18" y="{mid}" text-anchor="middle" transform="rotate(-90 18 {mid})">{ylabel}</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts.sort()
        color, dash = style(name, i)
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
        svg.append(f'<path d="{path_d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        ly = TOP + 16 * i
        svg.append(f'<line x1="{WIDTH - RIGHT + 10}" y1="{ly}" x2="{WIDTH - RIGHT + 40}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{WIDTH - RIGHT + 46}" y="{ly + 4}">{name}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg))


def plot(results, path):
    """Throughput against size (log x): every transfer case and baseline."""
    series = defaultdict(list)
    for group, rows in results.items():
        if not group.startswith("transfer/"):
            continue
        pages = int(group.split("/")[1])
        for name, (ns, nbytes) in rows.items():
            if nbytes:
                series[name].append((pages, nbytes / ns * 1e9 / GIB))
    if not series:
        return
    xs = sorted({p for pts in series.values() for p, _ in pts})
    ymax = max(v for pts in series.values() for _, v in pts) * 1.1
    lx0, lx1 = math.log2(xs[0]), math.log2(xs[-1]) if xs[-1] > xs[0] else math.log2(xs[0]) + 1

    def px(pages):
        return LEFT + (math.log2(pages) - lx0) / (lx1 - lx0) * (WIDTH - LEFT - RIGHT)

    def py(v):
        return HEIGHT - BOTTOM - v / ymax * (HEIGHT - TOP - BOTTOM)

    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aa0000", "#00aa00", "#0000aa", "#aaaa00"]

    def style(name, i):
        return colors[i % len(colors)], ' stroke-dasharray="6 3"' if name.startswith("baseline") else ""

    chart(path, series, [(p, f"{p * 64} KiB") for p in xs],
          [(ymax * i / 5, f"{ymax * i / 5:.1f}") for i in range(6)],
          px, py, style, "transfer size", "GiB/s")


def plot_virtual(results, path):
    """Time per call against size, log-log: memcpy and each case, physical and virtual."""
    series = defaultdict(list)
    for group, rows in results.items():
        if not group.startswith("virtual_copy/"):
            continue
        pages = int(group.split("_")[-1])
        for name, (ns, _) in rows.items():
            if name.startswith("memcpy") or name.split("/")[-1] in ("read", "read_sum", "read_write"):
                series[name].append((pages, ns))
    if not series:
        return
    xs = sorted({p for pts in series.values() for p, _ in pts})
    ys = [v for pts in series.values() for _, v in pts]
    lx0, lx1 = math.log10(xs[0]), math.log10(xs[-1])
    ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))

    def px(pages):
        return LEFT + (math.log10(pages) - lx0) / (lx1 - lx0) * (WIDTH - LEFT - RIGHT)

    def py(ns):
        return HEIGHT - BOTTOM - (math.log10(ns) - ly0) / (ly1 - ly0) * (HEIGHT - TOP - BOTTOM)

    colors = {"read": "#1f77b4", "read_sum": "#2ca02c", "read_write": "#d62728"}

    def style(name, _i):
        color = colors.get(name.split("/")[-1], "#000000" if name == "memcpy_hot" else "#7f7f7f")
        if name.startswith("memcpy"):
            return color, ' stroke-dasharray="2 2"'
        return color, ' stroke-dasharray="6 3"' if name.startswith("physical") else ""

    chart(path, series, [(p, f"{p} p") for p in xs],
          [(10 ** e, fmt_time(10 ** e)) for e in range(ly0, ly1 + 1)],
          px, py, style, "pages copied (64 KiB each)", "time per call (log)")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    out = sys.argv[2] if len(sys.argv) > 2 else "benches/throughput.svg"
    results = load(root)
    if not results:
        sys.exit(f"no criterion results under {root}: run `cargo bench --bench transfer` first")
    print(tables(results))
    plot(results, out)
    plot_virtual(results, os.path.join(os.path.dirname(out) or ".", "virtual_copy.svg"))


if __name__ == "__main__":
    main()
