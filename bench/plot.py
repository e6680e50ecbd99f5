#!/usr/bin/python3
"""Plots of the benchmarks' CSV files, one PNG per benchmark, in bench/plots/.

  bench/plot.py            (Debian's python3-matplotlib, or matplotlib from PyPI)

Also turns bench/import/RESULTS.md (written by bench/import/run.sh) into bench/import/results.csv.
A benchmark whose CSV is missing is skipped.
"""
import csv
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
PLOTS = os.path.join(BENCH, "plots")


def rows(name):
    path = os.path.join(BENCH, name, "results.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return list(csv.DictReader(f))


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def save(fig, name):
    os.makedirs(PLOTS, exist_ok=True)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, name + ".png"), dpi=110)
    plt.close(fig)
    print(f"plot.py: bench/plots/{name}.png")


def import_csv():
    """bench/import/RESULTS.md's table as bench/import/results.csv."""
    source = os.path.join(BENCH, "import", "RESULTS.md")
    if not os.path.exists(source):
        return
    out = []
    for line in open(source):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"[0-9.]+", cells[1] or "x"):
            out.append({"pipeline": cells[0], "median_wall_s": cells[1], "image_bytes": cells[2],
                        "peak_rss_mb": cells[3]})
    if out:
        with open(os.path.join(BENCH, "import", "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(out[0]))
            w.writeheader()
            w.writerows(out)


def plot_python():
    data = rows("python")
    if not data:
        return
    workloads = list(dict.fromkeys(r["workload"] for r in data))
    modules = {w: max(int(r["modules"]) for r in data if r["workload"] == w) for w in workloads}
    modes = list(dict.fromkeys(r["mode"] for r in data))

    def med(w, m, key):
        return median([float(r[key]) for r in data if r["workload"] == w and r["mode"] == m])

    labels = {"pfs-dir": "tree as a directory on the PFS", "pfs-image": "squashfs image on the PFS (prolog loop mount)",
              "local-dir": "tree on local disk (floor)",
              "pfs-image-dio": "squashfs image on the PFS, imageLoopDirectIO=1"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    xs = [modules[w] for w in workloads]
    for m, style in (("pfs-dir", "o-"), ("pfs-image", "s-")):
        if m in modes:
            a.plot(xs, [max(med(w, m, "meta_ops_per_node"), 0.5) for w in workloads], style, label=labels[m])
    a.set_xlabel("Python modules imported per rank")
    a.set_ylabel("metadata requests reaching the PFS, per node")
    a.set_yscale("log")
    a.set_ylim(bottom=1)
    a.set_title("Metadata requests per node (4 nodes x 2 ranks)")
    for k, (w, x) in enumerate(zip(workloads, xs)):
        a.annotate(w, (x, max(med(w, "pfs-dir", "meta_ops_per_node"), 1)), textcoords="offset points",
                   xytext=(0, 8 if k % 2 == 0 else -16), ha="center", fontsize=8)
    a.legend(fontsize=8)
    a.grid(True, which="both", alpha=0.3)
    width = 0.8 / len(modes)
    for i, m in enumerate(modes):
        b.bar([j + i * width for j in range(len(workloads))], [med(w, m, "wall_s") for w in workloads], width,
              label=labels.get(m, m))
    b.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(workloads))])
    b.set_xticklabels([f"{w}\n({modules[w]} modules)" for w in workloads], fontsize=8)
    b.set_ylabel("wall time of the srun step (s)")
    b.set_title("python3 -c 'import ...' as 8 ranks on 4 nodes")
    b.legend(fontsize=7)
    b.grid(True, axis="y", alpha=0.3)
    save(fig, "python")


