"""What several stages share: product names, the promised-outputs check, the baseline
statistic of a tile, a whole step of the job grid, the map stage's chunk tables of
a time block, and the attributes and names of the masks and ids files (finalize writes
them whole, the periods stage per period)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from tos2ca_batch import __version__, operators
from tos2ca_batch.algorithm import Layout
from tos2ca_batch.kernels import stats as moments
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stores.chunkstore import ChunkStore

PHDEF_PRODUCTS = ("masks", "toc", "hierarchy", "geojson", "plots", "tracks", "ids", "tables", "report")
PHDEF_OPTIONAL = ("animation",)
"""PhDef products made only when asked for (``--products ...,animation``)."""
CURATION_PRODUCTS = ("curated", "interpolated", "hierarchy", "stats", "anomaly-plots")
CURATION_DEFAULT = ("curated", "interpolated", "hierarchy", "stats")
CURATION_FILL = -9999.0  # TOS2CA's fill in the curation files
CURATION_STATISTICS = ("count", "valid_count", "Min", "Max", "Mean", "Std_dev", "percentile_10", "percentile_25",
                       "percentile_50", "percentile_75", "percentile_90")
"""The statistics of each curated anomaly, named as TOS2CA's interpolated files' attributes."""


class OutputsMissing(RuntimeError):
    """Finalize found a promised output absent or without its ``outputs`` row: the job fails."""


def verify_outputs(db, outputs, job_id: int, names: list[str]) -> None:
    """Every promised file exists where it was written and has its ``outputs`` row; a job with
    nothing promised is refused too, so "complete with no outputs" cannot happen."""
    if not names:
        raise OutputsMissing("the plan promises no outputs")
    rows = {r["location"] for r in db.outputs(job_id)}
    absent = [n for n in names if not outputs.exists(n)]
    unrecorded = [n for n in names if outputs.location(n) not in rows]
    if absent or unrecorded:
        shown = ", ".join((absent + unrecorded)[:5])
        raise OutputsMissing(f"{len(absent)} promised outputs missing and {len(unrecorded)} without an outputs row "
                             f"under {outputs.prefix} (e.g. {shown})")


def tile_baseline(store: ChunkStore, plan: PhDefPlan, window: tuple[int, int, int, int]) -> dict | None:
    """The baseline statistic the job's operator needs over ``window`` (rows r0:r1, columns
    c0:c1 of a job tile), from the stats stage's tables: ``{"mean", "std"}`` (partials merged
    in block order) or ``{"percentile"}`` (assembled from the bands that cover it); None if
    the operator needs none."""
    kind = plan.baseline_statistic
    if kind is None:
        return None
    lay = plan.stage_layout("stats")
    r0, r1, c0, c1 = window
    if kind == "moments":
        tile = (r0 // lay.tile_h) * lay.n_tile_cols + c0 // lay.tile_w
        total = None
        for b in range(lay.n_blocks):
            part = store.get_table("stats", b * lay.n_tiles + tile, "moments")
            total = part if total is None else moments.merge(total, part)
        mean, std = moments.mean_std(total)
        return {"mean": mean, "std": std}
    out = np.empty((r1 - r0, c1 - c0), np.float64)
    col_tile = c0 // lay.tile_w
    for band in range(r0 // lay.tile_h, (r1 - 1) // lay.tile_h + 1):
        chunk = band * lay.n_tile_cols + col_tile
        _, _, b0, b1, _, _ = lay.chunk(chunk)
        part = store.get_table("stats", chunk, "percentile")["value"]
        lo, hi = max(b0, r0), min(b1, r1)
        out[lo - r0:hi - r0] = part[lo - b0:hi - b0]
    return {"percentile": out}


def value_range(values: np.ndarray) -> list[float]:
    """The finite values' ``[min, max]`` (``[0, 1]`` if none): a job's plots' colour scale."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [0.0, 1.0]
    lo, hi = float(finite.min()), float(finite.max())
    return [lo, max(hi, lo + 1e-6)]


