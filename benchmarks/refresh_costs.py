"""Measure the per-chunk costs ``tos2ca-batch estimate`` prices jobs with, and write them to
``tos2ca_batch/costs.json`` (``make bench`` runs it).

    python benchmarks/refresh_costs.py [--dry-run]

Runs ``bench_large.py --modes local1`` (96 x 1800 x 3600, one worker: seconds per Mpx of each
parallel stage, finalize per step) and ``bench_serial.py --steps 10000`` (the reduce's seconds
and bytes per component); keeps the other entries (container starts, output bytes) as they are.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
COSTS = HERE.parent / "tos2ca_batch" / "costs.json"


def last_json(cmd: list[str]) -> dict:
    p = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dry-run", action="store_true", help="print the new table, do not write it")
    args = ap.parse_args()
    costs = json.loads(COSTS.read_text())
    large = last_json([str(HERE / "bench_large.py"), "--modes", "local1", "--repeats", "1"])
    run = large["results"]["local1"]
    stage = run["stage_s"]
    mpx = large["mpx"]
    steps = large["shape"][0]
    costs["seconds_per_mpx"] = {k: round(stage[k] / mpx, 5) for k in ("map", "relabel", "publish")}
    serial = last_json([str(HERE / "bench_serial.py"), "--steps", "10000"])
    comps = serial["steps"] * serial["components_per_step"]
    costs["reduce_seconds_per_component"] = float(f"{serial['reduce_s'] / comps:.3g}")
    # The reduce holds one time block at a time: its rows, a map block more and the halo block.
    held = min(comps, serial["rows"] + 2 * 24 * serial["components_per_step"])
    costs["reduce_bytes_per_row"] = round((serial["reduce_peak_rss_mib"] - serial["before_reduce_rss_mib"])
                                          * 2**20 / held)
    costs.pop("reduce_bytes_per_component", None)
    costs["finalize_seconds_per_step"] = serial["masks_structure_s_per_step"]
    costs["measured"] = (f"{date.today()} on {platform.machine()}, {platform.python_version()}: "
                         f"bench_large.py (local1, {steps} x 1800 x 3600) and bench_serial.py (10,000 steps)")
    text = json.dumps(costs, indent=2) + "\n"
    print(text)
    if not args.dry_run:
        COSTS.write_text(text)


if __name__ == "__main__":
    main()
