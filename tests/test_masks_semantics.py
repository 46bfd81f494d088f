"""Operators, missing values, polygons and anomalyEvent statistics through the real pipeline."""

from datetime import datetime

import netCDF4
import numpy as np
import pytest
import xarray as xr
from helpers import run_job, write_cube
from tos2ca_batch.kernels.binarize import binarize

START = datetime(2020, 1, 1)


def spec(**kw):
    base = {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
            "start": "2020-01-01T00:00", "end": "2020-01-01T03:30", "bbox": [0.0, 0.0, 15.0, 11.0],
            "tracking": {"min_size": 1, "connectivity": 2}, "products": ["masks"]}
    base.update(kw)
    return base


def ids_of(cfg, res):
    assert res["status"] == "complete", res["message"]
    return xr.open_zarr(cfg.store(res["job_id"]).zarr_store())["anomaly_id"].values


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 20, (8, 12, 16)).astype(np.float32).round(0)
    values[:, 3, 4] = np.nan
    values[:, 5, 6] = -999.0  # the file's _FillValue
    base = tmp_path_factory.mktemp("ops")
    cat = write_cube(base / "data", "CUBE", values, np.arange(12.0), np.arange(16.0), START)
    return base, cat, values


@pytest.mark.parametrize("op", ["lessThan", "lessThanOrEqualTo", "greaterThan", "greaterThanOrEqualTo", "equalTo"])
def test_operators_and_missing_values(cube, tmp_path, op):
    _, cat, values = cube
    cfg, res = run_job(tmp_path / "w", spec(operator=op, value=10.0), cat)
    ids = ids_of(cfg, res)
    clean = np.where(values == -999.0, np.nan, values)
    expected = binarize(clean, op, 10.0)
    assert np.array_equal(ids > 0, expected)
    assert (ids[:, 3, 4] == 0).all() and (ids[:, 5, 6] == 0).all()


def test_polygon_pixels_outside_never_in_mask(cube, tmp_path):
    _, cat, values = cube
    poly = "POLYGON ((2 2, 10 2, 10 9, 2 9, 2 2))"
    cfg, res = run_job(tmp_path / "w", spec(polygon=poly, bbox=None), cat)
    ids = ids_of(cfg, res)
    lat, lon = np.arange(12.0), np.arange(16.0)
    assert ids.shape[1:] == (8, 9)  # the polygon's bounding box
    sub = np.where(values == -999.0, np.nan, values)[:, 2:10, 2:11]
    assert np.array_equal(ids > 0, binarize(sub, "greaterThan", 10.0))
    poly2 = "POLYGON ((2 2, 10 2, 2 9, 2 2))"  # a triangle
    cfg, res = run_job(tmp_path / "w2", spec(polygon=poly2, bbox=None), cat)
    ids = ids_of(cfg, res)
    import shapely

    inside = shapely.intersects_xy(shapely.from_wkt(poly2), *np.meshgrid(lon[2:11], lat[2:10]))
    assert not (ids[:, ~inside] > 0).any()
    assert (ids[:, inside] > 0).any()


