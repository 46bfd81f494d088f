"""Inject moving, merging and splitting features into a background, run, score; and the copy
keeps the files' layout (a real IMERG-layout HDF5: gzip + shuffle, chunks, attributes)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
from helpers import run_job, write_cube

from tos2ca_batch.config import Config
from tos2ca_batch.inject import EXAMPLE_FEATURES, inject
from tos2ca_batch.synth import synthesize

FEATURES = EXAMPLE_FEATURES


def test_injected_features_are_found_and_their_merge_and_split_matched(tmp_path):
    rng = np.random.default_rng(1)
    lat, lon = np.arange(-40.0, 41.0), np.arange(-180.0, 180.0)
    background = rng.random((12, lat.size, lon.size)).astype(np.float32)  # drizzle below 1 mm/hr
    catalog = write_cube(tmp_path / "bg", "bg", background, lat, lon, datetime(2020, 1, 1))
    cfg = Config.from_env(str(tmp_path / "w"), [str(catalog)])
    res = inject(cfg, "bg", datetime(2020, 1, 1), datetime(2020, 1, 1, 5, 30), FEATURES, tmp_path / "inj")
    truth = json.loads(Path(res["truth"]).read_text())
    assert [e["kind"] for e in truth["events"]] == ["merge", "split"]
    spec = {"dataset": res["dataset"], "variable": "v", "operator": "greaterThan", "value": 5.0,
            "start": "2020-01-01T00:00", "end": "2020-01-01T05:30", "bbox": [-180, -40, 180, 40],
            "tracking": {"min_size": 3, "min_overlap": 0.1}}
    _, job = run_job(tmp_path / "w", spec, [catalog, Path(res["catalog"])], block_steps=5, tile=(40, 100))
    assert job["status"] == "complete", job["message"]
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "score", str(job["job_id"]), "--truth", res["truth"],
                        "--out", str(tmp_path / "scores"), "--workdir", str(tmp_path / "w"), "--catalog",
                        res["catalog"]], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    scores = json.loads((tmp_path / "scores" / f"{job['job_id']}-scores.json").read_text())
    by_step = {s["time"]: s for s in truth["steps"]}
    assert len(by_step) == 12
    assert scores["objects"]["false_alarms"] == 0  # the drizzle never reaches 5 mm/hr
    # Every truth feature is matched (only the merged feature's last step, inside the merged whole, is not).
    assert scores["objects"]["misses"] <= 1 and scores["objects"]["hits"] >= 12 * 3
    assert scores["events"]["merge"]["hits"] == 1 and scores["events"]["merge"]["recall"] == 1.0
    assert scores["events"]["split"]["hits"] == 1 and scores["events"]["split"]["recall"] == 1.0
    assert scores["tracking"]["id_switches"] == 0 and scores["pixels"]["csi"] > 0.9
    assert (tmp_path / "scores" / f"{job['job_id']}-scores.png").stat().st_size > 10_000

    # The tidy tables: one row per anomaly per step and one per track, with the lineage's partners.
    import pandas as pd

    out = {Path(o).name.split("-", 1)[1]: o for o in job["outputs"]}
    steps = pd.read_parquet(out["steps.parquet"])
    csv = pd.read_csv(out["steps.csv"])
    assert len(steps) == len(csv) == scores["objects"]["hits"] + scores["objects"]["false_alarms"]
    assert isinstance(steps["time"].dtype, pd.DatetimeTZDtype) and str(steps["time"].dt.tz) == "UTC"
    assert csv["time"][0] == "2020-01-01T00:00:00Z"
    merged = steps[steps["tag"] == "dissipation - merge"].iloc[0]
    into = steps[steps["tag"] == "continuation - merge"].iloc[0]
    assert list(merged["merged_into"]) == [into["anomaly_id"]] and list(into["merged_from"]) == [merged["anomaly_id"]]
    assert merged["time"] + pd.Timedelta(minutes=30) == into["time"]  # it merged at the next step
    child = steps[steps["tag"] == "initiation - split"].iloc[0]
    parent = steps[steps["tag"] == "continuation - split"].iloc[0]
    assert list(child["split_from"]) == [parent["anomaly_id"]] and list(parent["split_off"]) == [child["anomaly_id"]]
    tracks = pd.read_parquet(out["tracks.parquet"])
    assert len(tracks) == steps["anomaly_id"].nunique() and tracks["split_from"].notna().sum() == 1
    row = tracks[tracks["anomaly_id"] == child["anomaly_id"]].iloc[0]
    assert row["split_from"] == parent["anomaly_id"] and len(row["path"]) == row["steps"]
    assert {"time", "lat", "lon"} == set(row["path"][0])
    assert pd.read_csv(out["tracks.csv"])["merged_into"].notna().sum() == 1

    # The polygons as GeoParquet, read as a GIS user does: one row per anomaly per step, lon/lat
    import geopandas as gpd

    polys = gpd.read_parquet(out["polygons.parquet"])
    assert polys.crs is not None and polys.crs.equals("OGC:CRS84") and len(polys) == len(steps)
    assert sorted(zip(polys["time"], polys["anomaly_id"])) == sorted(zip(steps["time"], steps["anomaly_id"]))
    mover = polys[polys.intersects(gpd.points_from_xy([180.0], [0.0])[0].buffer(3))]
    assert (mover.geom_type == "MultiPolygon").any()  # split at the antimeridian, as RFC 7946 asks
    step = polys[polys["time"] == polys["time"].iloc[0]]
    features = json.loads(Path(out[f"{polys['time'].iloc[0]:%Y%m%d%H%M}.json"]).read_text())["features"]
    assert sorted(step["area_px"]) == sorted(f["properties"]["area_pixels"] for f in features)


def test_the_copy_keeps_the_imerg_layout_and_changes_only_the_features(tmp_path):
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 1, 0), res=1.0)
    cfg = Config.from_env(str(tmp_path / "w"), [str(catalog)])
    features = {"features": [{"name": "disk", "lat": -50, "lon": 179, "radius": 4, "amplitude": 40}]}
    res = inject(cfg, "GPM_3IMERGHH", datetime(2020, 1, 4), datetime(2020, 1, 4, 1, 0), features, tmp_path / "copy")
    src = sorted((tmp_path / "data").rglob("*.HDF5"))
    dst = sorted((tmp_path / "copy").rglob("*.HDF5"))
    assert [p.name for p in src] == [p.name for p in dst] and len(dst) == 3
    truth = json.loads(Path(res["truth"]).read_text())
    for a, b, step in zip(src, dst, truth["steps"]):
        with h5py.File(a) as x, h5py.File(b) as y:
            vx, vy = x["Grid/precipitation"], y["Grid/precipitation"]
            assert (vy.compression, vy.shuffle, vy.chunks, vy.dtype) == (vx.compression, vx.shuffle, vx.chunks,
                                                                          vx.dtype)
            assert dict(vy.attrs) .keys() == dict(vx.attrs).keys()
            assert np.array_equal(x["Grid/time"][()], y["Grid/time"][()])
            before, after = vx[0], vy[0]  # (lon, lat) in IMERG's order
            changed = np.argwhere(before != after)
            pixels = np.array(step["features"]["1"])
            n_lon = truth["grid"][1]
            assert sorted(zip(pixels // n_lon, pixels % n_lon)) == sorted(zip(changed[:, 1], changed[:, 0]))
            assert np.allclose(after[before != after], before[before != after] + 40, atol=1e-4)


def test_a_bad_feature_file_is_refused_naming_the_field():
    import pytest

    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.inject import load_features

    with pytest.raises(SpecError, match=r"features\[0\]"):
        load_features({"features": [{"lat": 0, "lon": 0, "radius": 1, "amplitude": 1, "colour": "red"}]}, 4)
    with pytest.raises(SpecError, match="no feature"):
        load_features({"features": [{"lat": 0, "lon": 0, "radius": 1, "amplitude": 1, "merges_into": "b"}]}, 4)
    seeded = load_features({"random": {"count": 3, "seed": 7}}, 10)
    assert len(seeded) == 3 and seeded == load_features({"random": {"count": 3, "seed": 7}}, 10)
    assert all(0 <= f.birth < f.death <= 10 for f in seeded)
