"""The serial stages at scale: the reduce (seam join + ForTraCC linking over tables only) and the
masks file's structure, fed with synthetic tables of a global 0.1-degree job, against the number
of steps. Each size runs in its own process, so its peak RSS is its own.

    python benchmarks/bench_serial.py [--steps 1000 10000 100000] [--components K] [--measure]

``--measure`` first counts, on the synthetic 96 x 1800 x 3600 IMERG-layout files of
``bench_large.py``, the components per step (> 10 mm/hr, 8-connected; and those of at least 150
pixels) and the overlaps per component, and prints them. Tables: ``K`` components a step (areas
drawn from a lognormal around 300 pixels), each overlapping the component of the same label one
step before, plus a merge and a split partner for 5 % of them; one whole-grid tile wrapping in
longitude, so the seam strips are the tile's four edges (what such a job stores). Prints one JSON
line per size: seconds and peak RSS of the reduce and of writing the masks file's structure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HEIGHT, WIDTH = 1800, 3600


def tables(n_steps: int, k: int, seed: int = 0) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(seed)
    n = n_steps * k
    step = np.repeat(np.arange(n_steps, dtype=np.int32), k)
    label = np.tile(np.arange(1, k + 1, dtype=np.int32), n_steps)
    area = np.maximum(1, rng.lognormal(np.log(300), 1.0, n)).astype(np.int64)
    row = rng.integers(0, HEIGHT, n)
    col = (np.tile(np.linspace(0, WIDTH - 50, k).astype(np.int64), n_steps) + step % 50).astype(np.int64)
    first = row * WIDTH + col
    size = np.sqrt(area).astype(np.int64)
    comps = {
        "step": step, "label": label, "area": area, "first_index": first,
        "min_row": row.astype(np.int32), "min_col": col.astype(np.int32),
        "max_row": np.minimum(HEIGHT, row + size).astype(np.int32), "max_col": (col + size).astype(np.int32),
        "sum_row": area * row, "sum_col": area * col, "sum_col_half": area * ((col + WIDTH // 2) % WIDTH),
        "value_sum": area * 15.0, "value_min": np.full(n, 10.1), "value_max": np.full(n, 40.0),
        "tile": np.zeros(n, np.int32),
    }
    cur = np.flatnonzero(step > 0)
    extra = cur[rng.random(cur.size) < 0.05]
    s_all = np.r_[step[cur], step[extra], step[extra]]
    prev_l = np.r_[label[cur], label[extra] % k + 1, label[extra]]
    cur_l = np.r_[label[cur], label[extra], label[extra] % k + 1]
    ov = {
        "step": s_all.astype(np.int32), "prev_label": prev_l.astype(np.int32), "cur_label": cur_l.astype(np.int32),
        "overlap": np.maximum(1, (area[np.r_[cur, extra, extra]] * 0.4)).astype(np.int64),
        "first_overlap_index": first[np.r_[cur, extra, extra]], "tile": np.zeros(s_all.size, np.int32),
    }
    strips = {(0, 0): {"top": np.zeros((n_steps, WIDTH), np.int32), "bottom": np.zeros((n_steps, WIDTH), np.int32),
                       "left": np.zeros((n_steps, HEIGHT), np.int32), "right": np.zeros((n_steps, HEIGHT), np.int32)}}
    return comps, ov, strips


def one_size(n_steps: int, k: int) -> dict:
    from tos2ca_batch.kernels.tracking import resolve

    from tos2ca_batch.outputs.masks import write_masks

    comps, ov, strips = tables(n_steps, k)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = resolve(comps, ov, strips, n_steps, 1, 1, 2, True, 150, 0.25)
    reduce_s = time.perf_counter() - t0
    rss_reduce = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"steps": n_steps, "components_per_step": k, "kept_components": int(res.components["step"].size),
           "anomalies": res.n_anomalies, "reduce_s": round(reduce_s, 2),
           "reduce_peak_rss_mib": round(rss_reduce / 1024, 1), "tables_rss_mib": round(rss0 / 1024, 1)}
    masks_steps = min(n_steps, 2000)  # the structure's cost per step, measured on up to 2000 groups
    empty = {"num_pixels": np.array([0]), "mask_indices": np.zeros(0, np.uint8), "data_values": np.zeros(0, np.uint8)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_masks(f"{tmp}/m.nc4", {"units": "mm/hr"}, np.zeros(HEIGHT), np.zeros(WIDTH),
                    [f"{s:012d}" for s in range(masks_steps)], 0, lambda s: empty)
        out["masks_structure_s_per_step"] = round((time.perf_counter() - t0) / masks_steps, 5)
    return out


def measure() -> dict:
    """Components per step and overlaps per component on the synthetic 0.1-degree files."""
    from datetime import timedelta

    from tos2ca_batch.kernels.components import component_table, label, overlap_pairs

    from tos2ca_batch.catalog import load_catalog
    from tos2ca_batch.readers import StepReader

    path = os.path.join(os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"), "imerg-0.1-96",
                        "catalog-imerg.json")
    entry = load_catalog([path])["GPM_3IMERGHH"]
    counts, kept, overlaps = [], [], []
    prev = None
    with StepReader(entry, "precipitation") as r:
        for k in range(0, 96, 6):
            t = entry.first + timedelta(minutes=30 * k)
            lat, lon = r.grid(t)
            v = r.read(t, np.arange(lat.size), np.arange(lon.size))
            lab, n = label(v > 10.0, 2)
            table = component_table(lab, v, k, 0, 0, lon.size)
            counts.append(n)
            kept.append(int((table["area"] >= 150).sum()))
            if prev is not None:
                overlaps.append(overlap_pairs(prev, lab, k, 0, 0, lon.size)["step"].size / max(n, 1))
            prev = lab
    return {"components_per_step": float(np.mean(counts)), "kept_per_step_min_size_150": float(np.mean(kept)),
            "overlaps_per_component": round(float(np.mean(overlaps)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--components", type=int, default=8)
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.components)))
        return
    if args.measure:
        print(json.dumps({"measured_on_synthetic_0.1_degree": measure()}), flush=True)
    for n in args.steps:
        p = subprocess.run([sys.executable, __file__, "--one", str(n), "--components", str(args.components)],
                           capture_output=True, text=True, env=dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))
        print(p.stdout.strip() or json.dumps({"steps": n, "error": p.stderr[-500:]}), flush=True)


if __name__ == "__main__":
    main()
