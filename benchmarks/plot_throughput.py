"""Throughput against job size and worker count, beside the floor: a PNG from bench_floor runs.

    python benchmarks/bench_floor.py --steps N ... >> benchmarks/floor-runs.jsonl   (one line a run)
    python benchmarks/plot_throughput.py benchmarks/floor-runs.jsonl benchmarks/throughput.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    runs = sorted((json.loads(line) for line in open(source) if line.strip()), key=lambda r: r["mpx"])
    modes = sorted({m for r in runs for m in r["mpx_per_s"]}, key=lambda m: (not m.startswith("floor"), m))
    labels = {"floor": "floor: h5py read + scipy label, 1 core",
              "floor2": "floor x 2: two floor processes on halves, at once"}
    styles = {"floor": "k--", "floor2": "k:"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode in modes:
        xs = [r["mpx"] for r in runs if mode in r["mpx_per_s"]]
        ys = [r["mpx_per_s"][mode] for r in runs if mode in r["mpx_per_s"]]
        ax.plot(xs, ys, styles.get(mode, "-o"), label=labels.get(mode, f"tos2ca-batch run, {mode}"))
    grids = sorted({f"{r['shape'][1]} x {r['shape'][2]}" for r in runs})
    steps = sorted(r["shape"][0] for r in runs)
    ax.set(xscale="log", xlabel="job size (steps x rows x cols; Mpx)", ylabel="Mpx/s (whole process, median)",
           title=f"throughput against the floor: {', '.join(grids)}, {steps[0]}-{steps[-1]} steps")
    ax.set_xticks([r["mpx"] for r in runs], [f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}\n{r['mpx']:g}"
                                             for r in runs], fontsize=7)
    ax.minorticks_off()
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
