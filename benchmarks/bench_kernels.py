"""Kernel benchmark: binarize + label + component table + overlaps on a 1 Mpx field at ~2 % coverage.

    python benchmarks/bench_kernels.py [--size 1000] [--repeats 15]

Prints one JSON line: median seconds per step and Mpx/s on one core, and each kernel's share;
``pieces_s`` is what the ``"tos2ca"`` overlap fraction adds per step (labelling each overlap's
pieces), as a share of the exact mode's step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
from tos2ca_batch.kernels.binarize import binarize
from tos2ca_batch.kernels.components import component_table, label, overlap_pairs, overlap_pieces

from tos2ca_batch.synth import feature_field


def field(size: int, shift: float, seed: int = 0) -> np.ndarray:
    """Precipitation-like field: many blobs (about 2 % above threshold) plus drizzle."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-60, 60, size)
    lon = np.linspace(-180, 180, size, endpoint=False)
    out = np.zeros((size, size), np.float32)
    lat0 = rng.uniform(-55, 55, 48)
    lon0 = rng.uniform(-175, 175, 48)
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    for a, b in zip(lat0, lon0):
        out += 30 * np.exp(-(((yy - a) ** 2) + ((xx - b - shift) ** 2)) / (2 * 1.6**2)).astype(np.float32)
    out += rng.gamma(1.0, 0.6, out.shape).astype(np.float32).clip(0, 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    _ = feature_field  # the generator's blobs are the model for these fields
    a, b = field(args.size, 0.0), field(args.size, 0.5)
    coverage = float((a > 10).mean())
    parts = {"binarize": [], "label": [], "table": [], "overlaps": [], "total": []}
    pieces = []
    prev, _ = label(binarize(a, "greaterThan", 10.0), 2)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        m = binarize(b, "greaterThan", 10.0)
        t1 = time.perf_counter()
        lab, _ = label(m, 2)
        t2 = time.perf_counter()
        index = np.flatnonzero(m)  # once per step, on the bool mask, as BlockMapper does
        component_table(lab, b, 1, 0, 0, args.size, index)
        t3 = time.perf_counter()
        overlap_pairs(prev, lab, 1, 0, 0, args.size, index)
        t4 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            parts[k].append(v)
        t5 = time.perf_counter()
        overlap_pieces(prev, lab, 1, 0, 0, args.size, 2)
        pieces.append(time.perf_counter() - t5)
    med = {k: statistics.median(v) for k, v in parts.items()}
    mpx = args.size * args.size / 1e6
    print(json.dumps({
        "benchmark": "kernels", "pixels": args.size * args.size, "coverage": round(coverage, 4),
        "repeats": args.repeats, "median_s_per_step": round(med["total"], 5),
        "mpx_per_s": round(mpx / med["total"], 1),
        "share": {k: round(v / med["total"], 3) for k, v in med.items() if k != "total"},
        "pieces_s": round(statistics.median(pieces), 5),
        "pieces_extra": round(statistics.median(pieces) / med["total"], 3),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
    }))


if __name__ == "__main__":
    main()
