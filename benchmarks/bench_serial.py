"""The serial stages at scale: the reduce (seam join + ForTraCC linking over tables only) and the
masks file's structure, fed with synthetic tables of a global 0.1-degree job, against the number
of steps. Each size runs in its own process, so its peak RSS is its own.

    python benchmarks/bench_serial.py [--steps 1000 10000 100000] [--components K] [--measure] [--plan]

``--measure`` first counts, on the synthetic 96 x 1800 x 3600 IMERG-layout files of
``bench_large.py``, the components per step (> 10 mm/hr, 8-connected; and those of at least 150
pixels) and the overlaps per component, and prints them. Tables: ``K`` components a step (areas
drawn from a lognormal around 300 pixels), each overlapping the component of the same label one
step before, plus a merge and a split partner for 5 % of them; one whole-grid tile wrapping in
longitude, so the seam lines are the labelled pixels (2 %) of the tile's four edges (what such a
job stores; label 1 on both sides of the wrap, so the wrap joins those nodes). Prints one JSON
line per size: seconds and peak RSS of the reduce and of writing the masks file's structure.
``--plan`` times the plan stage itself at each size instead (``plan_size``).
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
    strips = {(0, 0): tile_lines(n_steps, rng)}
    return comps, ov, strips


def tile_lines(n_steps: int, rng: np.random.Generator, coverage: float = 0.02) -> dict[str, np.ndarray]:
    """A whole-grid tile's seam lines (its edges' labelled pixels) at ``coverage``."""
    out = {}
    for side, length in (("top", WIDTH), ("bottom", WIDTH), ("left", HEIGHT), ("right", HEIGHT)):
        n = rng.binomial(n_steps * length, coverage)
        flat = np.unique(rng.integers(0, n_steps * length, n))
        out[f"{side}_step"] = (flat // length).astype(np.int32)
        out[f"{side}_pos"] = (flat % length).astype(np.int32)
        out[f"{side}_label"] = np.ones(flat.size, np.int32)
        out[f"{side}_length"] = np.array([length], np.int64)
    return out


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


def plan_size(n_steps: int) -> dict:
    """Plan a global 0.1-degree job of ``n_steps`` half-hourly steps as ``run`` does (time axis,
    every file's existence, the grid from the first file, chunk rows, the plan document), on
    files that are symbolic links to one synthetic IMERG-layout file (the planner opens only the
    first; it lists every path)."""
    from datetime import datetime, timedelta

    from tos2ca_batch.catalog import file_for, load_catalog
    from tos2ca_batch.config import Config
    from tos2ca_batch.runner import plan_job, submit

    data = os.path.join(os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"), "imerg-0.1-96")
    source = load_catalog([os.path.join(data, "catalog-imerg.json")])["GPM_3IMERGHH"]
    first = file_for(source, source.first)
    with tempfile.TemporaryDirectory() as tmp:
        doc = json.loads(open(os.path.join(data, "catalog-imerg.json")).read())
        start = datetime(2020, 1, 4)
        end = start + timedelta(minutes=30 * (n_steps - 1))
        doc["GPM_3IMERGHH"].update(startDate=f"{start:%Y-%m-%dT%H:%M}", endDate=f"{end:%Y-%m-%dT%H:%M}")
        with open(f"{tmp}/catalog.json", "w") as f:
            json.dump(doc, f)
        entry = load_catalog([f"{tmp}/catalog.json"])["GPM_3IMERGHH"]
        for k in range(n_steps):
            path = file_for(entry, start + timedelta(minutes=30 * k))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(first, path)
        cfg = Config.from_env(f"{tmp}/work", [f"{tmp}/catalog.json"])
        cfg.workdir.mkdir()
        spec = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
                "value": 10.0, "start": f"{start:%Y-%m-%dT%H:%M}", "end": f"{end:%Y-%m-%dT%H:%M}",
                "bbox": [-180.0, -90.0, 180.0, 90.0]}
        job, _ = submit(cfg, spec, status="running")
        t0 = time.perf_counter()
        plan = plan_job(cfg, job)
        took = time.perf_counter() - t0
        chunks = sum(plan.stage_chunks(s) for s in plan.stages())
    return {"steps": n_steps, "plan_s": round(took, 2), "chunk_rows": chunks,
            "plan_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


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
    ap.add_argument("--components", type=int, default=37,
                    help="components a step (37: measured on the synthetic 0.1-degree files)")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--plan", action="store_true", help="time the plan stage at each size instead")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(plan_size(args.one) if args.plan else one_size(args.one, args.components)))
        return
    if args.measure:
        print(json.dumps({"measured_on_synthetic_0.1_degree": measure()}), flush=True)
    for n in args.steps:
        p = subprocess.run([sys.executable, __file__, "--one", str(n), "--components", str(args.components)]
                           + (["--plan"] if args.plan else []),
                           capture_output=True, text=True, env=dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))
        print(p.stdout.strip() or json.dumps({"steps": n, "error": p.stderr[-500:]}), flush=True)


if __name__ == "__main__":
    main()
