"""End to end: `run` on synthetic IMERG-layout files, one chunk versus chunks cutting features."""

import csv
import json
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import shapely
import xarray as xr
from helpers import assert_same_outputs, local_outputs, read_masks, run_job

from tos2ca_batch.synth import synthesize

SPEC = {
    "stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
    "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T11:30",
    "bbox": [-180.0, -90.0, 180.0, 90.0],
    "tracking": {"connectivity": 2, "min_size": 20, "min_overlap": 0.25},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    catalog = synthesize("imerg", base / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 11, 30), res=1.0)
    one = run_job(base / "work", SPEC, catalog, block_steps=24, tile=(180, 360))
    # Linked one map block at a time (reduce_rows=1) and stitched: the same as one linking.
    many = run_job(base / "work", SPEC, catalog, block_steps=5, tile=(37, 50), workers=2, reduce_rows=1)
    return base, one, many


def outputs_by_name(cfg, res):
    job = res["job_id"]
    return {Path(p).name.replace(f"{job}-", "J-", 1): p for p in res["outputs"]}


def test_jobs_complete_with_rows(runs):
    _, (cfg1, r1), (cfg2, r2) = runs
    for cfg, res in ((cfg1, r1), (cfg2, r2)):
        assert res["status"] == "complete", res["message"]
        db = cfg.db()
        assert db.get_job(res["job_id"])["status"] == "complete"
        chunks = db.chunks(res["job_id"])
        assert chunks and all(c["status"] == "complete" for c in chunks)
        assert sorted(o["location"] for o in db.outputs(res["job_id"])) == sorted(res["outputs"])
        assert all(Path(p).exists() for p in res["outputs"])
    assert len(cfg2.db().chunks(r2["job_id"], "map")) == 5 * 5 * 8  # blocks x tile rows x tile cols
    assert cfg1.store(r1["job_id"]).reduce_blocks() == [(0, 24)]
    assert cfg2.store(r2["job_id"]).reduce_blocks() == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]


def test_every_output_identical_across_chunkings(runs, tmp_path):
    _, (cfg1, r1), (cfg2, r2) = runs
    assert_same_outputs(local_outputs(r1, tmp_path), local_outputs(r2, tmp_path))
    z1 = xr.open_zarr(cfg1.store(r1["job_id"]).zarr_store())["anomaly_id"].values
    z2 = xr.open_zarr(cfg2.store(r2["job_id"]).zarr_store())["anomaly_id"].values
    assert z1.tobytes() == z2.tobytes()


def test_masks_file_layout(runs):
    _, (cfg, res), _ = runs
    path = outputs_by_name(cfg, res)["J-ForTraCC-Mask-Output.nc4"]
    with netCDF4.Dataset(path) as ds:
        assert ds.data_model == "NETCDF4"
        for attr in ("event_type", "latitude_bounds", "longitude_bounds", "start_date", "end_date", "dataset",
                     "variable", "threshold", "job_id", "connectivity", "min_size", "min_overlap", "format",
                     "production_time", "software_version"):
            assert attr in ds.ncattrs(), attr
        assert ds.event_type == "greater_than_threshold" and ds.format == "netCDF-4"
        assert list(ds.latitude_bounds) == [-90.0, 90.0] and ds.latitude_bounds.dtype == np.float64
        assert (ds.start_date, ds.end_date) == ("202001040000", "202001041130")
        nav = ds["navigation"]
        assert set(nav.dimensions) == {"lat", "lon"}
        assert nav["lat"].dtype == np.float32 and nav["lat"].dimensions == ("lat",)
        assert nav["lat"].size == 180 and nav["lon"].size == 360
        np.testing.assert_allclose(nav["lat"][:2], [-89.5, -88.5])
        masks = ds["masks"]
        assert len(masks.groups) == 24
        toc = json.loads(Path(outputs_by_name(cfg, res)["J-ForTraCC-TOC.json"]).read_text())
        assert masks.num_events == len(toc) > 0
        for g in masks.groups.values():
            mi, dv = g["mask_indices"], g["data_values"]
            assert mi.dtype == np.int32 and mi.dimensions == ("num_pixels", "num_cols")
            assert g.dimensions["num_cols"].size == 3 and dv.dtype == np.float32
            assert mi.filters()["zlib"] and dv.filters()["zlib"]
            rows = mi[:]
            if rows.size:
                key = rows[:, 2].astype(np.int64) * 10**8 + rows[:, 0] * 1000 + rows[:, 1]
                assert np.all(np.diff(key) > 0), "ordered by anomaly id, then row-major"
                assert np.all(dv[:] > 10.0)
    hier = json.loads(Path(outputs_by_name(cfg, res)["J-ForTraCC-Mask-Output-Hierarchy.json"]).read_text())
    assert hier["navigation"] == ["lat", "lon"] and len(hier["masks"]) == 24


