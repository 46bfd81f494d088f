"""Writes the job's CF ids dataset as Zarr v3, byte for byte what zarr-python 3 writes, without it.

Why not zarr itself: a job imports zarr only to write this dataset, and the import (0.16 s),
array creation, consolidation and zarr's per-write event-loop hop were 0.3-0.4 s of a 1.7 s job.
The format written here is small and fixed: regular chunk grid, ``default`` chunk keys with
``/``, the ``bytes`` (little-endian) codec then ``zstd`` (level 0, no checksum), chunks equal to
the fill value not stored, metadata as ``json.dumps(..., indent=2)`` (zarr's default
``json_indent``) and the group's metadata consolidated inline, children sorted by name. The zstd
frames come from numcodecs, the library zarr's own ``ZstdCodec`` calls, so chunks are the same
bytes. ``tests/test_zarrwrite.py`` holds every file of a store written here equal to zarr's for
the same calls, and reads it back with zarr and xarray. Reading, resizing (a sync) and anything
else stays with zarr.

Every object is written whole and atomically (a local file by rename; an S3 object is atomic by
nature), the group's ``zarr.json`` last.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

ZSTD_LEVEL = 0  # zarr 3's ZstdCodec defaults
CODECS = [{"name": "bytes", "configuration": {"endian": "little"}},
          {"name": "zstd", "configuration": {"level": ZSTD_LEVEL, "checksum": False}}]
_DTYPES = {"int32": np.dtype("<i4"), "int64": np.dtype("<i8"), "float32": np.dtype("<f4"),
           "float64": np.dtype("<f8"), "uint8": np.dtype("u1"), "int8": np.dtype("i1")}
_zstd = None


def _encode(chunk: np.ndarray) -> bytes:
    global _zstd  # one codec object per process, made on first use (importing numcodecs costs 40 ms)
    if _zstd is None:
        from numcodecs.zstd import Zstd

        _zstd = Zstd(level=ZSTD_LEVEL, checksum=False)
    return bytes(_zstd.encode(np.ascontiguousarray(chunk)))


def guess_chunks(shape: tuple[int, ...], typesize: int) -> tuple[int, ...]:
    """The chunk shape zarr 3 picks for ``chunks="auto"`` (its ``_guess_chunks``, after h5py's):
    halve the axes in turn until a chunk is under a target size that grows with the array's."""
    increment, low, high = 256 * 1024, 128 * 1024, 64 * 1024 * 1024
    chunks = np.maximum(np.array(shape, dtype="=f8"), 1)
    target = increment * (2 ** np.log10(np.prod(chunks) * typesize / (1024.0 * 1024)))
    target = min(max(target, low), high)
    i = 0
    while True:
        nbytes = np.prod(chunks) * typesize
        if (nbytes < target or abs(nbytes - target) / target < 0.5) and nbytes < high:
            break
        if np.prod(chunks) == 1:
            break
        chunks[i % len(shape)] = math.ceil(chunks[i % len(shape)] / 2.0)
        i += 1
    return tuple(int(c) for c in chunks)


def array_metadata(shape, dtype: str, chunks, fill_value, attributes: dict, dimension_names) -> dict:
    """An array's ``zarr.json`` document, keys in zarr's order."""
    fill = float(fill_value) if np.dtype(dtype).kind == "f" else int(fill_value)
    return {
        "shape": list(shape), "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill, "codecs": CODECS, "attributes": dict(attributes),
        "dimension_names": list(dimension_names), "zarr_format": 3, "node_type": "array",
        "storage_transformers": [],
    }


def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=True).encode()


class _Local:
    def __init__(self, root: str):
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = os.path.join(self.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        try:
            os.unlink(os.path.join(self.root, key))
        except FileNotFoundError:
            pass


class _S3:
    def __init__(self, store):
        self.store = store

    def put(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store, key, data)

    def get(self, key: str) -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        import obstore

        obstore.delete(self.store, key)


class ZarrWriter:
    """Writes a Zarr v3 group at ``root``: a local directory, or an obstore store (S3)."""

    def __init__(self, root):
        self.io = _Local(root) if isinstance(root, str) else _S3(root)
        self._meta: dict[str, dict] = {}

    def metadata(self, path: str) -> dict | None:
        """An array's (or, for ``""``, the group's) metadata document; None if there is none."""
        if path not in self._meta:
            raw = self.io.get(f"{path}/zarr.json" if path else "zarr.json")
            if raw is None:
                return None
            self._meta[path] = json.loads(raw)
        return self._meta[path]

    def create_group(self, attributes: dict, arrays: dict[str, tuple[dict, np.ndarray | None]]) -> None:
        """A group with ``attributes`` and ``arrays`` (name -> (metadata, values or None for none
        stored yet)), consolidated; the group's document is written last."""
        for name, (meta, values) in arrays.items():
            if values is not None:
                self._write_chunks(name, meta, (0,) * values.ndim, values)
            self.io.put(f"{name}/zarr.json", _dumps(meta))
            self._meta[name] = meta
        self._put_group(attributes, {name: meta for name, (meta, _) in arrays.items()})

    def update_attributes(self, attrs: dict) -> None:
        """Merge ``attrs`` into the group's attributes and consolidate again (as ``group.attrs.update``
        then ``zarr.consolidate_metadata``: the children's documents are read from the store)."""
        group = self.metadata("")
        children = {name: json.loads(self.io.get(f"{name}/zarr.json"))
                    for name in group["consolidated_metadata"]["metadata"]}
        self._put_group({**group["attributes"], **attrs}, children)

    def _put_group(self, attributes: dict, children: dict[str, dict]) -> None:
        doc = {"attributes": attributes, "zarr_format": 3,
               "consolidated_metadata": {"kind": "inline", "must_understand": False,
                                         "metadata": {k: children[k] for k in sorted(children)}},
               "node_type": "group"}
        self.io.put("zarr.json", _dumps(doc))
        self._meta[""] = doc

    def write(self, path: str, start: tuple[int, ...], data: np.ndarray) -> bool:
        """Write ``data`` at ``start`` of array ``path``; False (nothing written) unless the region
        is whole chunks (a chunk at the array's end may be cut by it), which is all this writes."""
        meta = self.metadata(path)
        chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        shape = meta["shape"]
        for s, n, c, full in zip(start, data.shape, chunks, shape):
            if s % c or not ((s + n) % c == 0 or s + n == full) or s + n > full:
                return False
        self._write_chunks(path, meta, start, data)
        return True

    def _write_chunks(self, path: str, meta: dict, start: tuple[int, ...], data: np.ndarray) -> None:
        chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        dtype = _DTYPES[meta["data_type"]]
        fill = meta["fill_value"]
        data = np.asarray(data, dtype)
        counts = [math.ceil(n / c) for n, c in zip(data.shape, chunks)]
        for index in np.ndindex(*counts):
            part = data[tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))]
            key = "/".join([path, "c", *(str(s // c + i) for s, c, i in zip(start, chunks, index))])
            if (not part.any()) if fill == 0 else (part == fill).all():  # zarr stores none equal to the fill
                self.io.delete(key)
                continue
            if part.shape != tuple(chunks):  # an edge chunk is stored whole, padded with the fill
                whole = np.full(chunks, fill, dtype)
                whole[tuple(slice(0, n) for n in part.shape)] = part
                part = whole
            self.io.put(key, _encode(part))
