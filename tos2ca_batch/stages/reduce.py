"""Reduce: tables only. Join seams, drop small components, link with ForTraCC, write lookups."""

from __future__ import annotations

import numpy as np

from tos2ca_batch import operators
from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.fortracc import TAGS, LinkStart
from tos2ca_batch.kernels.tracking import resolve
from tos2ca_batch.stages.common import gather_map_tables


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store = ctx.plan, ctx.store
    lay, trk = plan.layout, plan.tracking
    g = gather_map_tables(store, plan)
    start = store.get_table("sync", 0, "start") if plan.sync_of else None
    rule = operators.get(plan.operator).keeps
    res = resolve(
        g["components"], g["overlaps"], g["strips"],
        lay.n_steps, lay.n_tile_rows, lay.n_tile_cols, trk.connectivity, plan.wraps,
        trk.min_size, trk.min_overlap, trk.overlap_fraction, g["pieces"], g["piece_strips"] or None,
        start=None if start is None else LinkStart(start["anomaly_id"], [TAGS[t] for t in start["tag"]],
                                                   int(start["n_anomalies"][0])),
        keep=None if rule is None else lambda vmin, vmax: rule(vmin, vmax, plan.threshold, plan.value2),
    )
    table = dict(res.components)
    table["tag"] = np.array([TAGS.index(t) for t in res.tags], np.int8)
    if start is not None:
        table = continued_table(table, start)
    store.put_table("reduce", 0, "components", table)
    store.put_table("reduce", 0, "events", res.events)
    for c in range(lay.n_chunks):
        t0, t1 = lay.chunk(c)[:2]
        tile = lay.tile_of(c)
        parts = [res.lookup(s, tile) for s in range(t0, t1)]
        offsets = np.r_[0, np.cumsum([p.size for p in parts])].astype(np.int64)
        store.put_table("reduce", c, "lookup", {"offsets": offsets, "ids": np.concatenate(parts)})
    store.put_json("anomalies", {"n_anomalies": res.n_anomalies})


def continued_table(table: dict[str, np.ndarray], start: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A sync's components: step 0's rows are the job's stored last-step rows (their values as the
    job read them), with the tags this linking gave them."""
    first = np.flatnonzero(table["step"] == 0)
    if first.size != start["area"].size or not np.array_equal(table["area"][first], start["area"]):
        raise ValueError("the job's stored last step does not match the sync's step 0 (state of another version?)")
    out = {k: v.copy() for k, v in table.items()}
    for k in out:
        if k not in ("step", "tag", "anomaly_id"):
            out[k][first] = start[k]
    return out
