"""The serial stages at scale: the reduce (seam join + ForTraCC linking over tables only) and the
masks file's structure, fed with synthetic map tables of a global 0.1-degree job, against the
number of steps. Each size runs in its own processes, so its peak RSS is its own.

    python benchmarks/bench_serial.py [--steps 1000 10000 100000] [--components K] [--measure] [--plan]
                                      [--rows R]

The reduce runs as the stage does (``stages.reduce.reduce_tables``): one process writes the map
tables of 24-step blocks into a folder chunk store (on tmpfs), another reads them back, links
them in time blocks of about ``--rows`` component rows (``TOS2CA_REDUCE_ROWS``, default the
configuration's) and writes the lookups and the per-block components. Tables: ``K`` components
a step (areas drawn from a lognormal around 300 pixels, so most are kept at ``min_size`` 150:
the worst case, where the map dropped nothing), each overlapping the component of the same
label one step before, plus a merge and a split partner for 5 % of them; one whole-grid tile
wrapping in longitude, so the seam lines are the labelled pixels (2 %) of the tile's four edges
(label 1 on both sides of the wrap, so the wrap joins those nodes). ``--measure`` first counts,
on synthetic 0.1-degree IMERG-layout files (``--field fractal``: the rain-like field,
``TOS2CA_BENCH_DATA/imerg-0.1-fractal``, written if absent; ``blobs``: ``bench_large.py``'s),
the components a step (> 10 mm/hr, 8-connected), those of at least 150 pixels, the rows the map
keeps (small components whole in the tile dropped) and the overlaps per component, and prints
them. Prints one JSON line per size: seconds and peak RSS of the reduce and of writing the masks
file's structure. ``--plan`` times the plan stage itself at each size instead (``plan_size``).
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


BLOCK = 24  # map block steps (the default)


def block_tables(t0: int, t1: int, k: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """Map tables of steps ``t0:t1`` (one whole-grid tile), each block drawn from its own seed."""
    rng = np.random.default_rng([seed, t0])
    n_steps = t1 - t0
    n = n_steps * k
    step = np.repeat(np.arange(t0, t1, dtype=np.int32), k)
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
    }
    cur = np.flatnonzero(step > 0)
    extra = cur[rng.random(cur.size) < 0.05]
    s_all = np.r_[step[cur], step[extra], step[extra]]
    prev_l = np.r_[label[cur], label[extra] % k + 1, label[extra]]
    cur_l = np.r_[label[cur], label[extra], label[extra] % k + 1]
    order = np.lexsort((cur_l, prev_l, s_all))
    ov = {
        "step": s_all[order].astype(np.int32), "prev_label": prev_l[order].astype(np.int32),
        "cur_label": cur_l[order].astype(np.int32),
        "overlap": np.maximum(1, (area[np.r_[cur, extra, extra]] * 0.4)).astype(np.int64)[order],
        "first_overlap_index": first[np.r_[cur, extra, extra]][order],
    }
    lines = tile_lines(n_steps, rng)
    for side in ("top", "bottom", "left", "right"):
        lines[f"{side}_step"] = lines[f"{side}_step"] + np.int32(t0)
    return comps, ov, lines


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


def peak_rss_kib() -> int:
    """This process's peak resident set (KiB): ``VmHWM``, the high-water mark of its own memory
    since its ``exec``. (``ru_maxrss`` is not: Linux carries it over ``exec``, so a child started
    by a parent holding 400 MiB reports at least 400 MiB.)"""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _store(work: str):
    from tos2ca_batch.stores.blobs import DirBlobs
    from tos2ca_batch.stores.chunkstore import ChunkStore

    return ChunkStore(DirBlobs(work), f"{work}/ids.zarr", "bench")


def write_map(n_steps: int, k: int, work: str) -> None:
    """The map tables of a job of ``n_steps`` steps, block by block, as the map stage stores them."""
    store = _store(work)
    for b, t0 in enumerate(range(0, n_steps, BLOCK)):
        comps, ov, lines = block_tables(t0, min(n_steps, t0 + BLOCK), k)
        store.put_table("map", b, "components", comps)
        store.put_table("map", b, "overlaps", ov)
        store.put_table("map", b, "strips", lines)


def one_size(n_steps: int, k: int, work: str, rows: int | None) -> dict:
    from tos2ca_batch.algorithm import Layout
    from tos2ca_batch.config import Config
    from tos2ca_batch.outputs.masks import write_masks
    from tos2ca_batch.plans import Tracking
    from tos2ca_batch.stages.reduce import reduce_tables

    store = _store(work)
    lay = Layout(n_steps, HEIGHT, WIDTH, BLOCK, HEIGHT, WIDTH)
    rows = rows or Config.from_env(work).reduce_rows
    rss0 = peak_rss_kib()
    t0 = time.perf_counter()
    reduce_tables(store, lay, Tracking(2, 150, 0.25), True, rows)
    reduce_s = time.perf_counter() - t0
    rss_reduce = peak_rss_kib()
    blocks = store.reduce_blocks()
    kept = sum(store.get_table("reduce", b, "components")["step"].size for b in range(len(blocks)))
    out = {"steps": n_steps, "components_per_step": k, "kept_components": int(kept),
           "anomalies": store.get_json("anomalies")["n_anomalies"], "reduce_blocks": len(blocks), "rows": rows,
           "reduce_s": round(reduce_s, 2), "reduce_peak_rss_mib": round(rss_reduce / 1024, 1),
           "before_reduce_rss_mib": round(rss0 / 1024, 1)}
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
            "plan_peak_rss_mib": round(peak_rss_kib() / 1024, 1)}


def fractal_data(steps: int = 24) -> str:
    """The catalog of ``steps`` rain-like 0.1-degree IMERG-layout files (written once)."""
    from datetime import datetime, timedelta

    from tos2ca_batch.synth import synthesize

    folder = os.path.join(os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"), f"imerg-0.1-fractal-{steps}")
    catalog = os.path.join(folder, "catalog-imerg.json")
    if not os.path.exists(catalog):
        start = datetime(2020, 1, 4)
        synthesize("imerg", folder, start, start + timedelta(minutes=30 * (steps - 1)), res=0.1, field="fractal")
    return catalog


def measure(field: str) -> dict:
    """Components per step, those of at least 150 pixels, the rows the map keeps of them (one
    whole-grid tile wrapping in longitude, ``min_size`` 150) and overlaps per component, on
    synthetic 0.1-degree files."""
    from datetime import timedelta

    from tos2ca_batch.kernels.blockmap import BlockMapper
    from tos2ca_batch.kernels.components import label, overlap_pairs

    from tos2ca_batch.catalog import load_catalog
    from tos2ca_batch.readers import StepReader

    path = fractal_data() if field == "fractal" else os.path.join(
        os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"), "imerg-0.1-96", "catalog-imerg.json")
    entry = load_catalog([path])["GPM_3IMERGHH"]
    n_steps = 24 if field == "fractal" else 96
    counts, big, rows, overlaps = [], [], [], []
    prev = None
    with StepReader(entry, "precipitation") as r:
        lat, lon = r.grid(entry.first)
        mapper = BlockMapper(0, 0, lon.size, 2, min_size=150, seams=(False, False, True, True))
        for k in range(n_steps):
            t = entry.first + timedelta(minutes=30 * k)
            v = r.read(t, np.arange(lat.size), np.arange(lon.size))
            mask = v > 10.0
            lab, n = label(mask, 2)
            counts.append(n)
            big.append(int((np.bincount(lab.ravel())[1:] >= 150).sum()))
            if prev is not None:
                overlaps.append(overlap_pairs(prev, lab, k, 0, 0, lon.size)["step"].size / max(n, 1))
            prev = lab
            mapper.add(k, mask, v)
        rows.append(mapper.tables()["components"]["step"].size / n_steps)
    return {"field": field, "steps": n_steps, "components_per_step": round(float(np.mean(counts)), 1),
            "components_per_step_range": [int(min(counts)), int(max(counts))],
            "of_150_pixels_or_more_per_step": round(float(np.mean(big)), 1),
            "map_rows_per_step": round(float(rows[0]), 1),
            "overlaps_per_component": round(float(np.mean(overlaps)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="*", default=[1000, 10000, 100000])
    ap.add_argument("--components", type=int, default=1000,
                    help="map rows a step (1000: a rain-like field's components, none dropped by the map)")
    ap.add_argument("--rows", type=int, default=None, help="component rows the reduce links at once "
                    "(TOS2CA_REDUCE_ROWS; default the configuration's)")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--field", choices=["fractal", "blobs"], default="fractal", help="what --measure reads")
    ap.add_argument("--plan", action="store_true", help="time the plan stage at each size instead")
    ap.add_argument("--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the map tables are written (tmpfs by default)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--write", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write is not None:
        write_map(args.write, args.components, args.dir)
        return
    if args.one is not None:
        print(json.dumps(plan_size(args.one) if args.plan else one_size(args.one, args.components, args.dir,
                                                                           args.rows)))
        return
    if args.measure:
        print(json.dumps({"measured_on_synthetic_0.1_degree": measure(args.field)}), flush=True)
    env = dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE")
    for n in args.steps:
        with tempfile.TemporaryDirectory(dir=args.work) as work:
            common = ["--components", str(args.components), "--dir", work]
            if not args.plan:
                subprocess.run([sys.executable, __file__, "--write", str(n), *common], check=True, env=env)
            p = subprocess.run([sys.executable, __file__, "--one", str(n), *common]
                               + (["--plan"] if args.plan else []) + (["--rows", str(args.rows)] if args.rows else []),
                               capture_output=True, text=True, env=env)
        print(p.stdout.strip() or json.dumps({"steps": n, "error": p.stderr[-500:]}), flush=True)


if __name__ == "__main__":
    main()
