"""The Python API as a notebook uses it: run, open the job again, read the ids and the tables."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import numpy as np
import pytest
import xarray as xr

import tos2ca_batch as tb
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 20}}


def test_run_open_and_read_like_a_notebook(tmp_path):
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    job = tb.run(spec, workdir=tmp_path / "w", catalog=catalog, workers=2, block_steps=4)
    assert job.status == "complete", job.message
    again = tb.open_job(job.id, workdir=tmp_path / "w")
    assert again.outputs == job.outputs and "anomal" in again.summary()

    ids = again.ids
    assert isinstance(ids, xr.Dataset) and ids["anomaly_id"].dims == ("time", "lat", "lon")
    assert ids["anomaly_id"].shape == (12, 120, 360)
    steps, tracks = again.steps, again.tracks
    cube = ids["anomaly_id"].values
    # one row per anomaly per step, its pixel count as in the ids
    for row in steps.itertuples():
        k = int(np.flatnonzero(ids["time"].values == np.datetime64(row.time))[0])
        assert (cube[k] == row.anomaly_id).sum() == row.area_px
    assert len(steps) == sum(np.unique(c[c > 0]).size for c in cube)
    # one row per track, the same as the job's CSV
    with open(next(o for o in job.outputs if o.endswith("anomalies.csv"))) as f:
        table = list(csv.DictReader(f))
    assert len(tracks) == len(table) == int(cube.max())
    for row, want in zip(tracks.itertuples(), table):
        assert row.anomaly_id == int(want["anomaly_id"]) and row.steps == int(want["n_steps"])
        assert row.max_area_px == int(want["max_area_pixels"]) and row.merges == int(want["merges"])
        assert row.start.strftime("%Y%m%d%H%M") == want["start_date"] and len(row.path) == row.steps


def test_a_failed_job_says_why(tmp_path):
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 0, 30), res=2.0)
    job = tb.run(dict(SPEC, operator="above"), workdir=tmp_path / "w", catalog=catalog)
    assert job.status == "failed" and job.message.startswith("operator:")
    with pytest.raises(RuntimeError, match="failed"):
        _ = job.steps
