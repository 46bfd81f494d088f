"""The chunk store: small per-chunk tables, and the pixel arrays the array stages hand over.

``DirChunkStore`` (embedded default) keeps tables as compressed files and pixels in a Zarr v3
hierarchy ``store.zarr`` (``labels``, ``values`` and the CF ``anomaly_id`` dataset). Zarr chunks
are ``(1, tile_h, tile_w)`` so no two tasks ever write the same Zarr chunk. Every table write
goes to a temporary name and is renamed, so a killed task leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import zarr

from tos2ca_batch.stores import codec

PIXEL_ARRAYS = {"scratch/labels": ("int32", 0), "scratch/values": ("float32", float("nan"))}


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class DirChunkStore:
    """Chunk store in a local directory (one per job)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._arrays: dict[str, zarr.Array] = {}

    # -- tables ---------------------------------------------------------------------------
    def _table_path(self, stage: str, chunk: int, name: str) -> Path:
        return self.root / "tables" / stage / f"{chunk:06d}" / f"{name}.bin"

    def put_table(self, stage: str, chunk: int, name: str, arrays: dict[str, np.ndarray]) -> None:
        atomic_write(self._table_path(stage, chunk, name), codec.encode(arrays))

    def get_table(self, stage: str, chunk: int, name: str) -> dict[str, np.ndarray]:
        return codec.decode(self._table_path(stage, chunk, name).read_bytes())

    def put_json(self, name: str, obj) -> None:
        atomic_write(self.root / f"{name}.json", json.dumps(obj, sort_keys=True).encode())

    def get_json(self, name: str):
        return json.loads((self.root / f"{name}.json").read_text())

    # -- pixels ---------------------------------------------------------------------------
    @property
    def zarr_path(self) -> Path:
        return self.root / "store.zarr"

    def create_arrays(self, shape: tuple[int, int, int], tile: tuple[int, int], coords: dict) -> None:
        """Create the pixel arrays and the CF anomaly-id dataset (called once, by plan)."""
        from tos2ca_batch.outputs.cf import create_cf_group

        self._arrays.clear()
        if self.zarr_path.exists():
            shutil.rmtree(self.zarr_path)
        group = zarr.open_group(str(self.zarr_path), mode="w")
        chunks = (1, tile[0], tile[1])
        for name, (dtype, fill) in PIXEL_ARRAYS.items():
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                               dimension_names=("time", "lat", "lon"))
        create_cf_group(group, shape, chunks, coords)
        with warnings.catch_warnings():  # consolidated metadata lets xarray open the store as is
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(str(self.zarr_path))

    def _array(self, name: str):
        if name not in self._arrays:
            self._arrays[name] = zarr.open_array(str(self.zarr_path), path=name, mode="r+")
        return self._arrays[name]

    def write_pixels(self, name: str, index: tuple[slice, slice, slice], data: np.ndarray) -> None:
        self._array(name)[index] = data

    def read_pixels(self, name: str, index: tuple[slice, slice, slice]) -> np.ndarray:
        return self._array(name)[index]

    def write_ids(self, index: tuple[slice, slice, slice], data: np.ndarray) -> None:
        self._array("anomaly_id")[index] = data

    def read_ids(self, index) -> np.ndarray:
        return self._array("anomaly_id")[index]