def pixel_records(steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """One chunk's anomaly pixels, step by step: ``(flat index in the tile, local label, value)``
    of each step, as one table (``offsets`` delimit the steps)."""
    sizes = [index.size for index, _, _ in steps]
    return {
        "offsets": np.r_[0, np.cumsum(sizes)].astype(np.int64),
        "index": np.concatenate([s[0] for s in steps]).astype(np.int32),
        "label": np.concatenate([s[1] for s in steps]).astype(np.int32),
        "value": np.concatenate([s[2] for s in steps]).astype(np.float32),
    }


def last_step_records(store: ChunkStore, plan: PhDefPlan) -> dict[str, np.ndarray]:
    """The job's last step as a sync needs it: every masked pixel (flat index in the job grid,
    kept or not) and its value, from the map's records of the last block's tiles. A sync makes
    this step its step 0 (labels, overlaps, seams) without reading its file again."""
    lay = plan.layout
    last_block = lay.n_blocks - 1
    index, value = [], []
    for tile, (r0, _, c0, c1) in enumerate(lay.tiles()):
        rec = store.get_table("map", last_block * lay.n_tiles + tile, "pixels")
        a, b = rec["offsets"][-2], rec["offsets"][-1]
        local = rec["index"][a:b].astype(np.int64)
        index.append((local // (c1 - c0) + r0) * lay.width + local % (c1 - c0) + c0)
        value.append(rec["value"][a:b])
    order_index = np.concatenate(index)
    order = np.argsort(order_index, kind="stable")
    return {"index": order_index[order], "value": np.concatenate(value)[order].astype(np.float32)}


def last_step_tile(records: dict[str, np.ndarray], width: int, region) -> tuple[np.ndarray, np.ndarray]:
    """One tile of :func:`last_step_records`: its mask and values (0 where not masked)."""
    r0, r1, c0, c1 = region
    rows, cols = records["index"] // width, records["index"] % width
    inside = (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
    flat = (rows[inside] - r0) * (c1 - c0) + cols[inside] - c0
    mask = np.zeros((r1 - r0) * (c1 - c0), bool)
    values = np.zeros((r1 - r0) * (c1 - c0), np.float32)
    mask[flat], values[flat] = True, records["value"][inside]
    return mask.reshape(r1 - r0, c1 - c0), values.reshape(r1 - r0, c1 - c0)


def chunk_step_ids(store: ChunkStore, plan: PhDefPlan, chunk: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per step of a map chunk: the tile-flat index, final anomaly id (0: dropped) and value of
    each of its pixels (the map's records through the reduce's lookup)."""
    records = store.get_table("map", chunk, "pixels")
    lookup = store.get_table("reduce", chunk, "lookup")
    off, index, label, value = records["offsets"], records["index"], records["label"], records["value"]
    loff, lids = lookup["offsets"], lookup["ids"]
    return [(index[off[k]:off[k + 1]], lids[loff[k]:loff[k + 1]][label[off[k]:off[k + 1]]], value[off[k]:off[k + 1]])
            for k in range(off.size - 1)]


class StepChunks:
    """``step_chunks(s)``: step ``s``'s masks-file chunks (:func:`~tos2ca_batch.outputs.masks.step_chunks`)
    from the publish table of the block holding it, each block read once, in turn."""

    def __init__(self, store: ChunkStore, plan: PhDefPlan):
        self.store, self.layout = store, plan.stage_layout("publish")
        self._block: int | None = None
        self._steps: list[dict[str, np.ndarray]] = []
        self._per_step = False  # published by a version that stored a table a step

    def __call__(self, s: int) -> dict[str, np.ndarray]:
        from tos2ca_batch.outputs.masks import split_block

        if self._per_step:
            return self.store.get_table("publish", s, "masks")
        block = s // self.layout.block_steps
        if block != self._block:
            table = self.store.get_table("publish", block, "masks")
            if "mask_indices_bytes" not in table:
                self._per_step = True
                return self(s)
            self._steps, self._block = split_block(table), block
        return self._steps[s - self.layout.block(block)[0]]


def create_ids_dataset(store: ChunkStore, plan: PhDefPlan) -> None:
    """The job's CF anomaly-id dataset, empty (relabel fills it), with its global attributes,
    which are also kept as the JSON ``ids_attributes`` for the netCDF copy finalize writes.

    The first map task makes it, beside the other map tasks, not the plan or finalize: those
    are the tasks every worker waits for."""
    lay = plan.layout
    attrs = ids_attributes(plan, plan.output_job)
    if store.create_arrays((lay.n_steps, lay.height, lay.width), (lay.tile_h, lay.tile_w),
                           {"lat": plan.grid.lat, "lon": plan.grid.lon, "times": plan.times(), "units": plan.units,
                            "long_name": plan.long_name, "variable": plan.variable,
                            "time_step": plan.entry.time_step}, attrs):
        store.put_json("ids_attributes", list(attrs.items()))  # pairs: JSON documents are stored key-sorted


def job_ids_attributes(store: ChunkStore, plan: PhDefPlan) -> dict:
    """The attributes :func:`create_ids_dataset` gave the ids dataset; for a dataset made without
    them (by an earlier version, or kept from before its plan was lost), new ones, set on it."""
    if store.has_json("ids_attributes"):
        return dict(store.get_json("ids_attributes"))
    attrs = ids_attributes(plan, plan.output_job)
    store.set_ids_attributes(attrs)
    return attrs


def map_block_tables(store: ChunkStore, lay: Layout, with_pieces: bool,
                     block: int) -> list[tuple[int, tuple[int, int], dict]]:
    """One map block's chunk tables, tile by tile, as ``gather_chunk_tables`` takes them
    (``with_pieces``: and the overlap pieces of the ``tos2ca`` fraction)."""
    names = ("components", "overlaps", "strips") + (("pieces", "piece_strips") if with_pieces else ())
    out = []
    for tile in range(lay.n_tiles):
        c = block * lay.n_tiles + tile
        out.append((tile, divmod(tile, lay.n_tile_cols), {n: store.get_table("map", c, n) for n in names}))
    return out


def masks_attributes(plan: PhDefPlan, job_id: int) -> dict:
    x0, y0, x1, y1 = plan.bbox
    trk = plan.tracking
    return {
        "event_type": operators.get(plan.operator).event_type,
        "latitude_bounds": np.array([y0, y1], np.float64),
        "longitude_bounds": np.array([x0, x1], np.float64),
        "start_date": plan.timestamps[0], "end_date": plan.timestamps[-1],
        "dataset": plan.dataset, "variable": plan.variable, "threshold": float(plan.threshold),
        "job_id": np.int32(job_id), "connectivity": np.int32(trk.connectivity),
        "min_size": np.int32(trk.min_size), "min_overlap": float(trk.min_overlap),
        "overlap_fraction": trk.overlap_fraction, "format": "netCDF-4",
        "production_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software_version": __version__, "units": plan.units, "long_name": plan.long_name,
        "version": np.int32(plan.version),
    }


def ids_attributes(plan: PhDefPlan, job_id: int) -> dict:
    """Global attributes of the ids dataset (netCDF and Zarr alike), JSON-typed."""
    trk = plan.tracking
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = f"{plan.dataset} {plan.variable} {plan.operator} {plan.threshold} {plan.units}".strip()
    return {
        "title": f"ForTraCC anomaly ids of job {job_id}", "Conventions": "CF-1.8",
        "source": f"tos2ca-batch {__version__}: {plan.dataset} ({plan.entry.full_name or plan.dataset})",
        "history": f"{now} tos2ca-batch {__version__} PhDef job {job_id}: {what}, ForTraCC tracking",
        "date_created": now, "job_id": int(job_id), "dataset": plan.dataset, "variable": plan.variable,
        "source_variable": plan.variable, "source_units": plan.units,
        "event_type": operators.get(plan.operator).event_type, "operator": plan.operator,
        "threshold": float(plan.threshold), **({"threshold2": float(plan.value2)} if plan.value2 is not None else {}),
        "connectivity": int(trk.connectivity), "min_size": int(trk.min_size),
        "min_overlap": float(trk.min_overlap), "overlap_fraction": trk.overlap_fraction,
        "time_coverage_start": plan.times()[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "time_coverage_end": plan.times()[-1].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software_version": __version__, "job_uid": plan.job_uid, "version": int(plan.version),
    }


def period_files(job_id: int, label: str) -> dict[str, str]:
    """The names of one period's masks and ids files (jobs written per period)."""
    return {"masks": f"{job_id}-ForTraCC-Mask-Output-{label}.nc4", "ids": f"{job_id}-anomaly-ids-{label}.nc4"}
