"""ForTraCC linking alone: the shortcut for single components and pairs against sending every
group through the pool loop (what linking cost before), on the same tables in the same run.

    python benchmarks/bench_link.py [--steps 2000] [--components 1000] [--repeats 3]

Tables: ``bench_serial.py``'s (lognormal areas around 300 pixels, one continuation each, a merge
and a split partner for 5 %), one time block of ``--steps`` steps, joined and filtered by
``resolve``; only ``fortracc.link`` is timed (its inputs are captured from one ``resolve``).
Prints one JSON line: the medians, their ratio and the ids' equality.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from bench_serial import HEIGHT, WIDTH, block_tables
from tos2ca_batch.kernels import fortracc, tracking


def link_inputs(steps: int, k: int):
    """The arguments ``resolve`` hands ``link`` for one block of ``steps`` steps."""
    comps, ov, lines = block_tables(0, steps, k)
    comps["tile"] = np.zeros(comps["step"].size, np.int32)
    ov["tile"] = np.zeros(ov["step"].size, np.int32)
    seen = {}
    real = tracking.link

    def capture(areas, overlaps, min_overlap, start=None):
        seen["args"] = (areas, overlaps, min_overlap, start)
        return real(areas, overlaps, min_overlap, start)

    tracking.link = capture
    try:
        tracking.resolve(comps, ov, {(0, 0): lines}, steps, 1, 1, 2, True, 150, 0.25)
    finally:
        tracking.link = real
    return seen["args"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--components", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    areas, overlaps, min_overlap, start = link_inputs(args.steps, args.components)
    times = {"shortcut": [], "pool_loop": []}
    out = {}
    for _ in range(args.repeats):  # interleaved
        for name, shortcut in (("shortcut", True), ("pool_loop", False)):
            t0 = time.perf_counter()
            out[name] = fortracc.link(areas, overlaps, min_overlap, start, shortcut=shortcut)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    same = all(np.array_equal(a, b) for a, b in zip(out["shortcut"].anomaly_id, out["pool_loop"].anomaly_id))
    n = sum(a.size for a in areas)
    print(json.dumps({"benchmark": "link", "steps": args.steps, "components": n, "grid": [HEIGHT, WIDTH],
                      "median_s": {k: round(v, 3) for k, v in med.items()},
                      "us_per_component": {k: round(v / n * 1e6, 2) for k, v in med.items()},
                      "speedup": round(med["pool_loop"] / med["shortcut"], 2), "same_ids": same,
                      "same_events": out["shortcut"].events == out["pool_loop"].events}))


if __name__ == "__main__":
    main()
