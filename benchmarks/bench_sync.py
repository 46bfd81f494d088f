"""A sync of one new step onto a 30-day 1-degree global job, against a full rerun.

    python benchmarks/bench_sync.py [--days 30] [--res 1.0] [--repeats 3] [--products masks,toc,...]

IMERG-layout files (half-hourly, so 30 days = 1,440 steps of 180 x 360) are synthesized once
(cached under $TMPDIR/tos2ca-bench-data). For each repeat: a job over all but the last step,
then, as whole processes (interpreter start and imports included):

- ``tos2ca-batch sync J`` with the last step's file arriving, timed;
- ``tos2ca-batch run`` of the one-shot job over every step, timed;
- the files the sync opened, counted with ``strace -f -e trace=openat`` on a second job synced
  the same way (traced separately: strace slows a process down).

Prints one JSON line with the medians and the counts; RESULTS.md has the numbers.
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

from tos2ca_batch.catalog import file_for
from tos2ca_batch.config import Config
from tos2ca_batch.synth import synthesize

START = datetime(2020, 1, 1)


def cli(*args: str, env: dict, trace: Path | None = None) -> tuple[float, str]:
    command = [sys.executable, "-m", "tos2ca_batch", *args]
    if trace is not None:
        command = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *command]
    t0 = time.perf_counter()
    p = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr[-3000:]}")
    return wall, p.stdout.strip().splitlines()[-1]


def data_files_opened(trace: Path, folder: Path) -> list[str]:
    """Distinct input files (under ``folder``) the traced process tree opened."""
    opened = set()
    for line in trace.read_text().splitlines():
        if "openat(" in line and str(folder) in line and "ENOENT" not in line:
            path = line.split('"')[1]
            if not path.endswith(".json"):  # the catalog and truth files are not inputs
                opened.add(path)
    return sorted(opened)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--res", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--products", default="masks,toc,hierarchy,geojson,tracks,ids",
                    help="the jobs' products (plots of 1,440 steps would time matplotlib, not the sync)")
    args = ap.parse_args()
    steps = args.days * 48
    last = START + timedelta(minutes=30 * (steps - 1))
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "tos2ca-bench-data" / f"imerg-{args.res}-{steps}"
    if not (cache / "catalog-imerg.json").exists():
        synthesize("imerg", cache, START, last, res=args.res)
    catalog = cache / "catalog-imerg.json"
    entry = Config.from_env(str(cache), [str(catalog)]).catalog()["GPM_3IMERGHH"]
    late = Path(file_for(entry, last))
    held_back = cache.parent / f"{cache.name}-held-back"
    spec = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
            "value": 10.0, "start": f"{START:%Y-%m-%dT%H:%M}", "end": f"{last:%Y-%m-%dT%H:%M}",
            "bbox": [-180.0, -90.0, 180.0, 90.0], "products": args.products.split(",")}
    sync_s, rerun_s, first_s, opened = [], [], [], []
    for k in range(args.repeats + 1):  # the extra round is the traced sync
        work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
        env = dict(os.environ, TOS2CA_WORKDIR=str(work), TOS2CA_CATALOG=str(catalog), HDF5_USE_FILE_LOCKING="FALSE")
        env.pop("TOS2CA_DB_URL", None)
        try:
            before = last - timedelta(minutes=30)
            (work / "spec.json").write_text(json.dumps(dict(spec, end=f"{before:%Y-%m-%dT%H:%M}")))
            held_back.mkdir(exist_ok=True)
            shutil.move(late, held_back / late.name)  # the last step has not arrived yet
            try:
                wall, out = cli("run", str(work / "spec.json"), "--workers", str(args.workers), env=env)
            finally:
                shutil.move(held_back / late.name, late)  # ... now it has
            first_s.append(wall)
            job = str(json.loads(out)["job_id"])
            traced = k == args.repeats
            wall, out = cli("sync", job, "--workers", str(args.workers), env=env,
                            trace=work / "sync.strace" if traced else None)
            assert json.loads(out)["sync"] == "synced", out
            if traced:
                opened = data_files_opened(work / "sync.strace", cache)
                continue
            sync_s.append(wall)
            (work / "full.json").write_text(json.dumps(spec))
            wall, _ = cli("run", str(work / "full.json"), "--workers", str(args.workers), env=env)
            rerun_s.append(wall)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    med_sync, med_rerun = statistics.median(sync_s), statistics.median(rerun_s)
    print(json.dumps({
        "steps": steps, "grid": [round(180 / args.res), round(360 / args.res)], "workers": args.workers,
        "products": spec["products"], "job_of_all_but_last_s": round(statistics.median(first_s), 2),
        "sync_one_step_s": round(med_sync, 2), "full_rerun_s": round(med_rerun, 2),
        "sync_over_rerun": round(med_sync / med_rerun, 3), "sync_runs_s": [round(x, 2) for x in sync_s],
        "rerun_runs_s": [round(x, 2) for x in rerun_s], "input_files": steps,
        "input_files_opened_by_sync": len(opened), "opened": [Path(p).name for p in opened],
    }))


if __name__ == "__main__":
    main()
