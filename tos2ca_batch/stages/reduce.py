"""Reduce: tables only. Join seams, drop small components, link with ForTraCC, write lookups."""

from __future__ import annotations

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.fortracc import TAGS
from tos2ca_batch.kernels.tracking import resolve
from tos2ca_batch.stages.common import gather_map_tables


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store = ctx.plan, ctx.store
    lay, trk = plan.layout, plan.tracking
    g = gather_map_tables(store, plan)
    res = resolve(
        g["components"], g["overlaps"], g["strips"],
        lay.n_steps, lay.n_tile_rows, lay.n_tile_cols, trk.connectivity, plan.wraps,
        trk.min_size, trk.min_overlap, trk.overlap_fraction, g["pieces"], g["piece_strips"] or None,
    )
    table = dict(res.components)
    table["tag"] = np.array([TAGS.index(t) for t in res.tags], np.int8)
    store.put_table("reduce", 0, "components", table)
    for c in range(lay.n_chunks):
        t0, t1 = lay.chunk(c)[:2]
        tile = lay.tile_of(c)
        parts = [res.lookup(s, tile) for s in range(t0, t1)]
        offsets = np.r_[0, np.cumsum([p.size for p in parts])].astype(np.int64)
        store.put_table("reduce", c, "lookup", {"offsets": offsets, "ids": np.concatenate(parts)})
    store.put_json("anomalies", {"n_anomalies": res.n_anomalies})
