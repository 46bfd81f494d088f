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
    mode = trk.get("overlap_fraction", "exact")
    names = ("components", "overlaps", "pieces") if mode == "tos2ca" else ("components", "overlaps")
    tables: dict[str, list] = {n: [] for n in names}
    strips: dict[str, dict] = {"strips": {}, "piece_strips": {}}
    for c in range(lay.n_chunks):  # ascending chunk id = block-major, so strips stack in time order
        for name in names:
            tables[name].append(store.get_table("map", c, name))
        i, j = divmod(lay.tile_of(c), lay.n_tile_cols)
        for kind in ("strips", "piece_strips") if mode == "tos2ca" else ("strips",):
            for side, arr in store.get_table("map", c, kind).items():
                strips[kind].setdefault((i, j), {}).setdefault(side, []).append(arr)
    strips = {kind: {k: {s: np.concatenate(v) for s, v in sides.items()} for k, sides in by_tile.items()}
              for kind, by_tile in strips.items()}
    joined = {name: concat_tables(parts, parts[0]) for name, parts in tables.items()}
    res = resolve(
        joined["components"], joined["overlaps"], strips["strips"],
        lay.n_steps, lay.n_tile_rows, lay.n_tile_cols, trk["connectivity"], plan.meta["wrap"],
        trk["min_size"], trk["min_overlap"], mode, joined.get("pieces"), strips["piece_strips"] or None,
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
