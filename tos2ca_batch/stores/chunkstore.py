"""The chunk store of one job: small per-chunk tables and the final ids.

Tables and JSON go to a blob store (directory, S3, or Redis for hand-off between array tasks)
under ``{namespace}:{chunk}:{name}`` (a namespace is whatever its caller says: the store knows
no stages); the map stage's anomaly pixels are such tables too (sparse records, no dense
scratch). The final anomaly ids always go to durable Zarr (directory or S3) as a CF dataset.
Zarr chunks are ``(1, tile_h, tile_w)``, so no two tasks write one Zarr chunk.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING

import numpy as np

from tos2ca_batch.stores import codec
from tos2ca_batch.stores.blobs import Blobs
from tos2ca_batch.stores.zarrwrite import ZarrWriter, array_metadata, guess_chunks

if TYPE_CHECKING:
    import zarr


def _zarr():
    """zarr, imported when the ids are first touched (0.2 s of imports a map task never needs)."""
    import zarr

    return zarr


def _s3_store(url: str):
    """The obstore S3 store under ``s3://bucket/prefix`` (endpoint and region as configured)."""
    from obstore.store import S3Store

    from tos2ca_batch.stores.objectstore import s3_settings, split_s3

    bucket, prefix = split_s3(url.rstrip("/"))
    endpoint, region = s3_settings()
    kwargs = {"prefix": prefix} if prefix else {}
    if endpoint:
        kwargs.update(endpoint=endpoint, virtual_hosted_style_request=False,
                      client_options={"allow_http": endpoint.startswith("http://")})
    if region:
        kwargs["region"] = region
    return S3Store(bucket, **kwargs)


def zarr_location(url: str):
    """A Zarr store-like for a local path or ``s3://bucket/prefix`` (obstore; endpoint and region as configured)."""
    if not url.startswith("s3://"):
        return url
    from zarr.storage import ObjectStore

    return ObjectStore(_s3_store(url))


class ForeignState(RuntimeError):
    """Stored state written by another job identity: never trusted as this job's."""



