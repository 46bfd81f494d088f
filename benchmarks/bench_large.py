"""Large-domain benchmark: 96 x 1800 x 3600 (two days of global half-hourly 0.1° IMERG layout,
gzip HDF5 like the real files), masks only, run through the CLI exactly as a user runs it:
local backend with 1 and 2 workers, and ``mpirun -n 2 ... --backend mpi``.

    python benchmarks/bench_large.py [--repeats 3] [--modes local1 local2 mpi2] [--steps 96]

Reports per mode the median wall time, Mpx/s, peak RSS per worker, the reduce's share of the
wall time, parallel efficiency against 1 worker, and a projection for a 30-day global job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from tos2ca_batch.synth import synthesize

RES = 0.1


def spec(steps: int) -> dict:
    end = datetime(2020, 1, 4) + timedelta(minutes=30 * (steps - 1))
    return {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
            "value": 10.0, "start": "2020-01-04T00:00", "end": end.strftime("%Y-%m-%dT%H:%M"),
            "bbox": [-180.0, -90.0, 180.0, 90.0], "tracking": {"min_size": 150}}


def one_run(mode: str, catalog: Path, steps: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    try:
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec(steps)))
        args = ["run", str(spec_path), "--catalog", str(catalog), "--workdir", str(work), "--products", "masks"]
        if mode == "mpi2":
            mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or "mpirun"
            cmd = [mpirun, "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", *args, "--backend", "mpi"]
        else:
            cmd = [sys.executable, "-m", "tos2ca_batch", *args, "--workers", mode[-1]]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-3000:])
        res = json.loads(p.stdout.strip().splitlines()[-1])
        return {"wall_s": wall, "timings": res["timings"], "rss": res["peak_rss_mib_per_worker"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["local1", "local2", "mpi2"])
    ap.add_argument("--data", default=os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"))
    args = ap.parse_args()
    data = Path(args.data) / f"imerg-{RES}-{args.steps}"
    catalog = data / "catalog-imerg.json"
    if not catalog.exists():
        end = datetime(2020, 1, 4) + timedelta(minutes=30 * (args.steps - 1))
        synthesize("imerg", data, datetime(2020, 1, 4), end, res=RES)
    mpx = args.steps * 1800 * 3600 / 1e6
    out = {}
    for mode in args.modes:
        runs = [one_run(mode, catalog, args.steps) for _ in range(args.repeats)]
        med = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        wall = statistics.median(r["wall_s"] for r in runs)
        reduce_share = med["timings"].get("reduce", 0) / med["wall_s"]
        fixed = med["timings"].get("plan", 0) + med["timings"].get("reduce", 0)
        per_step = (wall - fixed) / args.steps
        out[mode] = {
            "walls_s": [round(r["wall_s"], 1) for r in runs], "wall_s": round(wall, 1),
            "mpx_per_s": round(mpx / wall, 1), "peak_rss_mib_per_worker": max(max(r["rss"]) for r in runs),
            "stage_s": med["timings"], "reduce_share": round(reduce_share, 4),
            # 30 days = 1440 steps: per-step work scales linearly; the reduce grows with the
            # component tables, so it is scaled linearly too (ForTraCC linking is one pass in time).
            "projected_30_day_wall_min": round((per_step * 1440 + fixed * 1440 / args.steps) / 60, 1),
        }
        print(json.dumps({"mode": mode, **out[mode]}), flush=True)
    if "local1" in out:
        for mode in ("local2", "mpi2"):
            if mode in out:
                out[mode]["parallel_efficiency"] = round(out["local1"]["wall_s"] / (2 * out[mode]["wall_s"]), 3)
    print(json.dumps({"benchmark": "large-domain", "shape": [args.steps, 1800, 3600], "mpx": round(mpx, 1),
                      "results": out}))


if __name__ == "__main__":
    main()
