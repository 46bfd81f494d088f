"""Labelling, per-step component tables, overlap pairs and seam lines of one tile.

Tables are dicts of equal-length 1-D columns. Pixel positions are given in the *job* grid
(row-major linear index ``row * job_width + col``) so tables from different tiles merge
exactly: areas and sums add, bboxes union, first indices take the minimum.
"""

from __future__ import annotations

import cc3d
import numpy as np

COMPONENT_COLUMNS = (
    "step", "label", "area", "first_index", "min_row", "min_col", "max_row", "max_col",
    "sum_row", "sum_col", "sum_col_half", "value_sum", "value_min", "value_max",
)
OVERLAP_COLUMNS = ("step", "prev_label", "cur_label", "overlap", "first_overlap_index")
PIECE_COLUMNS = ("step", "piece", "prev_label", "cur_label", "size", "first_index")


def label(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Connected components (1 = 4-neighbour, 2 = 8-neighbour) as int32 labels 1..n.

    ``cc3d`` (connected-components-3d) labels 2-D masks 2.5-3x faster than ``scipy.ndimage``
    (``benchmarks/bench_kernels.py``). Its numbering of 8-connected components is not raster
    order; nothing downstream depends on the numbering (tables are keyed by job-grid indices),
    which is also why any tiling gives the same results. The mask goes in as uint8: cc3d 4.1
    mislabels some boolean 2-D inputs (``tests/test_label.py`` holds it to scipy's partition).
    """
    binary = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    labels, n = cc3d.connected_components(binary, connectivity=4 if connectivity == 1 else 8,
                                          out_dtype=np.uint32, return_N=True)
    return labels.view(np.int32), int(n)


def _grouped(labels_flat_nz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order by label (stable, so raster order inside a label) and group starts."""
    order = np.argsort(labels_flat_nz, kind="stable")
    sorted_labels = labels_flat_nz[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    return order, sorted_labels[starts], starts


def component_table(
    labels: np.ndarray,
    values: np.ndarray,
    step: int,
    row0: int,
    col0: int,
    job_width: int,
    index: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One row per label of ``labels`` (a tile at job offset ``row0, col0``); ``index``, when
    given, is ``np.flatnonzero(labels)`` (computed once per step by the caller)."""
    height, width = labels.shape
    flat = labels.ravel()
    idx = np.flatnonzero(flat) if index is None else index
    lab = flat[idx]
    rows = idx // width + row0
    cols = idx % width + col0
    vals = values.ravel()[idx].astype(np.float64)
    if idx.size == 0:
        return empty_components()
    order, ulab, starts = _grouped(lab)
    r, c, v = rows[order], cols[order], vals[order]
    lin = r.astype(np.int64) * job_width + c
    counts = np.diff(np.r_[starts, idx.size])
    n = ulab.size
    return {
        "step": np.full(n, step, np.int32),
        "label": ulab.astype(np.int32),
        "area": counts.astype(np.int64),
        "first_index": np.minimum.reduceat(lin, starts),
        "min_row": np.minimum.reduceat(r, starts).astype(np.int32),
        "min_col": np.minimum.reduceat(c, starts).astype(np.int32),
        "max_row": (np.maximum.reduceat(r, starts) + 1).astype(np.int32),
        "max_col": (np.maximum.reduceat(c, starts) + 1).astype(np.int32),
        "sum_row": np.add.reduceat(r.astype(np.int64), starts),
        "sum_col": np.add.reduceat(c.astype(np.int64), starts),
        # Columns rotated by half the grid: the exact centroid of a component that straddles
        # the longitude wrap of a global grid.
        "sum_col_half": np.add.reduceat((c.astype(np.int64) + job_width // 2) % job_width, starts),
        "value_sum": np.add.reduceat(v, starts),
        "value_min": np.minimum.reduceat(v, starts),
        "value_max": np.maximum.reduceat(v, starts),
    }


_COMPONENT_DTYPES = {
    "step": np.int32, "label": np.int32, "area": np.int64, "first_index": np.int64,
    "min_row": np.int32, "min_col": np.int32, "max_row": np.int32, "max_col": np.int32,
    "sum_row": np.int64, "sum_col": np.int64, "sum_col_half": np.int64, "value_sum": np.float64,
    "value_min": np.float64, "value_max": np.float64,
}
_OVERLAP_DTYPES = {
    "step": np.int32, "prev_label": np.int32, "cur_label": np.int32,
    "overlap": np.int64, "first_overlap_index": np.int64,
}
_PIECE_DTYPES = {
    "step": np.int32, "piece": np.int32, "prev_label": np.int32, "cur_label": np.int32,
    "size": np.int64, "first_index": np.int64,
}


def empty_components() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, t) for k, t in _COMPONENT_DTYPES.items()}


def empty_overlaps() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, t) for k, t in _OVERLAP_DTYPES.items()}


def empty_pieces() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, t) for k, t in _PIECE_DTYPES.items()}


def _job_index(tile_index: np.ndarray, width: int, row0: int, col0: int, job_width: int) -> np.ndarray:
    """Row-major linear index on the job grid of flat indices into a tile at ``(row0, col0)``."""
    return (tile_index // width + row0).astype(np.int64) * job_width + (tile_index % width + col0)


def overlap_pairs(prev_labels: np.ndarray, cur_labels: np.ndarray, step: int, row0: int, col0: int,
                  job_width: int, cur_index: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Pixel overlaps between labels of step ``step-1`` and ``step`` on the same tile
    (``cur_index``, when given, is ``np.flatnonzero(cur_labels)``: then only those pixels are
    looked at, not the whole tile)."""
    width = cur_labels.shape[1]
    p = prev_labels.ravel()
    c = cur_labels.ravel()
    if cur_index is None:
        idx = np.flatnonzero((p != 0) & (c != 0))
    else:
        idx = cur_index[p[cur_index] != 0]
    if idx.size == 0:
        return empty_overlaps()
    pl = p[idx].astype(np.int64)
    cl = c[idx].astype(np.int64)
    key = pl * (int(cl.max()) + 1) + cl  # sorts as (prev, cur) pairs; the overlapping labels' max is enough
    ukey, first, counts = np.unique(key, return_index=True, return_counts=True)
    lin = _job_index(idx[first], width, row0, col0, job_width)
    return {
        "step": np.full(ukey.size, step, np.int32),
        "prev_label": pl[first].astype(np.int32),
        "cur_label": cl[first].astype(np.int32),
        "overlap": counts.astype(np.int64),
        "first_overlap_index": lin,
    }


def overlap_pieces(prev_labels: np.ndarray, cur_labels: np.ndarray, step: int, row0: int, col0: int,
                   job_width: int, connectivity: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The pieces of every overlap on one tile: connected components of the pixels in both steps.

    A piece lies inside one component of each step (it is connected and every pixel is in both
    masks), so each row names its pair ``(prev_label, cur_label)``. Returns the piece labels (for
    seam strips: a piece cut by a seam is joined again in the reduce) and the table.
    """
    both = (prev_labels != 0) & (cur_labels != 0)
    pieces, n = label(both, connectivity)
    if n == 0:
        return pieces, empty_pieces()
    width = pieces.shape[1]
    flat = pieces.ravel()
    idx = np.flatnonzero(flat)
    order, ulab, starts = _grouped(flat[idx])
    first = idx[order][starts]  # raster order inside a label: its first pixel
    lin = _job_index(first, width, row0, col0, job_width)
    return pieces, {
        "step": np.full(n, step, np.int32),
        "piece": ulab.astype(np.int32),
        "prev_label": prev_labels.ravel()[first].astype(np.int32),
        "cur_label": cur_labels.ravel()[first].astype(np.int32),
        "size": np.diff(np.r_[starts, idx.size]).astype(np.int64),
        "first_index": lin,
    }


SIDES = ("top", "bottom", "left", "right")


def seam_lines(labels: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """The labelled pixels on the four edges of a tile at ``step``, sparse: for each side,
    ``<side>_step``, ``<side>_pos`` (position along the edge) and ``<side>_label`` of every
    nonzero edge pixel, and ``<side>_length`` (the edge's length).

    Only labelled pixels are kept: at the usual few percent coverage a dense edge per step is
    mostly zeros, and over a multi-year job the dense edges were most of the reduce's memory
    (``benchmarks/bench_serial.py``)."""
    edges = {"top": labels[0, :], "bottom": labels[-1, :], "left": labels[:, 0], "right": labels[:, -1]}
    out = {}
    for side, line in edges.items():
        pos = np.flatnonzero(line)
        out[f"{side}_step"] = np.full(pos.size, step, np.int32)
        out[f"{side}_pos"] = pos.astype(np.int32)
        out[f"{side}_label"] = line[pos].astype(np.int32)
        out[f"{side}_length"] = np.array([line.size], np.int64)
    return out


def join_lines(lines: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One tile's :func:`seam_lines` of several steps (or blocks) as one table."""
    out = {}
    for side in SIDES:
        for col in ("step", "pos", "label"):
            out[f"{side}_{col}"] = np.concatenate([x[f"{side}_{col}"] for x in lines])
        out[f"{side}_length"] = lines[0][f"{side}_length"]
    return out


def concat_tables(tables: list[dict[str, np.ndarray]], empty: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not tables:
        return empty
    return {k: np.concatenate([t[k] for t in tables]) for k in empty}


def gather_chunk_tables(chunks, with_pieces: bool) -> dict:
    """Join the tables of every chunk of a job for ``tracking.resolve``.

    ``chunks`` yields ``(tile id, (tile row, tile col), tables)`` in ascending chunk order
    (block-major, so each tile's strips stack in time order); ``tables`` holds a chunk's
    ``components``, ``overlaps`` and ``strips`` (and ``pieces``, ``piece_strips`` when
    ``with_pieces``). Returns the joined ``components``, ``overlaps`` and ``pieces`` (each with a
    ``tile`` column) and the ``strips`` and ``piece_strips`` of each tile (its
    :func:`seam_lines` over all steps; None without pieces).
    """
    names = ("components", "overlaps") + (("pieces",) if with_pieces else ())
    parts: dict[str, list] = {n: [] for n in names}
    strips: dict = {"strips": {}, "piece_strips": {}}
    for tile_id, ij, tables in chunks:
        for name in names:
            t = dict(tables[name])
            t["tile"] = np.full(t["step"].size, tile_id, np.int32)
            parts[name].append(t)
        for kind in ("strips", "piece_strips") if with_pieces else ("strips",):
            strips[kind].setdefault(ij, []).append(tables[kind])
    empty = {"components": empty_components(), "overlaps": empty_overlaps(), "pieces": empty_pieces()}
    out = {n: concat_tables(parts[n], dict(empty[n], tile=np.zeros(0, np.int32))) for n in names}
    out["pieces"] = out.get("pieces")
    out["strips"] = {ij: join_lines(parts) for ij, parts in strips["strips"].items()}
    out["piece_strips"] = {ij: join_lines(parts) for ij, parts in strips["piece_strips"].items()} if with_pieces \
        else None
    return out