def plot_cache():
    data = rows("cache")
    if not data:
        return
    ways = list(dict.fromkeys(r["way"] for r in data))
    configs = list(dict.fromkeys((r["nodes"], r["writers_per_node"]) for r in data))
    labels = {"pfs": "directly on the PFS (write-through)", "pfs-wb": "directly on the PFS (client write-back cache)",
              "cache": "perNodeCache volume backed by the PFS"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, test, unit in ((axes[0], "dd", "MB/s per writer"), (axes[1], "fio", "IOPS per writer")):
        width = 0.8 / len(ways)
        for i, way in enumerate(ways):
            vals = []
            for n, w in configs:
                r = [x for x in data if x["test"] == test and x["way"] == way and x["nodes"] == n
                     and x["writers_per_node"] == w]
                vals.append(float(r[0]["per_writer_synced"]) if r else 0)
            ax.bar([j + i * width for j in range(len(configs))], vals, width, label=labels.get(way, way))
        ax.set_xticks([j + width * (len(ways) - 1) / 2 for j in range(len(configs))])
        ax.set_xticklabels([f"{n} node{'s' if n != '1' else ''}\n{w} writer{'s' if w != '1' else ''}/node"
                            for n, w in configs], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(unit + " (after fsync)")
        ax.set_title("dd if=/dev/zero bs=512" if test == "dd" else "fio randwrite bs=512 (psync)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, "cache")


def horizontal_bars(name, labels, values, colours, unit, xlabel, title, height, log=False):
    """One bar per case, longest at the bottom, each with its value written at its end (a log scale
    where the cases are orders of magnitude apart)."""
    fig, ax = plt.subplots(figsize=(7, height))
    bars = ax.barh(labels, values, color=colours)
    for bar, value in zip(bars, values):
        text = f" {value:.2f} {unit}" if value < 10 else f" {value:.1f} {unit}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        xlabel += ", log scale"
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    save(fig, name)


def plot_import():
    data = rows("import")
    if not data:
        return
    names = [r["pipeline"] for r in data]
    horizontal_bars("import", names, [float(r["median_wall_s"]) for r in data],
                    ["tab:green" if "shifterimg" in n else "tab:gray" for n in names], "s",
                    "median wall time to a squashfs image (s)",
                    "Import: registry to squashfs (numpy: Debian packages, 3 layers; wheels: PyPI wheels)",
                    max(3.8, 0.45 * len(names)))


def plot_runtime():
    data = [r for r in rows("runtime") if r["median_ms"]]
    if not data:
        return
    names = [r["way"] for r in data]
    values = [float(r["median_ms"]) for r in data]
    horizontal_bars("runtime", names, values,
                    ["tab:green" if n.startswith("shifter") else "tab:gray" for n in names], "ms",
                    "median time to run /bin/true in the image (ms)", "Container entry", max(3.6, 0.45 * len(names)),
                    log=max(values) > 50 * min(values))


def plot_slurm():
    data = rows("slurm")
    if not data:
        return
    get = {(r["measure"], r["nodes"]): float(r["median_ms"]) for r in data if r["median_ms"] not in ("", "n/a")}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    groups = ["1", "4"]
    width = 0.38
    for i, (measure, label) in enumerate((("step_plain", "srun true"), ("step_shifter", "srun shifter true"))):
        a.bar([j + i * width for j in range(len(groups))], [get.get((measure, n), 0) for n in groups], width, label=label)
    a.set_xticks([j + width / 2 for j in range(len(groups))])
    a.set_xticklabels([f"{n} node{'s' if n != '1' else ''}" for n in groups])
    a.set_ylabel("median step time (ms)")
    a.set_title("Job step overhead")
    a.legend(fontsize=8)
    a.grid(True, axis="y", alpha=0.3)
    nodes = ["1", "2", "4"]
    b.plot([int(n) for n in nodes], [get.get(("prolog_per_node", n), 0) for n in nodes], "o-")
    b.set_xticks([1, 2, 4])
    b.set_xlabel("nodes in the job")
    b.set_ylabel("prolog per node, median (ms)")
    b.set_title("Per-node root set-up in the prolog")
    b.set_ylim(bottom=0)
    b.grid(True, alpha=0.3)
    save(fig, "slurm")


def main():
    import_csv()
    for plot in (plot_python, plot_cache, plot_import, plot_runtime, plot_slurm):
        try:
            plot()
        except Exception as error:  # one bad CSV must not cost the other plots
            print(f"plot.py: {plot.__name__}: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
