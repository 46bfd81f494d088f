"""Relabel: the map's pixel records -> final anomaly ids, written to the durable Zarr dataset."""

from __future__ import annotations

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.stages.common import chunk_step_ids


def run(ctx: TaskContext, chunk: int) -> None:
    store = ctx.store
    t0, t1, r0, r1, c0, c1 = ctx.plan.layout.chunk(chunk)
    region = (r0, r1, c0, c1)
    tile = np.zeros((r1 - r0) * (c1 - c0), np.int32)  # one buffer: each step sets its pixels, then clears them
    for s, (index, ids, _) in zip(range(t0, t1), chunk_step_ids(store, ctx.plan, chunk)):
        tile[index] = ids
        store.write_ids(s, region, tile.reshape(r1 - r0, c1 - c0))
        tile[index] = 0
