"""Runs the kernels over an in-memory mask cube with any chunking, as the stages do on disk."""

from __future__ import annotations

import math

import numpy as np
from tos2ca_batch.kernels.blockmap import BlockMapper
from tos2ca_batch.kernels.components import gather_chunk_tables
from tos2ca_batch.kernels.tracking import Resolved, Stitch, block_tables, resolve


def track_cube(
    masks: np.ndarray,
    block_steps: int,
    tile: tuple[int, int],
    connectivity: int = 2,
    min_size: int = 1,
    min_overlap: float = 0.25,
    wrap: bool = False,
    values: np.ndarray | None = None,
    overlap_fraction: str = "exact",
    start=None,
    keep=None,
    reduce_steps: int | None = None,
    drop_small: bool = True,
):
    """Anomaly-id cube and resolved tables of ``masks`` (steps, rows, cols) for one chunking;
    ``reduce_steps``: linked in time blocks of that many steps and stitched, as the reduce stage
    does (blocks need not end where the map's do); ``drop_small=False``: the map keeps the
    small components that are whole in their tile (which it drops, as the map stage does)."""
    nt, ny, nx = masks.shape
    values = np.ones(masks.shape, np.float32) if values is None else values
    th, tw = min(tile[0], ny), min(tile[1], nx)
    ntr, ntc = math.ceil(ny / th), math.ceil(nx / tw)
    labels = np.zeros(masks.shape, np.int32)
    with_pieces = overlap_fraction == "tos2ca"

    def chunks():  # in chunk order, as the map stage writes them and reduce reads them
        for b0 in range(0, nt, block_steps):
            b1 = min(nt, b0 + block_steps)
            for i in range(ntr):
                for j in range(ntc):
                    r0, c0 = i * th, j * tw
                    r1, c1 = min(ny, r0 + th), min(nx, c0 + tw)
                    seams = (r0 > 0, r1 < ny, c0 > 0 or wrap, c1 < nx or wrap)
                    mapper = BlockMapper(r0, c0, nx, connectivity, pieces=with_pieces,
                                         min_size=min_size if drop_small else 1, seams=seams)
                    if b0 > 0:
                        mapper.add_halo(masks[b0 - 1, r0:r1, c0:c1])
                    for s in range(b0, b1):
                        labels[s, r0:r1, c0:c1] = mapper.add(s, masks[s, r0:r1, c0:c1], values[s, r0:r1, c0:c1])
                    yield i * ntc + j, (i, j), mapper.tables()

    g = gather_chunk_tables(chunks(), with_pieces)
    ids = np.zeros(masks.shape, np.int32)
    if reduce_steps is None:
        res = resolve(g["components"], g["overlaps"], g["strips"], nt, ntr, ntc, connectivity, wrap, min_size,
                      min_overlap, overlap_fraction, g["pieces"], g["piece_strips"], start, keep)
        for s in range(nt):
            for i in range(ntr):
                for j in range(ntc):
                    r0, c0 = i * th, j * tw
                    sl = (s, slice(r0, min(ny, r0 + th)), slice(c0, min(nx, c0 + tw)))
                    ids[sl] = res.lookup(s, i * ntc + j)[labels[sl]]
        return ids, res
    stitch, parts = Stitch(), []
    for t0 in range(0, nt, reduce_steps):
        t1, halo = min(nt, t0 + reduce_steps), t0 > 0
        b = block_tables(g, t0, t1, halo)
        res = resolve(b["components"], b["overlaps"], b["strips"], t1 - t0 + halo, ntr, ntc, connectivity, wrap,
                      min_size, min_overlap, overlap_fraction, b["pieces"], b["piece_strips"],
                      None if halo else start, keep, halo=halo)
        node_ids, finished = stitch.add(res, t0 - halo, halo)
        parts += [finished] if finished else []
        for s in range(t0, t1):
            for i in range(ntr):
                for j in range(ntc):
                    r0, c0 = i * th, j * tw
                    sl = (s, slice(r0, min(ny, r0 + th)), slice(c0, min(nx, c0 + tw)))
                    base, n = res.node_base[s - t0 + halo, i * ntc + j], res.node_count[s - t0 + halo, i * ntc + j]
                    ids[sl] = np.r_[0, node_ids[base:base + n]].astype(np.int32)[labels[sl]]
    parts.append(stitch.finish())
    table = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    events = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return ids, Resolved(components=table, tag_code=table["tag"], n_anomalies=stitch.n_anomalies,
                         node_base=np.zeros((0, 0), np.int64), node_count=np.zeros((0, 0), np.int64),
                         node_anomaly=np.zeros(0, np.int32), events=events)


def tag_table(res) -> list[tuple[int, int, str]]:
    """(step, anomaly id, tag) of every kept component, sorted."""
    c = res.components
    return sorted(zip(c["step"].tolist(), c["anomaly_id"].tolist(), res.tags))
