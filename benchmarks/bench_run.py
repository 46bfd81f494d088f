"""End-to-end benchmark of ``run`` (masks only) on a synthetic IMERG-layout job.

    python benchmarks/bench_run.py [--res 0.25] [--steps 48] [--workers 1 2] [--repeats 3]

Default: 48 steps x 720 x 1440 (global 0.25 degree). Reports per worker count the median wall
time, Mpx/s (input pixels / wall) and the peak RSS of a worker process in each stage; and the
map stage's peak RSS for half the steps, to show it does not grow with the job's length.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from tos2ca_batch.backends.local import LocalBackend
from tos2ca_batch.config import Config
from tos2ca_batch.runner import run
from tos2ca_batch.synth import synthesize


def spec(steps: int) -> dict:
    end = datetime(2020, 1, 4) + timedelta(minutes=30 * (steps - 1))
    return {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
            "value": 10.0, "start": "2020-01-04T00:00", "end": end.strftime("%Y-%m-%dT%H:%M"),
            "bbox": [-180.0, -90.0, 180.0, 90.0], "products": ["masks"]}


def one_run(catalog: Path, steps: int, workers: int, block_steps: int | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        cfg = Config.from_env(str(work), [str(catalog)])
        backend = LocalBackend(workers)
        raw = spec(steps)
        if block_steps:
            raw["chunking"] = {"block_steps": block_steps}
        t0 = time.perf_counter()
        backend.prepare()  # as the CLI does: the workers are forked with the package imported,
        # after the plan here (runner.execute)
        try:
            res = run(cfg, raw, backend)
        finally:
            backend.close()
        wall = time.perf_counter() - t0
        assert res["status"] == "complete", res["message"]
        return {"wall_s": wall, "rss_mib": {k: v / 1024 for k, v in backend.peak_rss_kib.items()}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def job_arguments() -> argparse.ArgumentParser:
    """The job's size and the runs: what ``bench_run`` and ``bench_floor`` both take."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"))
    ap.add_argument("--field", choices=["blobs", "fractal"], default="blobs",
                    help="the synthetic field: the ground truth's blobs, or rain-like (synth --field fractal)")
    return ap


def imerg_catalog(args) -> Path:
    """The synthetic IMERG-layout files of ``--res`` and ``--steps`` (written once, then reused)."""
    field = getattr(args, "field", "blobs")
    data = Path(args.data) / (f"imerg-{args.res}-{args.steps}" + ("" if field == "blobs" else f"-{field}"))
    catalog = data / "catalog-imerg.json"
    if not catalog.exists():
        end = datetime(2020, 1, 4) + timedelta(minutes=30 * (args.steps - 1))
        synthesize("imerg", data, datetime(2020, 1, 4), end, res=args.res, field=field)
    return catalog


def main() -> None:
    ap = job_arguments()
    ap.add_argument("--block-steps", type=int, default=None, help="default: the planner's choice")
    args = ap.parse_args()
    catalog = imerg_catalog(args)
    ny, nx = round(180 / args.res), round(360 / args.res)
    mpx = args.steps * ny * nx / 1e6
    results = {}
    for w in args.workers:
        runs = [one_run(catalog, args.steps, w, args.block_steps) for _ in range(args.repeats)]
        wall = statistics.median(r["wall_s"] for r in runs)
        results[w] = {
            "wall_s": round(wall, 2), "mpx_per_s": round(mpx / wall, 1),
            "walls": [round(r["wall_s"], 2) for r in runs],
            "peak_rss_mib_per_worker": {k: round(max(r["rss_mib"].get(k, 0) for r in runs), 1)
                                        for k in runs[0]["rss_mib"]},
        }
        print(json.dumps({"workers": w, **results[w]}), flush=True)
    half = one_run(catalog, args.steps // 2, 1, args.block_steps)
    out = {"benchmark": "run-masks", "shape": [args.steps, ny, nx], "mpx": round(mpx, 1), "results": results,
           "map_rss_mib_half_steps": round(half["rss_mib"]["map"], 1),
           "map_rss_mib_all_steps": results[args.workers[0]]["peak_rss_mib_per_worker"]["map"]}
    if 1 in results and 2 in results:
        out["parallel_efficiency_2"] = round(results[1]["wall_s"] / (2 * results[2]["wall_s"]), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
