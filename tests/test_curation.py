"""Curation: interpolation against analytic fields, time matching, chunk invariance, products."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from helpers import assert_same_outputs, local_outputs, run_job, write_cube
from tos2ca_batch.kernels import regrid

from tos2ca_batch.stages.curate import match_times
from tos2ca_batch.synth import synthesize

P0, P1 = datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30)
PHDEF = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
         "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180, -90, 180, 90],
         "tracking": {"min_size": 20}}


# -- interpolation kernels ----------------------------------------------------------------------
def test_bilinear_reproduces_a_linear_field_exactly():
    lat, lon = np.arange(-60.0, 61.0, 2.0), np.arange(-179.0, 180.0, 2.0)
    field = 0.5 * lat[:, None] - 0.25 * lon[None, :] + 280.0
    rng = np.random.default_rng(0)
    plat, plon = rng.uniform(-59, 59, 500), rng.uniform(-178, 178, 500)
    got = regrid.bilinear(field, lat, lon, plat, plon, wrap=False)
    np.testing.assert_allclose(got, 0.5 * plat - 0.25 * plon + 280.0, rtol=0, atol=1e-9)
    # Across the wrap of a global grid (field linear in latitude, constant in longitude).
    f2 = np.repeat((2.0 * lat + 1)[:, None], lon.size, axis=1)
    got2 = regrid.bilinear(f2, lat, lon, np.array([10.3, -7.7]), np.array([179.6, -179.8]), wrap=True)
    np.testing.assert_allclose(got2, [21.6, -14.4], atol=1e-9)


def test_constant_field_gives_the_constant_and_zero_std():
    lat, lon = np.arange(-10.0, 11.0), np.arange(0.0, 20.0)
    field = np.full((lat.size, lon.size), 3.25)
    v = regrid.bilinear(field, lat, lon, np.array([0.3, 5.5, -9.2]), np.array([1.1, 7.9, 18.4]), False)
    st = regrid.statistics(v)
    assert st["Mean"] == 3.25 and st["Std_dev"] == 0.0 and st["Min"] == st["Max"] == 3.25


def test_area_mean_from_finer_grid_is_the_mean_of_covered_cells():
    lat = np.arange(0.125, 2.0, 0.25)  # 0.25-degree cells
    lon = np.arange(10.125, 12.0, 0.25)
    field = np.arange(lat.size * lon.size, dtype=float).reshape(lat.size, lon.size)
    field[1, 1] = np.nan  # a fill value: never averaged
    # One 1-degree mask pixel centred at (0.5, 10.5) covers the 4 x 4 cells with centres 0.125..0.875.
    got = regrid.area_mean(field, lat, lon, np.array([0.5]), np.array([10.5]), 0.5, 0.5, False)
    block = field[0:4, 0:4]
    assert got[0] == pytest.approx(np.nanmean(block))
    cells = regrid.footprint_cells(np.array([0.5]), np.array([10.5]), 0.5, 0.5, lat, lon, False)
    assert cells.shape == (16, 2) and cells[:, 0].max() == 3


def test_nearest_for_categorical_values():
    lat, lon = np.arange(0.0, 5.0), np.arange(10.0, 15.0)
    classes = np.arange(25, dtype=float).reshape(5, 5)  # e.g. land-cover codes: never averaged
    got = regrid.nearest(classes, lat, lon, np.array([0.4, 2.6, 4.49, 9.0]), np.array([10.2, 13.51, 14.4, 12.0]), False)
    assert got[:3].tolist() == [0.0, 19.0, 24.0] and np.isnan(got[3])
    # Across the wrap of a global grid.
    glon = np.arange(-179.5, 180.0, 1.0)
    field = np.tile(np.arange(360.0), (3, 1))
    assert regrid.nearest(field, np.arange(3.0), glon, np.array([1.0]), np.array([179.9]), True)[0] == 359.0


def test_missing_values_stay_out_of_statistics():
    lat, lon = np.arange(5.0), np.arange(5.0)
    field = np.ones((5, 5))
    field[2, 2] = np.nan
    v = regrid.bilinear(field, lat, lon, np.array([2.5, 0.5, 3.9]), np.array([2.5, 0.5, 0.1]), False)
    assert np.isnan(v[0]) and v[1] == 1.0
    st = regrid.statistics(v)
    assert st["count"] == 3 and st["valid_count"] == 2 and st["Mean"] == 1.0


def test_time_matching_nearest_ties_earlier_and_gaps():
    t = lambda h, m: datetime(2020, 1, 4, h, m)  # noqa: E731
    masks = [t(0, 0), t(0, 30), t(1, 0), t(1, 30), t(2, 0), t(4, 0)]
    curation = [t(0, 0), t(1, 0), t(2, 0)]  # hourly; nothing after 02:00
    got = match_times(masks, curation, 60)
    assert got == [t(0, 0), t(0, 0), t(1, 0), t(1, 0), t(2, 0), None]  # 00:30 is a tie -> the earlier


# -- whole jobs -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("curation")
    cats = [synthesize("imerg", base / "imerg", P0, P1, res=1.0),
            synthesize("merra2", base / "merra2", datetime(2020, 1, 3, 23), datetime(2020, 1, 4, 7), res=2.0,
                       period=(P0, P1)),
            synthesize("mur", base / "mur", datetime(2020, 1, 3), datetime(2020, 1, 5), res=0.5, period=(P0, P1))]
    _, one = run_job(base / "w", PHDEF, cats)
    _, many = run_job(base / "w", PHDEF, cats, block_steps=5, tile=(50, 70), workers=2)
    assert one["status"] == many["status"] == "complete"
    return base, cats, one["job_id"], many["job_id"]


@pytest.mark.parametrize("dataset,variable", [("M2T1NXSLV", "T2M"), ("MUR", "analysed_sst")])
def test_curation_identical_for_every_chunking(world, tmp_path, dataset, variable):
    base, cats, job_one, job_many = world
    spec = {"stage": "curation", "dataset": dataset, "variable": variable}
    cfg, a = run_job(base / "w", dict(spec, phdef_job=job_one), cats)
    _, b = run_job(base / "w", dict(spec, phdef_job=job_many, chunking={"block_steps": 1}), cats, workers=2)
    assert a["status"] == b["status"] == "complete", (a["message"], b["message"])
    assert "mask times without curation data: none" in a["message"]
    outs_a, outs_b = local_outputs(a, tmp_path), local_outputs(b, tmp_path)
    assert sorted(outs_a) == ["J-Curated-Data.nc4", "J-Curation-Hierarchy.json", "J-Interpolated-Data.nc4",
                              "J-Interpolation-Hierarchy.json", "J-curation-stats.csv"]
    assert_same_outputs(outs_a, outs_b)
    summary = cfg.store(a["job_id"]).get_json("summary")
    assert 0 < summary["bytes_read"] < 0.2 * summary["field_bytes"], "only the footprints' windows are read"
    # The antimeridian anomaly is curated on both sides of 180 degrees.
    with netCDF4.Dataset(outs_a["J-Curated-Data.nc4"]) as ds:
        lons = np.concatenate([ds[g][a_][variable][1, :, 1] for g in ds.groups if g != "navigation"
                               for a_ in ds[g].groups])
        assert lons.min() < -170 and lons.max() > 170


def test_hierarchies_match_files_and_xarray_opens_every_group(world, tmp_path):
    base, cats, job_one, _ = world
    _, res = run_job(base / "w", {"stage": "curation", "phdef_job": job_one, "dataset": "M2T1NXSLV",
                                  "variable": "T2M"}, cats)
    outs = local_outputs(res, tmp_path)
    for nc, hj in (("J-Curated-Data.nc4", "J-Curation-Hierarchy.json"),
                   ("J-Interpolated-Data.nc4", "J-Interpolation-Hierarchy.json")):
        hier = json.loads(outs[hj].read_text())
        with netCDF4.Dataset(outs[nc]) as ds:
            found = {g: {a: sorted(ds[g][a].variables) for a in ds[g].groups} for g in ds.groups if g != "navigation"}
            assert set(ds["navigation"].variables) == set(hier["navigation"])
            assert ds.Units == "K" and ds.PhDefJobID == job_one and ds.FileFormat == "netCDF-4"
            assert ds.Project.endswith("(TOS2CA)") and ds.Institution and ds.ProductInfo is not None
            assert ds["navigation/lat"].units == "degrees_north" and ds["navigation/lon"].units == "degrees_east"
        assert {g: v for g, v in hier.items() if g != "navigation"} == found
    with netCDF4.Dataset(outs["J-Interpolated-Data.nc4"]) as ds:
        paths = [f"{g}/{a}" for g in ds.groups if g != "navigation" for a in ds[g].groups]
        g0 = next(g for g in ds.groups if g != "navigation")
        assert isinstance(ds[g0].TimeOffsetMinutes, np.integer) and ds[g0].CurationTime
        a0 = ds[g0][next(iter(ds[g0].groups))]["T2M"]
        assert isinstance(a0.Mean, np.floating) and isinstance(a0.count, np.integer) and a0.Units == "K"
    for path in paths:
        with xr.open_dataset(outs["J-Interpolated-Data.nc4"], group=path) as x:
            assert x["T2M"].dims == ("observation", "data_point") and x["T2M"].shape[1] == 3
    with netCDF4.Dataset(outs["J-Curated-Data.nc4"]) as ds:
        curated = [f"{g}/{a}" for g in ds.groups if g != "navigation" for a in ds[g].groups]
    for path in curated[:5]:
        with xr.open_dataset(outs["J-Curated-Data.nc4"], group=path) as x:
            assert x["T2M"].dims == ("time_step", "observation", "data_point") and x["T2M"].shape[0] == 3
    with xr.open_dataset(outs["J-Interpolated-Data.nc4"], group="navigation") as nav:
        assert nav["lat"].size == 180


def _cube_and_hourly(tmp_path, variable):
    """A PhDef job on a 30-minute 1-degree cube, and hourly curation data (value = 1000 * hour +
    cell index) on the same grid with its 02:00 file removed."""
    vals = np.zeros((8, 10, 12), np.float32)
    vals[:, 3:7, 4:8] = 20.0
    cat_p = write_cube(tmp_path / "p", "CUBE", vals, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))
    cur = (1000.0 * np.arange(6)[:, None, None] + np.arange(120).reshape(10, 12)).astype(np.float32)
    cat_c = write_cube(tmp_path / "c", "HOURLY", cur, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1), 60,
                       variable=variable)
    (tmp_path / "c" / "HOURLY_202001010200.nc").unlink()
    _, p = run_job(tmp_path / "w", {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan",
                                    "value": 10.0, "start": "2020-01-01T00:00", "end": "2020-01-01T03:30",
                                    "bbox": [0, 0, 11, 9], "tracking": {"min_size": 4}}, [cat_p, cat_c])
    return cat_p, cat_c, cur, p


def test_gap_in_curation_data_reported_missing(tmp_path):
    # PhDef on a 30-minute cube; curation data hourly, one file removed -> those mask times missing.
    cat_p, cat_c, cur, p = _cube_and_hourly(tmp_path, "v")
    cfg, c = run_job(tmp_path / "w", {"stage": "curation", "phdef_job": p["job_id"], "dataset": "HOURLY",
                                      "variable": "v"}, [cat_p, cat_c])
    assert c["status"] == "complete", c["message"]
    # 02:00 has no file: mask 02:00 takes 01:00 (01:00 and 03:00 are both 60 min away; ties -> earlier).
    summary = cfg.store(c["job_id"]).get_json("summary")
    assert summary["missing_times"] == []
    assert "mask times without curation data: none" in c["message"]
    (tmp_path / "c" / "HOURLY_202001010100.nc").unlink()
    (tmp_path / "c" / "HOURLY_202001010300.nc").unlink()
    cfg, c2 = run_job(tmp_path / "w", {"stage": "curation", "phdef_job": p["job_id"], "dataset": "HOURLY",
                                       "variable": "v"}, [cat_p, cat_c])
    missing = cfg.store(c2["job_id"]).get_json("summary")["missing_times"]
    # Data left at 00:00, 04:00, 05:00: mask times more than 60 min from all of them are missing.
    assert missing == ["202001010130", "202001010200", "202001010230"], missing
    assert "202001010130, 202001010200, 202001010230" in c2["message"]
    outs = local_outputs(c2, tmp_path)
    with netCDF4.Dataset(outs["J-Interpolated-Data.nc4"]) as ds:
        assert ds.MissingTimes == "202001010130,202001010200,202001010230"
        assert "202001010200" not in ds.groups
        g = ds["202001010300"]
        assert g.CurationTime == "202001010400" and g.TimeOffsetMinutes == 60
    # Interpolated values on the same grid are the curation values at those pixels.
    with netCDF4.Dataset(outs["J-Interpolated-Data.nc4"]) as ds:
        rows = ds["202001010000"]["1"]["v"][:]
        np.testing.assert_allclose(rows[:, 2], cur[0][rows[:, 0].astype(int), rows[:, 1].astype(int)])


def test_curation_refusals(world, tmp_path):
    base, cats, job_one, _ = world
    from tos2ca_batch.config import Config
    from tos2ca_batch.runner import submit

    cfg = Config.from_env(str(base / "w"), [str(c) for c in cats])
    pending, _ = submit(cfg, PHDEF)
    cases = [
        ({"phdef_job": pending}, "phdef_job: PhDef job", "is pending"),
        ({"phdef_job": 9999}, "phdef_job: there is no PhDef job 9999", ""),
        ({"variable": "SST"}, "variable: unknown variable 'SST'", "allowed: T2M"),
    ]
    for change, start, hint in cases:
        spec = dict({"stage": "curation", "phdef_job": job_one, "dataset": "M2T1NXSLV", "variable": "T2M"}, **change)
        _, res = run_job(base / "w", spec, cats)
        assert res["status"] == "failed" and res["message"].startswith(start) and hint in res["message"], res
    # Curation data far from the anomaly times, and curation data outside the box.
    far = write_cube(tmp_path / "far", "FAR", np.zeros((2, 4, 4), np.float32), np.arange(4.0), np.arange(4.0),
                     datetime(2019, 6, 1), 60)
    _, res = run_job(base / "w", {"stage": "curation", "phdef_job": job_one, "dataset": "FAR", "variable": "v"},
                     cats + [far])
    assert res["status"] == "failed" and "no data within one time step" in res["message"]
    away = write_cube(tmp_path / "away", "AWAY", np.zeros((14, 4, 4), np.float32), np.arange(4.0) + 200,
                      np.arange(4.0), datetime(2020, 1, 4) - timedelta(minutes=30), 30)
    _, res = run_job(base / "w", {"stage": "curation", "phdef_job": job_one, "dataset": "AWAY", "variable": "v"},
                     cats + [away])
    assert res["status"] == "failed" and "covers none of PhDef job" in res["message"], res["message"]


def test_curation_by_worker_and_mpirun_with_anomaly_plots(world, tmp_path):
    import os
    import subprocess
    import sys

    from test_mpi import mpirun

    base, cats, job_one, _ = world
    env = dict(os.environ, TOS2CA_CATALOG=os.pathsep.join(str(c) for c in cats))
    work = str(base / "w")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"stage": "curation", "phdef_job": job_one, "dataset": "M2T1NXSLV",
                                "variable": "T2M", "chunking": {"block_steps": 3}}))
    sub = subprocess.run([sys.executable, "-m", "tos2ca_batch", "submit", str(spec), "--workdir", work,
                          "--products", "interpolated,stats,anomaly-plots"], env=env, capture_output=True, text=True)
    assert sub.returncode == 0, sub.stderr[-2000:]
    w = subprocess.run([sys.executable, "-m", "tos2ca_batch", "worker", "--once", "--workers", "2", "--workdir", work],
                       env=env, capture_output=True, text=True, timeout=600)
    assert w.returncode == 0, w.stderr[-2000:]
    by_worker = json.loads(w.stdout.strip().splitlines()[-1])
    names = sorted(Path(o).name.split("-", 1)[1] for o in by_worker["outputs"])
    assert "Interpolated-Data.nc4" in names and "curation-stats.csv" in names and "Curated-Data.nc4" not in names
    plots = [n for n in names if n.endswith(".png")]
    assert plots and all("-anomaly-" in n for n in plots)
    m = subprocess.run([mpirun(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "run", str(spec),
                        "--backend", "mpi", "--workdir", work, "--products", "interpolated,stats,anomaly-plots"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert m.returncode == 0, m.stderr[-2000:]
    by_mpi = json.loads(m.stdout.strip().splitlines()[-1])
    assert_same_outputs(local_outputs(by_worker, tmp_path), local_outputs(by_mpi, tmp_path))


def test_curation_files_read_through_tos2ca_access_pattern(tmp_path):
    """Open both files as TOS2CA's notebook does: ``nc[group].groups[anomaly].variables[nc.Variable]``,
    reading Units and LongName off the variable; check t-1/t/t+1 against the source files."""
    cat_p, cat_c, cur, p = _cube_and_hourly(tmp_path, "T2M")
    _, c = run_job(tmp_path / "w", {"stage": "curation", "phdef_job": p["job_id"], "dataset": "HOURLY",
                                    "variable": "T2M"}, [cat_p, cat_c])
    assert c["status"] == "complete", c["message"]
    outs = local_outputs(c, tmp_path)
    hour = {f"20200101{h:02d}0000": h for h in range(6)}
    fill = -9999.0
    with netCDF4.Dataset(outs["J-Curated-Data.nc4"]) as nc:
        assert nc.Variable == "T2M" and nc.Dataset == "HOURLY" and nc.PhDefJobID == p["job_id"]
        groups = [g for g in nc.groups if g != "navigation"]
        # 8 mask times; 00:30 ties to 00:00, 01:30 and 02:00 (no file) to 01:00, 02:30 to 03:00, 03:30 to 03:00.
        assert groups == ["20200101000000-1", "20200101000000-2", "20200101010000-1", "20200101010000-2",
                          "20200101010000-3", "20200101030000-1", "20200101030000-2", "20200101030000-3"]
        assert [nc[g].MaskTime for g in groups] == [f"20200101{h:02d}{m:02d}" for h in range(4) for m in (0, 30)]
        assert nc["20200101000000-1"].MaskFileName.endswith(f"{p['job_id']}-ForTraCC-Mask-Output.nc4")
        assert nc["20200101010000-1"].InputFiles.count(",") == 1  # 00:00 and 01:00; 02:00 has no file
        for g in groups:
            for anomaly in nc[g].groups:
                var = nc[g].groups[anomaly].variables[nc.Variable]
                assert (var.Units, var.LongName) == ("mm/hr", "T2M")  # no long_name in the file: the name
                assert var.dimensions == ("time_step", "observation", "data_point") and var.dtype == np.float32
                assert var.TimeIndexing == "index 0 = t-1; index 1 = t; index 2 = t+1"
                assert var.Description.startswith("Each row is (lat,lon,T2M)")
                times = var.Times.split(",")
                cube = var[:].filled(np.nan)
                rows, cols = cube[1, :, 0].astype(int), cube[1, :, 1].astype(int)
                assert np.array_equal(cube[0, :, :2], cube[1, :, :2]) and np.array_equal(cube[2, :, :2], cube[1, :, :2])
                for k, t in enumerate(times):
                    if t in hour and (tmp_path / "c" / f"HOURLY_{t[:12]}.nc").exists():
                        np.testing.assert_array_equal(cube[k, :, 2], cur[hour[t]][rows, cols])
                    else:  # before the dataset starts, or the removed 02:00 file
                        assert np.isnan(cube[k, :, 2]).all(), (g, t)
                        assert (var[k, :, 2].data == fill).all()
    with netCDF4.Dataset(outs["J-Interpolated-Data.nc4"]) as nc:
        for ts in (g for g in nc.groups if g != "navigation"):
            for anomaly in nc[ts].groups:
                var = nc[ts].groups[anomaly].variables[nc.Variable]
                assert var.dtype == np.float64 and var.dimensions == ("observation", "data_point")
                assert var.Units == "mm/hr" and var.LongName and var.Time == ts and var.FillValue == "-9999.0"
                rows = var[:]
                t = nc[ts].CurationTime
                np.testing.assert_array_equal(rows[:, 2], cur[hour[t + "00"]][rows[:, 0].astype(int),
                                                                              rows[:, 1].astype(int)])
                assert var.valid_count == rows.shape[0] and var.Max == rows[:, 2].max()