def test_anomaly_event_identical_for_every_chunking(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.normal(280, 3, (30, 10, 14)).astype(np.float32)
    values[12:16, 2:6, 3:9] += 12
    cat = write_cube(tmp_path / "data", "CUBE", values, np.arange(10.0), np.arange(14.0), START)
    s = spec(operator="anomalyEvent", value=2.0, end="2020-01-01T14:30", bbox=[0.0, 0.0, 13.0, 9.0])
    cfg1, r1 = run_job(tmp_path / "w", s, cat)
    cfg2, r2 = run_job(tmp_path / "w", s, cat, block_steps=7, tile=(3, 5), workers=2)
    a, b = ids_of(cfg1, r1), ids_of(cfg2, r2)
    assert a.tobytes() == b.tobytes()
    mean, std = values.astype(np.float64).mean(0), values.astype(np.float64).std(0)
    expected = (values - mean) >= 2.0 * std
    assert np.array_equal(a > 0, expected)
    assert (a[12:16, 2:6, 3:9] > 0).mean() > 0.5
    # A baseline period: statistics over the quiet steps only flag more of the event.
    cfg3, r3 = run_job(tmp_path / "w", dict(s, baseline={"start": "2020-01-01T00:00", "end": "2020-01-01T05:00"}), cat)
    quiet = values[:11].astype(np.float64)
    exp3 = (values - quiet.mean(0)) >= 2.0 * quiet.std(0)
    assert np.array_equal(ids_of(cfg3, r3) > 0, exp3)


@pytest.mark.parametrize("op", ["lessThan", "lessThanOrEqualTo", "greaterThan", "greaterThanOrEqualTo", "equalTo",
                                "anomalyEvent"])
@pytest.mark.parametrize("value", [10.0, float("nan"), -1.0])
def test_nan_is_never_in_a_mask(op, value):
    field = np.array([[np.nan, 10.0, 20.0], [0.0, np.nan, -5.0]], np.float32)
    mean = np.array([[1.0, 0.0, np.nan], [0.0, 2.0, 0.0]])
    std = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    mask = binarize(field, op, value, mean, std)
    assert mask.dtype == bool and not mask[np.isnan(field)].any()


def test_publish_keeps_one_masks_table_a_block_and_finalize_gets_every_step_back(tmp_path):
    """Publish stores a block's masks-file chunks as one chunk-store table (not one a step);
    ``StepChunks`` gives each step's chunks back byte for byte, block by block, and still reads
    a store whose publish wrote a table a step (a job resumed across the upgrade)."""
    from types import SimpleNamespace

    from tos2ca_batch.algorithm import Layout
    from tos2ca_batch.outputs.masks import MASKS_CHUNKS, block_chunks, step_chunks
    from tos2ca_batch.stages.common import StepChunks
    from tos2ca_batch.stores.blobs import DirBlobs
    from tos2ca_batch.stores.chunkstore import ChunkStore

    rng = np.random.default_rng(5)
    steps = []
    for n in (0, 7, 1, 0, 40):  # empty steps too
        rows, cols = rng.integers(0, 50, n).astype(np.int32), rng.integers(0, 80, n).astype(np.int32)
        steps.append(step_chunks(rows, cols, rng.integers(1, 9, n).astype(np.int32), rng.random(n, np.float32)))
    plan = SimpleNamespace(stage_layout=lambda stage: Layout(5, 50, 80, 2, 50, 80))
    store = ChunkStore(DirBlobs(tmp_path / "blocks"), str(tmp_path / "a.zarr"), "uid")
    for block, (t0, t1) in enumerate([(0, 2), (2, 4), (4, 5)]):
        store.put_table("publish", block, "masks", block_chunks(steps[t0:t1]), compressed=MASKS_CHUNKS)
    legacy = ChunkStore(DirBlobs(tmp_path / "steps"), str(tmp_path / "b.zarr"), "uid")
    for s, chunks in enumerate(steps):
        legacy.put_table("publish", s, "masks", chunks, compressed=MASKS_CHUNKS)
    assert len(store.blobs.keys()) == 3 and len(legacy.blobs.keys()) == 5
    for source in (store, legacy):
        got = StepChunks(source, plan)
        for s in (0, 1, 2, 3, 4, 4, 1):  # in order, repeated, and back to an earlier block
            assert set(got(s)) == set(steps[s])
            for name in steps[s]:
                assert got(s)[name].tobytes() == steps[s][name].tobytes(), (s, name)


def test_publish_lays_the_masks_file_out_and_finalize_only_fills_it(cube, tmp_path):
    """Publish's first task lays the masks file out (groups, dimensions, attributes) from the
    reduce's pixel counts, components under min_size left out; finalize puts the steps' chunks
    into it, and the file is the one written whole. Counts that are not the steps' (a layout
    that does not fit) are never used: the file is then written whole."""
    from tos2ca_batch.config import Config
    from tos2ca_batch.outputs.masks import put_step_chunks, write_layout, write_masks
    from tos2ca_batch.runner import apply_overrides, plan_job, result, submit
    from tos2ca_batch.stages.common import StepChunks, masks_attributes
    from tos2ca_batch.stages.products import MASKS_LAYOUT, NetCDFFiles
    from tos2ca_batch.tasks import run_task

    _, cat, values = cube
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    job, error = submit(cfg, apply_overrides(spec(tracking={"min_size": 4, "connectivity": 1}), block_steps=3),
                        status="running")
    assert error is None
    plan = plan_job(cfg, job)
    for stage in ("map", "reduce", "publish", "relabel"):
        for c in range(plan.stage_chunks(stage)):
            assert run_task(cfg, stage, job, c) == "done", stage
    store = cfg.store(job)
    layout = store.get_table(*MASKS_LAYOUT)
    with np.errstate(invalid="ignore"):
        assert 0 < layout["num_pixels"].sum() < np.count_nonzero(values > 10.0)  # min_size dropped some
    steps = [StepChunks(store, plan)(s) for s in range(len(plan.timestamps))]
    assert layout["num_pixels"].tolist() == [int(step["num_pixels"][0]) for step in steps]
    n = int(store.get_json("anomalies")["n_anomalies"])
    layout["file"].tofile(tmp_path / "layout.nc4")
    with netCDF4.Dataset(tmp_path / "layout.nc4") as ds:
        made = ds.production_time
    grid = (plan.grid.lat, plan.grid.lon, plan.timestamps, n, layout["num_pixels"].tolist())
    write_layout(str(tmp_path / "again.nc4"), dict(masks_attributes(plan, job), production_time=made), *grid)
    assert (tmp_path / "again.nc4").read_bytes() == (tmp_path / "layout.nc4").read_bytes()
    # A layout marked by its time: finalize's file is it, filled.
    marked = tmp_path / "marked.nc4"
    write_layout(str(marked), dict(masks_attributes(plan, job), production_time="2000-01-01T00:00:00Z"), *grid)
    marked_layout = {"file": np.fromfile(marked, np.uint8), "num_pixels": layout["num_pixels"]}
    store.put_table(*MASKS_LAYOUT, marked_layout)
    put_step_chunks(str(marked), plan.timestamps, steps)

    assert run_task(cfg, "finalize", job, 0) == "done"
    res = result(cfg, job)
    assert res["status"] == "complete", res["message"]
    (masks,) = [p for p in res["outputs"] if p.endswith("-ForTraCC-Mask-Output.nc4")]
    assert open(masks, "rb").read() == marked.read_bytes()

    attrs = masks_attributes(plan, job)
    args = (attrs, plan.grid.lat, plan.grid.lon, plan.timestamps, n, lambda s: steps[s])
    write_masks(str(tmp_path / "whole.nc4"), *args)
    misfit = dict(marked_layout, num_pixels=layout["num_pixels"] + np.eye(1, layout["num_pixels"].size, 1, np.int64)[0])
    NetCDFFiles(masks_layout=misfit).masks(str(tmp_path / "misfit.nc4"), "m", *args)
    assert (tmp_path / "misfit.nc4").read_bytes() == (tmp_path / "whole.nc4").read_bytes()


def test_the_first_map_task_makes_the_ids_dataset_and_finalize_copies_its_attributes(cube, tmp_path):
    """The plan writes no ids dataset; map chunk 0 makes it, global attributes included, beside
    the other map tasks. Finalize's netCDF copy carries those same attributes. A dataset made
    without them (an earlier version planned the job) gets new ones from finalize, set on both."""
    import json
    import os
    import warnings

    import zarr

    from tos2ca_batch.config import Config
    from tos2ca_batch.outputs.cf import GROUP_ATTRS
    from tos2ca_batch.runner import apply_overrides, plan_job, result, submit
    from tos2ca_batch.tasks import run_task

    _, cat, _ = cube
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    cfg.workdir.mkdir(parents=True, exist_ok=True)

    def ids_attrs(job):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(zarr.open_group(cfg.store(job).zarr_store(), mode="r").attrs)

    def nc_attrs(job):
        res = result(cfg, job)
        assert res["status"] == "complete", res["message"]
        (path,) = [p for p in res["outputs"] if p.endswith("-anomaly-ids.nc4")]
        with netCDF4.Dataset(path) as ds:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in ds.__dict__.items()}

    for earlier_version in (False, True):
        job, error = submit(cfg, apply_overrides(spec(products=["masks", "ids"]), block_steps=3), status="running")
        assert error is None
        plan = plan_job(cfg, job)
        store = cfg.store(job)
        zarr_json = f"{store.zarr_store()}/zarr.json"
        assert plan.stage_chunks("map") > 1
        for c in range(1, plan.stage_chunks("map")):
            assert run_task(cfg, "map", job, c) == "done"
        assert not os.path.exists(zarr_json)  # neither the plan nor the other map tasks made it
        assert run_task(cfg, "map", job, 0) == "done"
        made = ids_attrs(job)
        assert made["job_id"] == job and made["Conventions"] == "CF-1.8" and "date_created" in made
        assert list(made) == list(json.loads(open(zarr_json).read())["attributes"])
        if earlier_version:  # the dataset as a plan of the earlier version made it: no attributes document
            store.blobs.delete("job:0:ids_attributes")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                group = zarr.open_group(store.zarr_store(), mode="r+")
                group.attrs.put(dict(GROUP_ATTRS))
                zarr.consolidate_metadata(store.zarr_store())
            assert "job_id" not in ids_attrs(job)
        for stage in ("reduce", "relabel", "publish", "finalize"):
            for c in range(plan.stage_chunks(stage)):
                assert run_task(cfg, stage, job, c) == "done", stage
        final = ids_attrs(job)
        assert final["job_id"] == job and "date_created" in final
        if not earlier_version:
            assert final == made
        copied = nc_attrs(job)
        assert copied == final and list(copied) == list(final)  # the same attributes, in the same order


