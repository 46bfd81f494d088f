"""Standing jobs: a job synced with newly arrived data equals a fresh job over the longer range,
whatever the arrival pattern and chunking; refusals; schedules run once per due time; a killed
sync leaves the previous version readable and the next ``sync --due`` finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from helpers import assert_same_outputs, local_outputs, run_job, write_cube
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from tos2ca_batch.backends.local import LocalBackend
from tos2ca_batch.config import Config
from tos2ca_batch.runner import result
from tos2ca_batch.sync import set_schedule, sync_job

START = datetime(2020, 1, 1)
NO_PLOTS = ["masks", "toc", "hierarchy", "geojson", "tracks", "ids", "tables"]


def field(nt: int, ny: int, nx: int, seed: int) -> np.ndarray:
    """Smooth random values: blobs that live, move, merge and split over a few steps."""
    rng = np.random.default_rng(seed)
    return (ndimage.gaussian_filter(rng.random((nt, ny, nx)), (0.8, 1.5, 1.5), mode="wrap") * 10).astype(np.float32)


def cube(folder: Path, values: np.ndarray) -> Path:
    ny, nx = values.shape[1:]
    lat = np.linspace(-45, 45, ny)
    lon = -180 + (np.arange(nx) + 0.5) * 360 / nx  # the whole circle: anomalies cross the wrap
    return write_cube(folder, "cube", values, lat, lon, START)


def stamp(k: int) -> str:
    return f"{START + timedelta(minutes=30 * k):%Y-%m-%dT%H:%M}"


def spec_for(nt: int, threshold: float, tracking: dict | None = None) -> dict:
    return {"dataset": "cube", "variable": "v", "operator": "greaterThan", "value": threshold, "start": stamp(0),
            "end": stamp(nt - 1), "bbox": [-180, -50, 180, 50], "tracking": {"min_size": 2, **(tracking or {})}}


def synced(cfg: Config, job_id: int, untils: list[int], workers: int = 1) -> list[dict]:
    backend = LocalBackend(workers)
    try:
        return [sync_job(cfg, job_id, backend, datetime.fromisoformat(stamp(u))) for u in untils]
    finally:
        backend.close()


@st.composite
def arrivals(draw):
    nt = draw(st.integers(3, 9))
    first = draw(st.integers(1, nt - 1))
    batches, left = [], nt - first
    while left:
        b = draw(st.integers(1, min(3, left)))
        batches.append(b)
        left -= b
    ny, nx = draw(st.integers(4, 10)), draw(st.integers(6, 14))
    return {
        "nt": nt, "first": first, "batches": batches, "ny": ny, "nx": nx, "seed": draw(st.integers(0, 2**31)),
        "threshold": draw(st.sampled_from([5.0, 5.1, 5.2])),
        "one_shot": (draw(st.integers(1, nt)), (draw(st.integers(1, ny)), draw(st.integers(1, nx)))),
        "chunking": (draw(st.integers(1, nt)), (draw(st.integers(1, ny)), draw(st.integers(1, nx)))),
        "tracking": {"overlap_fraction": draw(st.sampled_from(["exact", "tos2ca"])),
                     "connectivity": draw(st.sampled_from([1, 2])),
                     "min_overlap": draw(st.sampled_from([0.1, 0.5]))},
        "reduce_rows": draw(st.sampled_from([None, 1])),  # 1: the reduce links a map block at a time
    }


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals())
def test_a_job_synced_batch_by_batch_equals_one_job_over_the_whole_range(tmp_path_factory, case):
    tmp = tmp_path_factory.mktemp("sync")
    catalog = cube(tmp / "data", field(case["nt"], case["ny"], case["nx"], case["seed"]))
    spec = spec_for(case["nt"], case["threshold"], case["tracking"])
    block, tile = case["one_shot"]
    _, one = run_job(tmp / "one", spec, catalog, block_steps=block, tile=tile, products=NO_PLOTS)
    assert one["status"] == "complete", one["message"]

    block, tile = case["chunking"]
    cfg, first = run_job(tmp / "grown", dict(spec, end=stamp(case["first"] - 1)), catalog,
                         block_steps=min(block, case["first"]), tile=tile, products=NO_PLOTS,
                         reduce_rows=case["reduce_rows"])
    assert first["status"] == "complete", first["message"]
    untils = [int(u) - 1 for u in np.cumsum([case["first"], *case["batches"]])[1:]]
    outcomes = synced(cfg, first["job_id"], untils)
    assert [o["sync"] for o in outcomes] == ["synced"] * len(untils), outcomes
    assert [o["version"] for o in outcomes] == list(range(2, len(untils) + 2))
    assert_same_outputs(local_outputs(one, tmp), local_outputs(result(cfg, first["job_id"]), tmp))


@pytest.fixture(scope="module")
def standing(tmp_path_factory):
    """Twelve steps of data; a job over the first seven, and the one-shot job over all twelve."""
    base = tmp_path_factory.mktemp("standing")
    values = field(12, 12, 24, seed=5)
    catalog = cube(base / "data", values)
    spec = spec_for(12, 5.1)
    _, one = run_job(base / "one", spec, catalog, block_steps=4, tile=(5, 9))
    assert one["status"] == "complete"
    return base, values, catalog, spec, one


def test_sync_reads_only_new_files_keeps_the_id_and_mails_once(standing, tmp_path, smtp_server, monkeypatch):
    base, values, _, spec, one = standing
    url, received = smtp_server
    monkeypatch.setenv("TOS2CA_SMTP_URL", url)
    data = tmp_path / "data"
    catalog = cube(data, values[:7])  # the job's files only: the rest "arrive" later
    entry = json.loads(catalog.read_text())
    entry["cube"]["endDate"] = stamp(40)  # an open-ended catalog: steps whose file is there count
    catalog.write_text(json.dumps(entry))
    cfg, first = run_job(tmp_path / "w", dict(spec, end=stamp(6), email="sci@example.org"), catalog,
                         block_steps=3, tile=(12, 24))
    assert first["status"] == "complete"
    job = first["job_id"]
    for k in range(7):  # the old steps' files are gone: a sync that read one would fail
        (data / f"cube_{START + timedelta(minutes=30 * k):%Y%m%d%H%M}.nc").rename(tmp_path / f"old{k}.nc")
    later = tmp_path / "later"
    cube(later, values)
    for k in range(7, 12):
        name = f"cube_{START + timedelta(minutes=30 * k):%Y%m%d%H%M}.nc"
        (later / name).rename(data / name)
    before = len(received)
    [res] = synced(cfg, job, [40])
    assert res["sync"] == "synced" and res["new_steps"] == 5 and res["through"] == "202001010530", res
    assert cfg.db().get_job(job)["version"] == 2 and cfg.db().get_job(job)["status"] == "complete"
    got = result(cfg, job)
    assert got["job_id"] == job
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(got, tmp_path))
    with netCDF4.Dataset(next(o for o in got["outputs"] if o.endswith("Mask-Output.nc4"))) as ds:
        assert int(ds.version) == 2 and ds.end_date == "202001010530"
    mails = received[before:]
    assert res["added"] > 0 and len(mails) == 1, mails  # one mail per sync, not per step
    assert f"TOS2CA job {job} synced" in mails[0]["data"] and mails[0]["to"] == ["sci@example.org"]

    from tos2ca_batch.summary import job_summary

    text = job_summary(cfg, job)
    assert "(version 2, synced)" in text and "sync: no schedule (on demand); last synced" in text, text
    [again] = synced(cfg, job, [40])  # nothing new: a no-op, reported
    assert again["sync"] == "noop" and "no new steps" in again["message"]
    assert cfg.db().get_job(job)["version"] == 2


def test_refusals_name_what_is_wrong(standing, tmp_path):
    base, values, catalog, spec, _ = standing
    cfg, event = run_job(tmp_path / "e", {**spec, "operator": "anomalyEvent", "value": 1.0, "end": stamp(5)},
                         catalog, products=["toc"])
    assert event["status"] == "complete"
    [res] = synced(cfg, event["job_id"], [11])
    assert res["sync"] == "refused" and "baseline" in res["message"]

    cfg, failed = run_job(tmp_path / "f", dict(spec, value=1e9, tracking={"min_size": 10**9}), catalog)
    assert failed["status"] == "failed"
    [res] = synced(cfg, failed["job_id"], [11])
    assert res["sync"] == "refused" and "only a complete job" in res["message"]

    other = tmp_path / "other"  # step 7 onwards on another grid
    catalog2 = cube(other, values[:7])
    shifted = tmp_path / "shifted"
    cube(shifted, np.zeros((12, 12, 25), np.float32))
    for k in range(7, 12):
        name = f"cube_{START + timedelta(minutes=30 * k):%Y%m%d%H%M}.nc"
        (shifted / name).rename(other / name)
    entry = json.loads(catalog2.read_text())
    entry["cube"]["endDate"] = stamp(11)
    catalog2.write_text(json.dumps(entry))
    cfg, job = run_job(tmp_path / "g", dict(spec, end=stamp(6)), catalog2, products=["toc"])
    [res] = synced(cfg, job["job_id"], [11])
    assert res["sync"] == "failed" and "another grid" in res["message"], res
    assert cfg.db().get_job(job["job_id"])["status"] == "complete"  # the job itself stands


def cli(*args, work: Path, catalog: Path, **kw):
    env = dict(os.environ, TOS2CA_CATALOG=str(catalog))
    return subprocess.Popen([sys.executable, "-m", "tos2ca_batch", *args, "--workdir", str(work)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_concurrent_sync_due_callers_sync_each_of_three_jobs_once(standing, tmp_path):
    _, _, catalog, spec, _ = standing
    work = tmp_path / "w"
    jobs = []
    for k in range(3):
        cfg, res = run_job(work, dict(spec, end=stamp(4 + k)), catalog, products=["toc", "tracks"])
        assert res["status"] == "complete"
        jobs.append(res["job_id"])
        set_schedule(cfg, res["job_id"], "hourly", None)
    callers = [cli("sync", "--due", "--workers", "1", work=work, catalog=catalog) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in callers]
    assert [p.returncode for p in callers] == [0, 0], [o[1][-2000:] for o in outs]
    done = [r for out, _ in outs for r in json.loads(out.strip().splitlines()[-1])["syncs"] if r["sync"] == "synced"]
    assert sorted(r["job_id"] for r in done) == jobs  # each job synced once, by one of the callers
    db = Config.from_env(str(work)).db()
    for j in jobs:
        assert db.get_job(j)["version"] == 2
        row = db.get_sync(j)
        assert row["status"] == "synced" and row["nextDue"] > time.time() + 3000 and row["worker"] is None
    assert len([r for r in db.list_jobs() if r["stage"] == "sync"]) == 3


def test_a_killed_sync_leaves_the_previous_version_and_the_next_due_sync_finishes_it(standing, tmp_path):
    _, _, catalog, spec, one = standing
    work = tmp_path / "w"
    cfg, first = run_job(work, dict(spec, end=stamp(6)), catalog, block_steps=2)
    job = first["job_id"]
    v1 = {Path(o).name: Path(o).read_bytes() for o in first["outputs"]}
    set_schedule(cfg, job, "30min", None)
    proc = cli("sync", str(job), "--workers", "1", work=work, catalog=catalog, start_new_session=True)
    db = Config.from_env(str(work)).db()

    def sync_running() -> bool:
        child = (db.get_sync(job) or {}).get("syncJob")
        return bool(child) and db.chunk_counts(child).get("relabel", {}).get("complete", 0) > 0

    t0 = time.time()
    while not sync_running():
        assert proc.poll() is None and time.time() - t0 < 120, "the sync ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    row = db.get_job(job)
    assert row["status"] == "complete" and (row["version"] or 1) == 1
    for name, data in v1.items():  # the previous version, intact and readable
        assert (Path(first["outputs"][0]).parent / name).read_bytes() == data, name
    from tos2ca_batch.api import open_job

    assert open_job(job, workdir=work).steps["time"].max() == datetime.fromisoformat(stamp(6))

    p = cli("sync", "--due", "--workers", "1", work=work, catalog=catalog)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    [res] = json.loads(out.strip().splitlines()[-1])["syncs"]
    assert res["sync"] == "synced" and res["version"] == 2, res
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(result(cfg, job), tmp_path))


def test_replay_streams_the_range_in_batches_and_finds_it_equal_to_the_one_shot_job(standing, tmp_path):
    _, _, catalog, spec, _ = standing
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    p = cli("replay", str(path), "--batch-steps", "5", "--workers", "2", work=tmp_path / "w", catalog=catalog)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["same"] and res["differences"] == []
    assert [b["steps"] for b in res["batches"]] == [5, 5, 2]  # 12 steps arriving 5 at a time
    assert "batch 2: 5 steps through 2020-01-01T04:30" in err and "outputs identical" in err


def test_the_comparison_replay_trusts_sees_a_difference(standing, tmp_path):
    from tos2ca_batch.outputs.compare import differences

    _, _, catalog, spec, one = standing
    _, other = run_job(tmp_path / "o", dict(spec, value=5.2), catalog, block_steps=4, tile=(5, 9))
    found = differences(local_outputs(one, tmp_path), local_outputs(other, tmp_path), 1, 1)
    assert "J-ForTraCC-Mask-Output.nc4/masks/202001010000/mask_indices" in found and "J-anomalies.csv" in found


def test_an_anomaly_event_job_with_a_fixed_baseline_and_a_job_written_per_period_sync_exactly(tmp_path, monkeypatch):
    values = field(12, 8, 16, seed=9)
    ny, nx = values.shape[1:]
    lat, lon = np.linspace(-45, 45, ny), -180 + (np.arange(nx) + 0.5) * 360 / nx
    catalog = write_cube(tmp_path / "data", "cube", values, lat, lon, START, step_minutes=360)  # 3 days

    def at(k: int) -> str:
        return f"{START + timedelta(hours=6 * k):%Y-%m-%dT%H:%M}"

    base = {"dataset": "cube", "variable": "v", "operator": "anomalyEvent", "value": 1.0, "start": at(0),
            "end": at(11), "bbox": [-180, -50, 180, 50], "tracking": {"min_size": 2},
            "baseline": {"start": at(0), "end": at(5)}}
    monkeypatch.setenv("TOS2CA_PERIOD_STEPS", "3")
    monkeypatch.setenv("TOS2CA_PERIOD", "day")
    _, one = run_job(tmp_path / "one", base, catalog, block_steps=5, products=NO_PLOTS)
    assert one["status"] == "complete" and any("Products.json" in o for o in one["outputs"])
    cfg, first = run_job(tmp_path / "grown", dict(base, end=at(5)), catalog, block_steps=2, products=NO_PLOTS)
    assert first["status"] == "complete"
    backend = LocalBackend(1)
    try:
        for until in (at(6), at(11)):  # one step (a new day begins), then the rest
            res = sync_job(cfg, first["job_id"], backend, datetime.fromisoformat(until))
            assert res["sync"] == "synced", res
    finally:
        backend.close()
    got = result(cfg, first["job_id"])
    assert sorted(Path(o).name for o in got["outputs"] if "Mask-Output-2020" in o) == [
        f"1-ForTraCC-Mask-Output-2020010{d}.nc4" for d in (1, 2, 3)]
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(got, tmp_path))


def test_the_animation_of_a_synced_job_is_the_one_shot_jobs_frame_for_frame(tmp_path):
    from PIL import Image, ImageSequence

    values = field(10, 12, 24, seed=9)
    catalog = cube(tmp_path / "data", values)
    spec = spec_for(10, 5.1)
    _, one = run_job(tmp_path / "one", spec, catalog, block_steps=4, products=["toc", "animation"])
    cfg, first = run_job(tmp_path / "grown", dict(spec, end=stamp(5)), catalog, block_steps=3,
                         products=["toc", "animation"])
    assert one["status"] == first["status"] == "complete", (one["message"], first["message"])
    [res] = synced(cfg, first["job_id"], [9])
    assert res["sync"] == "synced", res

    def frames(res):
        gif = next(o for o in res["outputs"] if o.endswith("animation.gif"))
        with Image.open(gif) as g:
            assert g.info["loop"] == 0 and g.info["duration"] == 400
            return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(g)]

    a, b = frames(one), frames(result(cfg, first["job_id"]))
    assert len(a) == len(b) == 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[-1])  # the frames move


def test_a_polygons_file_without_anomalies_is_typed_so_a_sync_appends_to_it(tmp_path):
    """Found by the test above: steps without anomalies made ``J-polygons.parquet`` columns of
    pyarrow's null type, and a sync adding such steps to a file with rows failed to cast."""
    from types import SimpleNamespace

    import pyarrow.parquet as pq
    from tos2ca_batch.kernels.fortracc import TAGS

    from tos2ca_batch.stages.products import polygon_table, write_polygons

    plan = SimpleNamespace(timestamps=["202001010000", "202001010030"])
    props = {"anomaly": 1, "tag": TAGS[0], "area_pixels": 3, "area_km2": 2.5, "centroid_lat": 0.5,
             "centroid_lon": 0.5, "min": 5.5, "max": 9.0, "mean": 7.0, "std": 1.0}
    feature = {"type": "Feature", "properties": props,
               "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}
    empty, rows = tmp_path / "empty.parquet", tmp_path / "rows.parquet"
    write_polygons(str(empty), plan, [(0, polygon_table([]))])
    write_polygons(str(rows), plan, [(0, polygon_table([feature]))])
    assert pq.read_schema(empty).remove_metadata() == pq.read_schema(rows).remove_metadata()
    for earlier, new, n in ((rows, [], 1), (empty, [feature], 1), (rows, [feature], 2)):
        grown = tmp_path / "grown.parquet"
        write_polygons(str(grown), plan, [(1, polygon_table(new))], earlier=str(earlier))
        assert pq.read_table(grown).num_rows == n