def _cf_errors(path: Path, out: Path) -> list[str]:
    """High-priority (error) messages of the IOOS compliance-checker's CF-1.8 suite."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    ComplianceChecker.run_checker(str(path), ["cf:1.8"], 0, "normal", output_filename=str(out),
                                  output_format="json")
    report = json.loads(out.read_text())["cf:1.8"]
    assert report["possible_points"] > 100, "the suite really ran"
    return [m for item in report["high_priorities"] for m in item["msgs"]]


def test_ids_dataset_is_cf_clean_and_the_same_in_netcdf_and_zarr(runs, tmp_path):
    import shutil
    import warnings

    _, (cfg, res), _ = runs
    path = Path(outputs_by_name(cfg, res)["J-anomaly-ids.nc4"])
    # The suite's only rule about the path is the ".nc" ending; TOS2CA names the file .nc4.
    assert _cf_errors(path, tmp_path / "a.json") == [f'Dataset path {path} must end with ".nc"']
    shutil.copy(path, tmp_path / "ids.nc")
    assert _cf_errors(tmp_path / "ids.nc", tmp_path / "b.json") == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        nc = xr.open_dataset(path)
        zr = xr.open_zarr(cfg.store(res["job_id"]).zarr_store())
    with nc, zr:
        assert nc.attrs == {k: (np.int32(v) if isinstance(v, int) else v) for k, v in zr.attrs.items()}
        for attr in ("history", "source", "date_created", "operator", "threshold", "connectivity", "min_size",
                     "min_overlap", "overlap_fraction", "Conventions"):
            assert attr in nc.attrs, attr
        assert nc.attrs["operator"] == "greaterThan" and nc.attrs["threshold"] == 10.0
        assert sorted(nc.variables) == sorted(zr.variables)
        for v in nc.variables:
            assert nc[v].attrs == zr[v].attrs, v
            assert np.array_equal(nc[v].values, zr[v].values), v
        assert nc["time"].encoding["dtype"] == np.int32 and nc["time"].encoding["calendar"] == "standard"
        assert str(nc["time"].values[0])[:16] == "2020-01-04T00:00"
        np.testing.assert_array_equal(nc["time_bnds"].values[:, 1] - nc["time_bnds"].values[:, 0],
                                      np.timedelta64(30, "m"))
        np.testing.assert_allclose(nc["lat_bnds"].values[0], [-90.0, -89.0])
        np.testing.assert_allclose(nc["lon_bnds"].values[-1], [179.0, 180.0])
    with netCDF4.Dataset(outputs_by_name(cfg, res)["J-ForTraCC-Mask-Output.nc4"]) as ds:
        g = ds["masks"][next(iter(ds["masks"].groups))]
        assert g["mask_indices"].units == "1" and "anomaly id" in g["mask_indices"].long_name
        assert g["data_values"].units == "mm/hr" and g["data_values"].long_name


def _rings(geom):
    for poly in getattr(geom, "geoms", [geom]):
        yield poly.exterior, True
        for hole in poly.interiors:
            yield hole, False


def test_geojson_valid_and_areas_equal_pixel_counts(runs):
    _, (cfg, res), _ = runs
    outs = outputs_by_name(cfg, res)
    masks = read_masks(outs["J-ForTraCC-Mask-Output.nc4"])
    with netCDF4.Dataset(outs["J-ForTraCC-Mask-Output.nc4"]) as ds:
        nav_lat = ds["navigation/lat"][:].astype(np.float64)
    radius = 6371.0088
    crossing = 0
    for ts, (mi, _) in masks.items():
        fc = json.loads(Path(outs[f"J-{ts}.json"]).read_text())
        counts = dict(zip(*np.unique(mi[:, 2], return_counts=True))) if mi.size else {}
        assert {f["properties"]["anomaly"] for f in fc["features"]} == set(int(k) for k in counts)
        for f in fc["features"]:
            geom = shapely.geometry.shape(f["geometry"])
            assert geom.is_valid, shapely.is_valid_reason(geom)
            minx, _, maxx, _ = geom.bounds
            assert -180 <= minx and maxx <= 180
            crossing += geom.geom_type == "MultiPolygon" and minx == -180 and maxx == 180
            assert geom.area == pytest.approx(counts[f["properties"]["anomaly"]] * 1.0 * 1.0)
            assert f["properties"]["area_pixels"] == counts[f["properties"]["anomaly"]]
            # RFC 7946 3.1.6: exterior rings counter-clockwise (positive signed area), holes clockwise.
            for ring, exterior in _rings(geom):
                signed = shapely.Polygon(ring).area if shapely.is_ccw(ring) else -shapely.Polygon(ring).area
                assert (signed > 0) == exterior, (ts, f["properties"]["anomaly"], exterior)
            # Spherical area of the 1-degree cells, from the masks file's own rows and latitudes.
            lat_px = nav_lat[mi[mi[:, 2] == f["properties"]["anomaly"], 0]]
            expect = radius**2 * np.radians(1.0) * np.sum(
                np.sin(np.radians(lat_px + 0.5)) - np.sin(np.radians(lat_px - 0.5)))
            assert f["properties"]["area_km2"] == pytest.approx(expect, rel=1e-9, abs=1e-3)
            assert f["properties"]["tag"] and f["properties"]["dateTime"] == ts
    assert crossing > 0, "the antimeridian feature is split into a MultiPolygon"


def _id_at(ids, lat, lon, plat, plon):
    return int(ids[np.abs(lat - plat).argmin(), np.abs(((lon - plon + 180) % 360) - 180).argmin()])


def test_ground_truth_recovered(runs):
    base, (cfg, res), _ = runs
    truth = json.loads((base / "data" / "truth-imerg.json").read_text())
    ds = xr.open_zarr(cfg.store(res["job_id"]).zarr_store())
    ids, lat, lon = ds["anomaly_id"].values, ds["lat"].values, ds["lon"].values
    times = [t.strftime("%Y%m%d%H%M") for t in ds["time"].to_index()]
    rows = {int(r["anomaly_id"]): r for r in csv.DictReader(open(outputs_by_name(cfg, res)["J-anomalies.csv"]))}
    features = {f["name"]: f["track"] for f in truth["features"]}

    def ids_of(name):
        out = []
        for p in features[name]:
            if p["peak"] > 15:
                # one cell north of the centre: the 'mover' starts centred on a fill pixel
                out.append(_id_at(ids[times.index(p["t"])], lat, lon, p["lat"] + 1, p["lon"]))
        return out

    for steady in ("mover", "antimeridian"):
        got = ids_of(steady)
        assert len(set(got)) == 1 and got[0] > 0, (steady, got)  # one anomaly all along
    am = features["antimeridian"]
    assert am[0]["lon"] > 0 > am[-1]["lon"], "the feature did cross 180"
    merged = ids_of("merge_east")[-1]
    assert merged == ids_of("merge_west")[-1] and rows[merged]["merges"] == "1"
    west_first = ids_of("merge_west")[0]
    east_first = ids_of("merge_east")[0]
    assert west_first != east_first and rows[west_first if merged == east_first else east_first][
        "last_tag"] == "dissipation - merge"
    north, south = ids_of("split_north")[-1], ids_of("split_south")[-1]
    parent = ids_of("split_north")[0]
    assert ids_of("split_south")[0] == parent, "the two start as one blob"
    assert north != south and parent in (north, south)
    assert rows[south if parent == north else north]["first_tag"] == "initiation - split"
    assert int(rows[ids_of("split_north")[0]]["splits"]) == 1
    assert rows[ids_of("dissipating")[0]]["last_tag"] == "dissipation"


def test_missing_values_never_in_a_mask(runs):
    base, (cfg, res), _ = runs
    truth = json.loads((base / "data" / "truth-imerg.json").read_text())
    ds = xr.open_zarr(cfg.store(res["job_id"]).zarr_store())
    ids, lat, lon = ds["anomaly_id"].values, ds["lat"].values, ds["lon"].values
    miss = truth["missing_pixels"]
    for plat, plon in zip(miss["lat"], miss["lon"]):
        assert all(_id_at(ids[s], lat, lon, plat, plon) == 0 for s in range(ids.shape[0]))
    # The 'mover' starts centred on a fill pixel: its surroundings are in the anomaly, the pixel is not.
    first = ids[0]
    r, c = np.abs(lat - 20).argmin(), np.abs(lon + 60).argmin()
    assert first[r, c] == 0 and first[r, c + 1] > 0
