"""Per-period masks and ids files (jobs over TOS2CA_PERIOD_STEPS steps) hold exactly what the
one-file products hold: the same groups, pixels, values and global ids, period by period."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from helpers import run_job

from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T20:00", "end": "2020-01-05T04:00", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 20}}


def _outputs(res) -> dict[str, Path]:
    assert res["status"] == "complete", res["message"]
    return {Path(o).name: Path(o) for o in res["outputs"]}


def _group(path: Path, group: str) -> dict:
    with netCDF4.Dataset(path) as ds:
        g = ds[group]
        return {name: (np.asarray(v[:]).tolist(), {k: v.getncattr(k) for k in v.ncattrs()})
                for name, v in g.variables.items()}


@pytest.mark.parametrize("workers", [1, 2])
def test_period_files_equal_the_one_file_products(tmp_path, monkeypatch, workers):
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4, 20), datetime(2020, 1, 5, 4), res=1.0)
    _, one = run_job(tmp_path / "one", SPEC, catalog, block_steps=4, workers=workers)
    monkeypatch.setenv("TOS2CA_PERIOD", "day")
    monkeypatch.setenv("TOS2CA_PERIOD_STEPS", "10")  # 17 steps: over it, so two daily periods
    cfg, per = run_job(tmp_path / "per", SPEC, catalog, block_steps=4, workers=workers)
    a, b = _outputs(one), _outputs(per)
    assert "1-ForTraCC-Mask-Output.nc4" in a and "1-ForTraCC-Mask-Output.nc4" not in b
    listing = json.loads(b["1-ForTraCC-Products.json"].read_text())
    assert [(p["period"], p["steps"]) for p in listing["periods"]] == [("20200104", 8), ("20200105", 9)]
    assert [c["chunkID"] for c in cfg.db().chunks(per["job_id"], "periods")] == [0, 1]
    for name in ("1-ForTraCC-TOC.json", "1-ForTraCC-Mask-Output-Hierarchy.json", "1-anomalies.csv"):
        assert a[name].read_bytes() == b[name].read_bytes(), name
    with netCDF4.Dataset(a["1-ForTraCC-Mask-Output.nc4"]) as whole, netCDF4.Dataset(a["1-anomaly-ids.nc4"]) as ids:
        all_groups = list(whole["masks"].groups)
        num_events = whole["masks"].num_events
        all_ids, all_time = ids["anomaly_id"][:], ids["time"][:]
    seen, offset = [], 0
    for p in listing["periods"]:
        masks, idsfile = b[p["masks"]], b[p["ids"]]
        with netCDF4.Dataset(masks) as ds:
            groups = list(ds["masks"].groups)
            assert ds["masks"].num_events == num_events  # ids are the job's, global
            assert ds.period == p["period"] and ds.start_date == groups[0]
            assert _group(masks, "navigation") == _group(a["1-ForTraCC-Mask-Output.nc4"], "navigation")
        for ts in groups:
            assert _group(masks, f"masks/{ts}") == _group(a["1-ForTraCC-Mask-Output.nc4"], f"masks/{ts}"), ts
        seen += groups
        with netCDF4.Dataset(idsfile) as ds:
            n = ds["time"].size
            assert np.array_equal(ds["anomaly_id"][:], all_ids[offset:offset + n])
            assert np.array_equal(ds["time"][:], all_time[offset:offset + n])
        offset += n
    assert seen == all_groups and offset == len(all_time)
    assert all_ids.max() > 0
