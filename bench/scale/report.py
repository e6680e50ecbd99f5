#!/usr/bin/python3
"""The scale benchmark's report: medians per node count, each goal met or missed, and the plots.

  report.py RESULTS.csv RESULTS.md PLOT.png MACHINE STARTED ELAPSED_S MDS_US REPS
"""
import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

path, out, plot, machine, started, elapsed, mds_us, reps = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
sizes = sorted({int(r["nodes"]) for r in rows})


def med(measure, n, key):
    values = [float(r[key]) for r in rows if r["measure"] == measure and int(r["nodes"]) == n and r[key] != ""]
    return statistics.median(values) if values else None


table = []
for n in sizes:
    d, i = med("python-dir", n, "python_s"), med("python-image", n, "python_s")
    table.append({
        "n": n, "start": med("start", n, "start_s"), "wall": med("start", n, "prolog_wall_ms"),
        "cpu": med("start", n, "prolog_cpu_ms"), "calls": med("start", n, "gateway_calls"),
        "meta": med("start", n, "pfs_meta_per_node"), "dir": d, "image": i,
        "dir_meta": med("python-dir", n, "pfs_meta_per_node"), "image_meta": med("python-image", n, "pfs_meta_per_node"),
        "ratio": d / i if d and i else None,
    })

first, last = table[0], table[-1]


def spread(key):
    values = [t[key] for t in table if t[key] is not None]
    return min(values), max(values)


L = ["# Scale: 1 to %d nodes" % last["n"], ""]
L.append(f"Command: `make scale` (bench/scale/run.sh, SIZES=\"{' '.join(map(str, sizes))}\", REPS={reps}), "
         f"started {started}, {int(elapsed) // 60} min {int(elapsed) % 60} s in all.")
L.append(f"Machine: {machine}. Every node is a slurmd with a mount namespace of its own, all on this "
         "machine's cores. The image store and the Python tree are on the simulated parallel filesystem "
         f"(one pfs-sim instance per node, cold client caches for Python), whose instances share one "
         f"metadata server of {mds_us} µs a request. Medians of {reps} jobs per size for the job start.")
L.append("")
L.append("| nodes | job start (s) | prolog per node, wall (ms) | prolog per node, CPU (ms) | gateway calls per job "
         "| PFS metadata requests per node (job) | `import numpy, scipy`, dir on PFS (s) | from the image (s) "
         "| image faster by | PFS metadata/node, dir | PFS metadata/node, image |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|")
for t in table:
    L.append(f"| {t['n']} | {t['start']:.2f} | {t['wall']:.1f} | {t['cpu']:.1f} | {t['calls']:.0f} | {t['meta']:.0f} "
             f"| {t['dir']:.2f} | {t['image']:.2f} | {t['ratio']:.2f}x | {t['dir_meta']:.0f} | {t['image_meta']:.0f} |")
L.append("")
L.append("![Scale](../plots/scale.png)")
L.append("")
L.append("## Goals")
L.append("")
calls_lo, calls_hi = spread("calls")
meta_lo, meta_hi = spread("meta")
cpu_lo, cpu_hi = spread("cpu")
ratios = [t["ratio"] for t in table]
grows = all(b >= a * 0.95 for a, b in zip(ratios, ratios[1:]))
goals = [
    ("gateway calls per job = 1 at every node count", f"{calls_lo:.0f} to {calls_hi:.0f}",
     calls_lo == 1 and calls_hi == 1),
    ("PFS metadata requests per node constant in N", f"{meta_lo:.0f} to {meta_hi:.0f} per node from {first['n']} to {last['n']} nodes",
     meta_hi <= meta_lo * 1.25 + 2),
    ("prolog CPU time per node constant in N", f"{cpu_lo:.1f} to {cpu_hi:.1f} ms per node", cpu_hi <= cpu_lo * 1.5 + 2),
    (f"Python from the image ≥5× faster than from the directory tree at {last['n']} nodes",
     f"{last['ratio']:.2f}× ({last['dir']:.2f} s against {last['image']:.2f} s)", last["ratio"] >= 5),
    ("the gap grows with N", " → ".join(f"{r:.2f}×" for r in ratios), grows),
]
L.append("| goal | measured | |")
L.append("|---|---|---|")
for goal, measured, met in goals:
    L.append(f"| {goal} | {measured} | {'met' if met else 'missed'} |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))

fig, axes = plt.subplots(2, 3, figsize=(15, 8))
series = [
    ("job start (s)", [t["start"] for t in table], None),
    ("prolog per node (ms)", [t["wall"] for t in table], ("CPU", [t["cpu"] for t in table])),
    ("gateway calls per job", [t["calls"] for t in table], None),
    ("PFS metadata requests per node (job)", [t["meta"] for t in table], None),
    ("import numpy, scipy (s)", [t["dir"] for t in table], ("image", [t["image"] for t in table])),
    ("image faster than dir by (×)", [t["ratio"] for t in table], None),
]
for ax, (title, values, second) in zip(axes.flat, series):
    ax.plot(sizes, values, marker="o", label="dir on PFS" if second and second[0] == "image" else "wall")
    if second:
        ax.plot(sizes, second[1], marker="s", label=second[0])
        ax.legend()
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.set_xlabel("nodes")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(plot, dpi=80)