class ChunkStore:
    """``identity`` (the job's UUID) is written into every table, JSON document and done marker,
    and checked on every read: state of another job is refused (tables, JSON) or ignored
    (markers), even if it sits where this job's would."""

    def __init__(self, blobs: Blobs, zarr_url: str, identity: str | None = None):
        self.blobs = blobs
        self.zarr_url = zarr_url
        self.identity = identity
        self._arrays: dict[str, zarr.Array] = {}
        self._written: list[str] | None = None
        self._writer: ZarrWriter | None = None

    def _put(self, key: str, data: bytes) -> None:
        self.blobs.put(key, data)
        if self._written is not None:
            self._written.append(key)

    def begin_task(self) -> None:
        """Start recording the keys a task writes; its done marker lists them (see ``is_done``)."""
        self._written = []

    def _foreign(self, key: str, found) -> ForeignState:
        return ForeignState(f"{key} in the chunk store was written by job identity {found}, not by this job "
                            f"({self.identity}); another job shares this store and its state is not used")

    # -- tables ---------------------------------------------------------------------------
    def put_table(self, namespace: str, chunk: int, name: str, arrays: dict[str, np.ndarray],
                  compressed: tuple[str, ...] = ()) -> None:
        """``compressed``: arrays whose bytes are compressed already, stored as they are."""
        self._put(f"{namespace}:{chunk}:{name}", codec.encode(arrays, self.identity, compressed))

    def _decode(self, key: str) -> dict[str, np.ndarray]:
        data = self.blobs.get(key)
        if codec.identity(data) != self.identity:
            raise self._foreign(key, codec.identity(data))
        return codec.decode(data)

    def get_table(self, namespace: str, chunk: int, name: str) -> dict[str, np.ndarray]:
        return self._decode(f"{namespace}:{chunk}:{name}")

    def has_table(self, namespace: str, chunk: int, name: str) -> bool:
        return self.blobs.exists(f"{namespace}:{chunk}:{name}")

    def put_json(self, name: str, obj) -> None:
        doc = {"identity": self.identity, "value": obj}
        self._put(f"job:0:{name}", json.dumps(doc, sort_keys=True).encode())

    def get_json(self, name: str):
        doc = json.loads(self.blobs.get(f"job:0:{name}"))
        if not isinstance(doc, dict) or doc.get("identity") != self.identity or "value" not in doc:
            raise self._foreign(f"job:0:{name}", doc.get("identity") if isinstance(doc, dict) else None)
        return doc["value"]

    def put_shared(self, name: str, obj) -> None:
        """A JSON document the job's tasks share that is no task's output (no done marker lists
        it, so replacing it redoes nothing); deleted with the tables at completion."""
        self.blobs.put(f"job:0:{name}", json.dumps({"identity": self.identity, "value": obj}, sort_keys=True).encode())

    def get_shared(self, name: str):
        """:meth:`put_shared`'s document, None if there is none."""
        return self.get_json(name) if self.has_json(name) else None

    def has_json(self, name: str) -> bool:
        return self.blobs.exists(f"job:0:{name}")

    def mark_done(self, namespace: str, chunk: int) -> None:
        """Written last by a task: this job's identity and every key the task wrote."""
        doc = {"identity": self.identity, "keys": sorted(set(self._written or []))}
        self._written = None
        self.blobs.put(f"{namespace}:{chunk}:done", json.dumps(doc).encode())

    def is_done(self, namespace: str, chunk: int) -> bool:
        """A chunk's outputs are all there: its marker was written by this job and every key the
        task wrote still exists (a store that lost some, e.g. Redis emptied while the task ran,
        makes the chunk run again)."""
        key = f"{namespace}:{chunk}:done"
        if not self.blobs.exists(key):
            return False
        try:
            doc = json.loads(self.blobs.get(key))
        except (KeyError, OSError, ValueError):
            return False
        if not isinstance(doc, dict) or doc.get("identity") != self.identity:
            return False
        return self.blobs.exists_all(doc.get("keys", []))

    # -- the reduce's tables, one per time block ------------------------------------------
    def put_reduce_blocks(self, blocks: list[tuple[int, int]], n_anomalies: int) -> None:
        """Say which steps each of the reduce's ``components``/``events`` tables holds (table
        ``k`` is ``reduce:k:<name>``, steps ``blocks[k]``), and the job's anomaly count. Written
        after the tables."""
        self.put_json("anomalies", {"n_anomalies": int(n_anomalies), "blocks": [[int(a), int(b)] for a, b in blocks]})

    def reduce_blocks(self) -> list[tuple[int, int]] | None:
        """The reduce's time blocks, or None where one table holds every step (a job of an
        earlier version)."""
        blocks = self.get_json("anomalies").get("blocks")
        return None if blocks is None else [(a, b) for a, b in blocks]

    def reduce_table(self, name: str, steps: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """The reduce's ``name`` table (``components`` or ``events``) of the whole job, or of
        the blocks holding ``steps`` (``(first, end)``; rows of other steps may come with them)."""
        blocks = self.reduce_blocks()
        if blocks is None:
            return self.get_table("reduce", 0, name)
        picked = [k for k, (a, b) in enumerate(blocks) if steps is None or (a < steps[1] and steps[0] < b)] or [0]
        parts = [self.get_table("reduce", k, name) for k in picked]
        return parts[0] if len(parts) == 1 else {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}

    def release(self, keep: tuple[str, ...]) -> list[str]:
        """After completion: delete every blob but the keys in ``keep``
        (``namespace:chunk:name``, ``*`` for any chunk; JSON documents are ``job:0:name``); the
        ids stay. Returns the keys deleted."""
        exact = {k for k in keep if ":*:" not in k}
        any_chunk = {tuple(k.split(":*:")) for k in keep if ":*:" in k}

        def kept(key: str) -> bool:
            parts = key.split(":")
            return key in exact or (len(parts) == 3 and (parts[0], parts[2]) in any_chunk)

        gone = [k for k in self.blobs.keys() if not kept(k)]
        for k in gone:
            self.blobs.delete(k)
        return gone

    # -- Zarr ------------------------------------------------------------------------------
    def zarr_store(self):
        """What ``zarr.open_group`` / ``xarray.open_zarr`` take to open the ids dataset."""
        return zarr_location(self.zarr_url)

    def _ids_writer(self) -> ZarrWriter:
        if self._writer is None:
            self._writer = ZarrWriter(_s3_store(self.zarr_url) if self.zarr_url.startswith("s3://") else self.zarr_url)
        return self._writer

    def create_arrays(self, shape: tuple[int, int, int], tile: tuple[int, int], coords: dict,
                      attributes: dict | None = None) -> bool:
        """Create the CF anomaly-id dataset (called once, by the first map task): what
        ``outputs.cf.create_cf_group`` then ``zarr.consolidate_metadata`` make, byte for byte,
        written by ``stores.zarrwrite``; ``attributes`` are merged into the group's as
        :meth:`set_ids_attributes` would. False when a dataset was there already (kept as is)."""
        from tos2ca_batch.outputs.cf import GROUP_ATTRS, ID_ATTRS, cf_arrays

        self._arrays.clear()
        writer = self._ids_writer()
        group = writer.metadata("")
        if group is not None and "anomaly_id" in (group.get("consolidated_metadata") or {}).get("metadata", {}):
            return False  # planned again after its plan document was lost: keep what is stored
        arrays = {"anomaly_id": (array_metadata(shape, "int32", (1, *tile), 0, ID_ATTRS, ("time", "lat", "lon")),
                                 None)}
        for name, (values, dims, attrs) in cf_arrays(coords).items():
            meta = array_metadata(values.shape, values.dtype.name, guess_chunks(values.shape, values.dtype.itemsize),
                                  0, attrs, dims)
            arrays[name] = (meta, values)
        writer.create_group({**GROUP_ATTRS, **(attributes or {})}, arrays)
        return True

    def extend_arrays(self, times, time_step) -> None:
        """Lengthen the ids dataset to ``times`` (a sync's commit; see ``extend_cf_group``)."""
        from tos2ca_batch.outputs.cf import extend_cf_group

        self._arrays.clear()
        zarr = _zarr()
        extend_cf_group(zarr.open_group(self.zarr_store(), mode="r+"), times, time_step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(self.zarr_store())
        self._writer = None  # its cached shapes are old now

    def set_ids_attributes(self, attrs: dict) -> None:
        """Global attributes of the ids dataset (written once, by finalize), then re-consolidate."""
        self._ids_writer().update_attributes(attrs)

    def _array(self, path: str) -> zarr.Array:
        if path not in self._arrays:
            self._arrays[path] = _zarr().open_array(self.zarr_store(), path=path, mode="r+")
        return self._arrays[path]

    def read_ids(self, step: int) -> np.ndarray:
        """A whole step of the anomaly-id dataset."""
        return self._array("anomaly_id")[step]

    def write_ids(self, step: int, region, data: np.ndarray) -> None:
        r0, r1, c0, c1 = region
        if not self._ids_writer().write("anomaly_id", (step, r0, c0), data[None]):  # not whole chunks
            self._array("anomaly_id")[step, r0:r1, c0:c1] = data
