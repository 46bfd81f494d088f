"""The map stage: read and binarize a chunk (plus the step before it), label, record tables and pixels.

The chunk's anomaly pixels are kept sparse (at the usual 1-5 % coverage a dense tile is 20-100
times larger): per step, the flat index in the tile of every masked pixel, its local label and
its value (:func:`stages.common.pixel_records`); relabel and publish read only those."""

from __future__ import annotations

import numpy as np

from tos2ca_batch import operators
from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.binarize import polygon_mask
from tos2ca_batch.kernels.blockmap import BlockMapper
from tos2ca_batch.readers import CandidateStep, StepReader
from tos2ca_batch.stages.common import create_ids_dataset, last_step_tile, pixel_records, tile_baseline


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store, grid = ctx.plan, ctx.store, ctx.plan.grid
    if chunk == 0:
        create_ids_dataset(store, plan)
    lay = plan.layout
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    rows, cols = grid.src_rows[r0:r1], grid.src_cols[c0:c1]
    inside = None
    if plan.polygon:
        import shapely.wkt

        inside = polygon_mask(grid.lat[r0:r1], grid.lon[c0:c1], shapely.wkt.loads(plan.polygon))
    baseline = tile_baseline(store, plan, (r0, r1, c0, c1))
    times = plan.times()

    operator = operators.get(plan.operator)

    def mask_of(values: np.ndarray) -> np.ndarray:
        m = operator.mask(values, plan.threshold, plan.value2, baseline)
        return m & inside if inside is not None else m

    trk = plan.tracking
    seams = (r0 > 0, r1 < lay.height, c0 > 0 or plan.wraps, c1 < lay.width or plan.wraps)
    mapper = BlockMapper(r0, c0, lay.width, trk.connectivity, pieces=trk.overlap_fraction == "tos2ca",
                         min_size=plan.map_min_size or trk.min_size, seams=seams)
    records = []
    earlier = None
    if plan.sync_of and t0 == 0:  # a sync's step 0 is the job's last step, as stored at its end
        earlier = last_step_tile(store.get_table("sync", 0, "last"), lay.width, (r0, r1, c0, c1))
    # Every step is read into one array: a step's values are done with before the next is read
    # (records copy the masked ones). Only the masked values are ever used, so with a floor below
    # which no value can be masked (a "> T" threshold) a read may skip the values under it.
    floor = operator.floor(plan.threshold, plan.value2) if operator.floor else None
    if floor is None:
        buffer = np.empty((rows.size, cols.size), np.float32)
    else:
        step_buffer = CandidateStep((rows.size, cols.size))

    def read(t) -> np.ndarray:
        if floor is None:
            return reader.read(t, rows, cols, buffer)
        return reader.read_at_least(t, rows, cols, step_buffer, floor)

    with StepReader(plan.entry, plan.variable, grid.source) as reader:
        if t0 > 0:
            mapper.add_halo(mask_of(read(times[t0 - 1])))
        for s in range(t0, t1):
            if s == 0 and earlier is not None:
                mask, values = earlier
            else:
                values = read(times[s])
                mask = mask_of(values)
            labels = mapper.add(s, mask, values)
            index = mapper.index.astype(np.int32)
            records.append((index, labels.ravel()[index], values.ravel()[index]))
    for name, table in mapper.tables().items():
        store.put_table("map", chunk, name, table)
    store.put_table("map", chunk, "pixels", pixel_records(records))
