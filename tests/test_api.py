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


def test_a_notebook_runs_on_its_own_dataarray_and_gets_what_the_same_data_in_files_gives(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from helpers import assert_same_outputs, local_outputs, write_cube

    rng = np.random.default_rng(5)
    lat, lon = np.arange(-29.5, 30.0), -178.5 + 3.0 * np.arange(120)  # a global ring of 3-degree cells
    values = (rng.random((9, 60, 120)) * 4).astype(np.float32)
    for k in range(9):  # a storm crossing the antimeridian, and one that grows
        values[k, 25:33, (110 + 2 * k + np.arange(8)) % 120] = 20.0
        values[k, 40:44 + k, 30:36 + k] = 15.0
    values[4, :5, :10] = np.nan  # missing pixels
    catalog = write_cube(tmp_path / "files", "cube", values, lat, lon, datetime(2020, 1, 1))
    da = xr.DataArray(values, dims=("time", "lat", "lon"), name="v", attrs={"units": "mm/hr"},
                      coords={"time": np.array([np.datetime64("2020-01-01T00:00") + np.timedelta64(30 * k, "m")
                                                for k in range(9)]), "lat": lat, "lon": lon})
    spec = {"dataset": "cube", "variable": "v", "operator": "greaterThan", "value": 10.0,
            "start": "2020-01-01T00:00", "end": "2020-01-01T04:00", "bbox": [-180, -30, 180, 30],
            "tracking": {"min_size": 5}}
    on_files = tb.run(spec, workdir=tmp_path / "f", catalog=catalog, workers=2, block_steps=3, tile=(32, 64))
    job = tb.run(spec, data=da, workdir=tmp_path / "x", workers=2, block_steps=3, tile=(32, 64))
    assert on_files.status == job.status == "complete", (on_files.message, job.message)
    assert job.plan.layout.n_chunks == 3 * 4  # chunk-parallel over time blocks and tiles, as on files
    assert_same_outputs(local_outputs({"job_id": on_files.id, "outputs": on_files.outputs}, tmp_path),
                        local_outputs({"job_id": job.id, "outputs": job.outputs}, tmp_path))

    job = tb.open_job(job.id, workdir=tmp_path / "x")  # later, in another cell
    assert job.steps.equals(on_files.steps) and job.tracks.equals(on_files.tracks)
    assert len(job.tracks) == 2 and set(job.tracks["steps"]) == {9}
    ids = job.ids["anomaly_id"]
    assert ids.shape == (9, 60, 120) and int((ids.isel(time=4) > 0).sum()) == int((values[4] > 10).sum())
    ids.isel(time=4).plot()  # what a notebook does next
    matplotlib.pyplot.savefig(tmp_path / "step4.png")
    assert (tmp_path / "step4.png").stat().st_size > 5_000

    polygons = job.polygons  # one GeoDataFrame of every step's polygons (the job's GeoParquet)
    assert len(polygons) == len(job.steps) and polygons.crs.equals("OGC:CRS84")
    curated = on_files.curation("cube", "v")  # the variable inside every anomaly, on the mask grid
    assert curated.status == "complete", curated.message
    assert any(o.endswith("Interpolated-Data.nc4") for o in curated.outputs)

    # a Zarr store given by path: read where it is, the same outputs again
    da.to_dataset().to_zarr(tmp_path / "mine.zarr")
    from_zarr = tb.run(dict(spec, dataset=None), data=tmp_path / "mine.zarr", workdir=tmp_path / "z", workers=1,
                       block_steps=3, tile=(32, 64))
    assert from_zarr.status == "complete", from_zarr.message
    assert from_zarr.steps.equals(on_files.steps)
    # the same DataArray again is not written again
    again = tb.run(spec, data=da, workdir=tmp_path / "x", workers=1)
    assert again.status == "complete" and len(list((tmp_path / "x" / "inputs").glob("*.zarr"))) == 1


def test_data_that_cannot_be_a_dataset_is_refused_naming_what_is_wrong(tmp_path):
    spec = {"variable": "v", "operator": "greaterThan", "value": 1, "start": "2020-01-01T00:00",
            "end": "2020-01-01T01:00", "bbox": [0, 0, 10, 10]}
    da = xr.DataArray(np.zeros((3, 4, 5), np.float32), dims=("time", "y0", "x0"), name="v",
                      coords={"time": np.array(["2020-01-01T00:00", "2020-01-01T00:30", "2020-01-01T02:00"],
                                               dtype="datetime64[m]")})
    with pytest.raises(ValueError, match="data: needs a latitude"):
        tb.run(spec, data=da, workdir=tmp_path)
    da = da.rename(y0="lat", x0="lon").assign_coords(lat=np.arange(4.0), lon=np.arange(5.0))
    with pytest.raises(ValueError, match="data: times must be evenly spaced"):
        tb.run(spec, data=da, workdir=tmp_path)
    with pytest.raises(ValueError, match="data: must be an xarray DataArray or Dataset"):
        tb.run(spec, data=[1, 2, 3], workdir=tmp_path)
