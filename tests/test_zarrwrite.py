"""The ids dataset written without zarr (``stores.zarrwrite``) is, file for file and byte for
byte, what zarr-python writes for the same calls, and zarr and xarray read it back."""

from __future__ import annotations

import itertools
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.core.chunk_grids import _guess_chunks

from tos2ca_batch.outputs.cf import create_cf_group
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.stores.zarrwrite import guess_chunks


def test_chunk_shapes_are_zarrs_guess():
    sizes = [1, 2, 7, 48, 720, 1441, 3600, 36000, 70_000, 175_000, 350_640, 2_000_000]
    for shape, typesize in itertools.product(
            [(n,) for n in sizes] + [(n, 2) for n in sizes] + [(3, 5, 7), (1, 1800, 3600)], [1, 4, 8]):
        assert guess_chunks(shape, typesize) == _guess_chunks(shape, typesize), (shape, typesize)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _coords(n_steps: int, height: int, width: int) -> dict:
    t0 = datetime(2020, 1, 1)
    return {"lat": np.linspace(-89.5, 89.5, height)[::-1], "lon": (np.arange(width) * 360.0 / width + 0.5) % 360 - 180,
            "times": [t0 + timedelta(minutes=30 * k) for k in range(n_steps)], "time_step": 30}


@pytest.mark.parametrize(("shape", "tile"), [((5, 7, 10), (3, 4)), ((3, 8, 8), (8, 8)), ((70_000, 4, 6), (4, 3))])
def test_store_is_byte_for_byte_zarrs(tmp_path, shape, tile):
    coords = _coords(*shape)
    rng = np.random.default_rng(sum(shape))
    steps = [0, 1, 2] if shape[0] < 100 else [0, 69_999]
    writes = []  # (step, region, data), tile by tile as relabel writes them, one tile twice
    for s in steps:
        for r0, c0 in itertools.product(range(0, shape[1], tile[0]), range(0, shape[2], tile[1])):
            r1, c1 = min(r0 + tile[0], shape[1]), min(c0 + tile[1], shape[2])
            ids = np.where(rng.random((r1 - r0, c1 - c0)) < 0.3, rng.integers(1, 50, (r1 - r0, c1 - c0)), 0)
            if (r0 + c0 + s) % 3 == 0:
                ids[:] = 0  # chunks equal to the fill value are not stored
            writes.append((s, (r0, r1, c0, c1), ids.astype(np.int32)))
    writes.append((steps[0], (0, min(tile[0], shape[1]), 0, min(tile[1], shape[2])), np.zeros(
        (min(tile[0], shape[1]), min(tile[1], shape[2])), np.int32)))  # a stored chunk rewritten as all 0
    attrs = {"title": "ForTraCC anomaly ids of job 3", "job_id": 3, "threshold": 10.0, "connectivity": 2,
             "history": "made here", "bbox": [-180.0, -90.0, 180.0, 90.0]}

    theirs = tmp_path / "zarr.zarr"
    group = zarr.open_group(str(theirs), mode="a")
    create_cf_group(group, shape, (1, *tile), coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(theirs))
        ids = zarr.open_array(str(theirs), path="anomaly_id", mode="r+")
        for s, (r0, r1, c0, c1), data in writes:
            ids[s, r0:r1, c0:c1] = data
        group = zarr.open_group(str(theirs), mode="r+")
        group.attrs.update(attrs)
        zarr.consolidate_metadata(str(theirs))

    ours = tmp_path / "ours.zarr"
    store = ChunkStore(None, str(ours), "uid")
    store.create_arrays(shape, tile, coords)
    for s, region, data in writes:
        store.write_ids(s, region, data)
    store.set_ids_attributes(attrs)

    assert _files(ours) == _files(theirs)
    made_with = tmp_path / "attributes-at-creation.zarr"  # as the first map task makes it
    store = ChunkStore(None, str(made_with), "uid")
    assert store.create_arrays(shape, tile, coords, attrs)
    for s, region, data in writes:
        store.write_ids(s, region, data)
    assert _files(made_with) == _files(theirs)
    ds = xr.open_zarr(str(ours))
    assert ds.attrs["job_id"] == 3 and ds["anomaly_id"].shape == shape
    want = zarr.open_array(str(theirs), path="anomaly_id", mode="r")
    for s in steps:
        assert np.array_equal(ds["anomaly_id"][s].values, want[s])
    assert np.array_equal(store.read_ids(steps[0]), want[steps[0]])


def test_create_again_keeps_what_is_stored(tmp_path):
    coords = _coords(4, 6, 8)
    store = ChunkStore(None, str(tmp_path / "s.zarr"), "uid")
    store.create_arrays((4, 6, 8), (6, 8), coords)
    store.write_ids(1, (0, 6, 0, 8), np.full((6, 8), 7, np.int32))
    again = ChunkStore(None, str(tmp_path / "s.zarr"), "uid")
    assert not again.create_arrays((4, 6, 8), (6, 8), coords, {"title": "new"})  # nothing is overwritten
    assert (again.read_ids(1) == 7).all()
    assert zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs["title"] == "ForTraCC anomaly ids"


def test_a_region_that_is_not_whole_chunks_is_written_by_zarr(tmp_path):
    store = ChunkStore(None, str(tmp_path / "s.zarr"), "uid")
    store.create_arrays((2, 6, 8), (3, 4), _coords(2, 6, 8))
    store.write_ids(0, (1, 5, 2, 7), np.full((4, 5), 3, np.int32))
    got = store.read_ids(0)
    assert (got[1:5, 2:7] == 3).all() and got.sum() == 3 * 20