def test_the_publish_task_of_the_last_step_keeps_what_a_sync_starts_from(cube, tmp_path):
    """The job's last step as a later sync needs it (``sync:0:last``) is stored by the publish
    task whose block ends the job, beside the other publish tasks, not by the serial finalize;
    finalize still stores it for a job an earlier version published without it."""
    from tos2ca_batch.config import Config
    from tos2ca_batch.runner import apply_overrides, plan_job, submit
    from tos2ca_batch.stages.common import last_step_records
    from tos2ca_batch.tasks import run_task

    _, cat, _ = cube
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    for earlier_version in (False, True):
        job, error = submit(cfg, apply_overrides(spec(products=["masks"]), block_steps=3), status="running")
        assert error is None
        plan = plan_job(cfg, job)
        store = cfg.store(job)
        for stage in ("map", "reduce", "relabel"):
            for c in range(plan.stage_chunks(stage)):
                assert run_task(cfg, stage, job, c) == "done", stage
        last = plan.stage_chunks("publish") - 1
        assert last > 0
        for c in range(last):
            assert run_task(cfg, "publish", job, c) == "done"
        assert not store.has_table("sync", 0, "last")  # the other blocks do not write it
        assert run_task(cfg, "publish", job, last) == "done"
        expected = last_step_records(store, plan)
        assert expected["index"].size > 0
        kept = store.get_table("sync", 0, "last")
        assert set(kept) == {"index", "value"}
        for name in kept:
            np.testing.assert_array_equal(kept[name], expected[name])
        if earlier_version:
            store.blobs.delete("sync:0:last")
        assert run_task(cfg, "finalize", job, 0) == "done"
        after = cfg.store(job).get_table("sync", 0, "last")  # kept after the release
        for name in after:
            np.testing.assert_array_equal(after[name], expected[name])
