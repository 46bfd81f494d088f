"""Curation benchmark: a 48-step PhDef job on a 720 x 1440 grid (IMERG layout, 0.25°), then
curation of a coarser hourly MERRA-2-layout variable (0.5°, bilinear) and a finer daily
MUR-layout variable (0.05°, area mean). Reports wall time and read volume (bytes of curation
data read vs the bytes of the whole fields at the matched times).

    python benchmarks/bench_curation.py [--repeats 3] [--workers 2]
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

START, END = datetime(2020, 1, 4), datetime(2020, 1, 4, 23, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"))
    args = ap.parse_args()
    data = Path(args.data) / "curation"
    if not (data / "catalog-mur.json").exists():
        synthesize("imerg", data, START, END, res=0.25)
        synthesize("merra2", data, START, END + timedelta(minutes=30), res=0.5, period=(START, END))
        synthesize("mur", data, START - timedelta(days=1), END, res=0.05, period=(START, END))
    cats = [str(data / f"catalog-{k}.json") for k in ("imerg", "merra2", "mur")]
    results: dict[str, list] = {"M2T1NXSLV": [], "MUR": []}
    for _ in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="bench-cur-"))
        try:
            cfg = Config.from_env(str(work), cats)
            backend = LocalBackend(args.workers)
            try:
                ph = run(cfg, {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
                               "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00",
                               "end": "2020-01-04T23:30", "bbox": [-180, -90, 180, 90],
                               "products": ["masks"]}, backend)
                assert ph["status"] == "complete", ph["message"]
                for ds, var in (("M2T1NXSLV", "T2M"), ("MUR", "analysed_sst")):
                    t0 = time.perf_counter()
                    res = run(cfg, {"stage": "curation", "phdef_job": ph["job_id"], "dataset": ds,
                                    "variable": var}, backend)
                    wall = time.perf_counter() - t0
                    assert res["status"] == "complete", res["message"]
                    summary = cfg.store(res["job_id"]).get_json("summary")
                    results[ds].append({"wall_s": wall, **summary, "timings": res["timings"]})
            finally:
                backend.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    out = {}
    for ds, runs in results.items():
        r = runs[0]
        out[ds] = {"walls_s": [round(x["wall_s"], 2) for x in runs],
                   "wall_s": round(statistics.median(x["wall_s"] for x in runs), 2),
                   "bytes_read": r["bytes_read"], "whole_fields_bytes": r["field_bytes"],
                   "read_fraction": round(r["bytes_read"] / r["field_bytes"], 4), "stage_s": runs[0]["timings"]}
    print(json.dumps({"benchmark": "curation", "phdef": [48, 720, 1440], "workers": args.workers, "results": out}))


if __name__ == "__main__":
    main()
