"""scan: a dataset's files over a range, as a user runs it before a big job (the CLI, a real
catalog of netCDF files with a missing, a broken, an all-fill and an other-grid file), the cache
that skips unchanged files, and run refusing early what a scan found."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from helpers import run_job, write_cube


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_scan_finds_each_kind_of_problem_skips_what_it_scanned_and_run_refuses_it_early(tmp_path):
    rng = np.random.default_rng(3)
    lat, lon = np.linspace(-10, 10, 12), np.linspace(0, 30, 20)
    values = (rng.random((8, 12, 20)) * 5).astype(np.float32)
    values[5] = np.nan  # a step whose every pixel is missing
    catalog = write_cube(tmp_path / "d", "cube", values, lat, lon, datetime(2020, 1, 1))
    (tmp_path / "d" / "cube_202001010100.nc").unlink()  # step 2: missing
    (tmp_path / "d" / "cube_202001010130.nc").write_bytes(b"truncated")  # step 3: unreadable
    other = write_cube(tmp_path / "o", "cube", values[:1], lat + 0.5, lon, datetime(2020, 1, 1, 3, 0))
    os.replace(other.parent / "cube_202001010300.nc", tmp_path / "d" / "cube_202001010300.nc")  # step 6: other grid
    common = ["--dataset", "cube", "--start", "2020-01-01T00:00", "--end", "2020-01-01T03:30", "--catalog",
              str(catalog), "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "scan")]
    p = cli("scan", *common, cwd=tmp_path)
    assert p.returncode == 1, p.stderr  # problems found
    log = json.loads((tmp_path / "scan" / "cube-scan.json").read_text())
    assert log["counts"] == {"ok": 4, "missing": 1, "unreadable": 1, "other grid": 1, "all fill": 1}
    rows = list(csv.DictReader(open(tmp_path / "scan" / "cube-scan.csv")))
    by_time = {r["time"]: r for r in rows}
    broken = by_time["2020-01-01T01:30"]
    assert broken["status"] == "unreadable" and "OSError" in broken["detail"]
    assert "lat 12 values -9.5000" in by_time["2020-01-01T03:00"]["detail"]
    ok = by_time["2020-01-01T00:00"]
    assert float(ok["min"]) == float(values[0].min()) and float(ok["max"]) == float(values[0].max())
    assert len(log["plots"]) == 2 and all(Path(p).stat().st_size > 5_000 for p in log["plots"])  # fill, grid
    assert "1 missing, 1 unreadable, 1 other grid, 1 all fill" in p.stderr

    again = cli("scan", *common, cwd=tmp_path)
    log2 = json.loads((tmp_path / "scan" / "cube-scan.json").read_text())
    assert again.returncode == 1 and log2["counts"] == log["counts"]
    # every file but the missing one came from the cache, but the first good one (read again: the grid
    # every other file must match is its)
    assert log2["from_cache"] == 6
    time.sleep(0.01)
    (tmp_path / "d" / "cube_202001010130.nc").write_bytes(b"still not netCDF, longer")  # changed: read again
    log3 = json.loads(cli("scan", *common, cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert log3["from_cache"] == 5

    spec = {"dataset": "cube", "variable": "v", "operator": "greaterThan", "value": 4.0,
            "start": "2020-01-01T02:00", "end": "2020-01-01T03:30", "bbox": [0, -10, 30, 10]}
    cfg, res = run_job(tmp_path / "w", spec, catalog)
    assert res["status"] == "failed" and res["message"].startswith("start: a scan found 1 of the job's files")
    assert "other grid" in res["message"] and cfg.db().chunks(res["job_id"]) == []  # refused before any work
    cfg, res = run_job(tmp_path / "w", dict(spec, end="2020-01-01T02:30"), catalog)
    assert res["status"] == "complete", res["message"]  # the all-fill step is no reason to refuse
