"""Runs the kernels over an in-memory mask cube with any chunking, as the stages do on disk."""

from __future__ import annotations

import math

import numpy as np

from kernels.blockmap import BlockMapper
from kernels.components import concat_tables, empty_components, empty_overlaps, empty_pieces
from kernels.tracking import resolve


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
):
    """Anomaly-id cube and resolved tables of ``masks`` (steps, rows, cols) for one chunking."""
    nt, ny, nx = masks.shape
    values = np.ones(masks.shape, np.float32) if values is None else values
    th, tw = min(tile[0], ny), min(tile[1], nx)
    ntr, ntc = math.ceil(ny / th), math.ceil(nx / tw)
    labels = np.zeros(masks.shape, np.int32)
    comps, overlaps, strips, pieces, piece_strips = [], [], {}, [], {}
    with_pieces = overlap_fraction == "tos2ca"
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
                t = mapper.tables()
                tile_id = i * ntc + j
                tabled = [(t["components"], comps), (t["overlaps"], overlaps)]
                tabled += [(t["pieces"], pieces)] if with_pieces else []
                for table, bucket in tabled:
                    table = dict(table)
                    table["tile"] = np.full(table["step"].size, tile_id, np.int32)
                    bucket.append(table)
                for side, arr in t["strips"].items():
                    strips.setdefault((i, j), {}).setdefault(side, []).append(arr)
                for side, arr in t.get("piece_strips", {}).items():
                    piece_strips.setdefault((i, j), {}).setdefault(side, []).append(arr)
    strips = {k: {side: np.concatenate(v) for side, v in sides.items()} for k, sides in strips.items()}
    piece_strips = {k: {side: np.concatenate(v) for side, v in sides.items()} for k, sides in piece_strips.items()}
    ce = dict(empty_components(), tile=np.zeros(0, np.int32))
    oe = dict(empty_overlaps(), tile=np.zeros(0, np.int32))
    pe = dict(empty_pieces(), tile=np.zeros(0, np.int32))
    res = resolve(
        concat_tables(comps, ce), concat_tables(overlaps, oe), strips, nt, ntr, ntc,
        connectivity, wrap, min_size, min_overlap, overlap_fraction,
        concat_tables(pieces, pe) if with_pieces else None, piece_strips if with_pieces else None,
    )
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
