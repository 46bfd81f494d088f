"""Reduce: tables only. Join seams, drop small components, link with ForTraCC, write lookups."""

from __future__ import annotations

import numpy as np

from kernels.components import concat_tables
from kernels.fortracc import TAGS
from kernels.tracking import resolve
from tos2ca_batch.config import Config
from tos2ca_batch.stages.common import JobPlan


def run(cfg: Config, job_id: int, chunk: int = 0) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    lay, trk = plan.layout, plan.meta["tracking"]
    comps, overlaps, strips = [], [], {}
    for c in range(lay.n_chunks):  # ascending chunk id = block-major, so strips stack in time order
        comps.append(store.get_table("map", c, "components"))
        overlaps.append(store.get_table("map", c, "overlaps"))
        i, j = divmod(lay.tile_of(c), lay.n_tile_cols)
        for side, arr in store.get_table("map", c, "strips").items():
            strips.setdefault((i, j), {}).setdefault(side, []).append(arr)
    strips = {k: {s: np.concatenate(v) for s, v in sides.items()} for k, sides in strips.items()}
    res = resolve(
        concat_tables(comps, comps[0]), concat_tables(overlaps, overlaps[0]), strips,
        lay.n_steps, lay.n_tile_rows, lay.n_tile_cols, trk["connectivity"], plan.meta["wrap"],
        trk["min_size"], trk["min_overlap"],
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
