"""Runs the kernels over an in-memory mask cube with any chunking, as the stages do on disk."""

from __future__ import annotations

import math

import numpy as np
from tos2ca_batch.kernels.blockmap import BlockMapper
from tos2ca_batch.kernels.components import gather_chunk_tables
from tos2ca_batch.kernels.tracking import resolve


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
):
    """Anomaly-id cube and resolved tables of ``masks`` (steps, rows, cols) for one chunking."""
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
                    mapper = BlockMapper(r0, c0, nx, connectivity, pieces=with_pieces)
                    if b0 > 0:
                        mapper.add_halo(masks[b0 - 1, r0:r1, c0:c1])
                    for s in range(b0, b1):
                        labels[s, r0:r1, c0:c1] = mapper.add(s, masks[s, r0:r1, c0:c1], values[s, r0:r1, c0:c1])
                    yield i * ntc + j, (i, j), mapper.tables()

    g = gather_chunk_tables(chunks(), with_pieces)
    res = resolve(g["components"], g["overlaps"], g["strips"], nt, ntr, ntc, connectivity, wrap, min_size,
                  min_overlap, overlap_fraction, g["pieces"], g["piece_strips"], start, keep)
    ids = np.zeros(masks.shape, np.int32)
    for s in range(nt):
        for i in range(ntr):
            for j in range(ntc):
                r0, c0 = i * th, j * tw
                sl = (s, slice(r0, min(ny, r0 + th)), slice(c0, min(nx, c0 + tw)))
                ids[sl] = res.lookup(s, i * ntc + j)[labels[sl]]
    return ids, res


def tag_table(res) -> list[tuple[int, int, str]]:
    """(step, anomaly id, tag) of every kept component, sorted."""
    c = res.components
    return sorted(zip(c["step"].tolist(), c["anomaly_id"].tolist(), res.tags))
