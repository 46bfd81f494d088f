"""The reduce: join components across tile seams, filter, link with ForTraCC.

Input is every chunk's tables, never pixels. A *node* is one (step, tile, local label); a
*component* is a set of nodes joined across seams; an *anomaly* is a ForTraCC series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tos2ca_batch.kernels.fortracc import OVERLAP_FRACTIONS, LinkStart, StepOverlaps, link, tos2ca_fractions
from tos2ca_batch.kernels.seams import seam_edges
from tos2ca_batch.kernels.unionfind import join


@dataclass
class Resolved:
    """Result of the reduce.

    ``components``: kept components ordered by (step, first_index) with their merged
    statistics, ``anomaly_id`` and ``tag``. ``node_base[step, tile]`` and ``node_count`` locate
    a tile's local labels in ``node_anomaly`` (anomaly id per node, 0 = not kept).
    """

    components: dict[str, np.ndarray]
    tags: list[str]
    n_anomalies: int
    node_base: np.ndarray
    node_count: np.ndarray
    node_anomaly: np.ndarray
    events: dict[str, np.ndarray] | None = None
    """Merges and splits with their partners: ``step``, ``kind`` (0 merge, 1 split), ``anomaly_id``
    (the one that goes on), ``partner_id`` (the one merged into it, or split off it)."""

    def lookup(self, step: int, tile: int) -> np.ndarray:
        """Local label -> anomaly id for one (step, tile); index 0 is background."""
        b, n = self.node_base[step, tile], self.node_count[step, tile]
        return np.concatenate([[0], self.node_anomaly[b : b + n]]).astype(np.int32)


def _group_reduce(keys: np.ndarray, columns: dict[str, tuple[np.ndarray, np.ufunc]]):
    """Sort by ``keys`` and reduce each column with its ufunc; returns unique keys and columns."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if sk.size else np.zeros(0, np.int64)
    out = {}
    for name, (col, ufunc) in columns.items():
        out[name] = ufunc.reduceat(col[order], starts) if sk.size else col[:0]
    return sk[starts] if sk.size else sk, out


def _nodes(table: dict[str, np.ndarray], local: str, n_steps: int, n_tiles: int):
    """Sort a per-tile table by (step, tile, local label); number its rows as nodes.

    Returns the sorted table and ``node_base[step, tile]``, the node id of local label 1.
    """
    order = np.lexsort((table[local], table["tile"], table["step"]))
    rows = {k: v[order] for k, v in table.items()}
    count = np.zeros((n_steps, n_tiles), np.int64)
    np.add.at(count, (rows["step"], rows["tile"]), 1)
    base = (np.cumsum(count.ravel()) - count.ravel()).reshape(n_steps, n_tiles)
    return rows, base, count


def _join_across_seams(strips, node_base, n_nodes, n_tile_rows, n_tile_cols, connectivity, wrap) -> np.ndarray:
    """Root per node after joining nodes that touch across a seam (``strips``: each tile's seam
    lines, local labels)."""
    node_lines = {}
    for (i, j), table in strips.items():
        tile = i * n_tile_cols + j
        node_lines[(i, j)] = {}
        for side in ("top", "bottom", "left", "right"):
            step, label = table[f"{side}_step"].astype(np.int64), table[f"{side}_label"].astype(np.int64)
            node = node_base[step, tile] + label - 1 if step.size else step
            node_lines[(i, j)][side] = (step, table[f"{side}_pos"], node, int(table[f"{side}_length"][0]))
    ea, eb = seam_edges(node_lines, n_tile_rows, n_tile_cols, connectivity, wrap)
    return join(n_nodes, ea, eb)


def _piece_counts(pieces, piece_strips, comp_base, comp_of_node, n_kept, pair_keys, n_steps, n_tile_rows,
                  n_tile_cols, connectivity, wrap) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of ``pair_keys``: the number of pieces and the size of the first piece.

    Pieces cut by seams (or the wrap) are joined first, exactly like components, so both
    numbers are the same for every chunking.
    """
    rows, base, count = _nodes(pieces, "piece", n_steps, n_tile_rows * n_tile_cols)
    root = _join_across_seams(piece_strips, base, int(count.sum()), n_tile_rows, n_tile_cols, connectivity, wrap)
    s, t = rows["step"].astype(np.int64), rows["tile"].astype(np.int64)
    pc = comp_of_node[comp_base[s - 1, t] + rows["prev_label"] - 1] if s.size else s
    cc = comp_of_node[comp_base[s, t] + rows["cur_label"] - 1] if s.size else s
    pair = np.where((pc >= 0) & (cc >= 0), pc * max(n_kept, 1) + cc, -1)
    _, merged = _group_reduce(root, {  # one row per whole piece; its nodes share one pair
        "pair": (pair, np.maximum), "size": (rows["size"], np.add), "first_index": (rows["first_index"], np.minimum),
    })
    keep = merged["pair"] >= 0
    pair, size, first = merged["pair"][keep], merged["size"][keep], merged["first_index"][keep]
    order = np.lexsort((first, pair))
    pair, size = pair[order], size[order]
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if pair.size else np.zeros(0, np.int64)
    n_pieces = np.diff(np.r_[starts, pair.size])
    found = pair[starts]
    where = np.searchsorted(found, pair_keys)
    if np.any(where >= found.size) or not np.array_equal(found[where], pair_keys):
        raise ValueError("overlap pieces do not cover every overlap pair (map tables of another chunking?)")
    return n_pieces[where], size[starts][where]


def resolve(
    components: dict[str, np.ndarray],
    overlaps: dict[str, np.ndarray],
    strips: dict[tuple[int, int], dict[str, np.ndarray]],
    n_steps: int,
    n_tile_rows: int,
    n_tile_cols: int,
    connectivity: int,
    wrap: bool,
    min_size: int,
    min_overlap: float,
    overlap_fraction: str = "exact",
    pieces: dict[str, np.ndarray] | None = None,
    piece_strips: dict[tuple[int, int], dict[str, np.ndarray]] | None = None,
    start: LinkStart | None = None,
    keep=None,
) -> Resolved:
    """Global components and anomalies from per-chunk tables.

    ``components``, ``overlaps`` (and ``pieces``) carry a ``tile`` column (tile = i * n_tile_cols
    + j); ``strips[(i, j)]`` is tile (i, j)'s seam lines over all steps
    (``components.seam_lines``: its edges' labelled pixels, sparse). The
    ``"tos2ca"`` overlap fraction needs the overlap ``pieces`` and their ``piece_strips``.
    ``start`` continues an earlier linking whose last step is step 0 here (see ``link``).
    ``keep(value_min, value_max)``, if given, says which joined components count besides
    ``min_size`` (an operator's component rule, e.g. hysteresis: the component holds a core).
    """
    if overlap_fraction not in OVERLAP_FRACTIONS:
        raise ValueError(f"overlap_fraction must be one of {OVERLAP_FRACTIONS}, got {overlap_fraction!r}")
    n_tiles = n_tile_rows * n_tile_cols
    comps, node_base, node_count = _nodes(components, "label", n_steps, n_tiles)
    n_nodes = int(node_count.sum())
    root = _join_across_seams(strips, node_base, n_nodes, n_tile_rows, n_tile_cols, connectivity, wrap)

    roots, merged = _group_reduce(root, {
        "step": (comps["step"].astype(np.int64), np.minimum),
        "area": (comps["area"], np.add),
        "first_index": (comps["first_index"], np.minimum),
        "min_row": (comps["min_row"], np.minimum),
        "min_col": (comps["min_col"], np.minimum),
        "max_row": (comps["max_row"], np.maximum),
        "max_col": (comps["max_col"], np.maximum),
        "sum_row": (comps["sum_row"], np.add),
        "sum_col": (comps["sum_col"], np.add),
        "sum_col_half": (comps["sum_col_half"], np.add),
        "value_min": (comps["value_min"], np.minimum),
        "value_max": (comps["value_max"], np.maximum),
    })
    # Kept components ordered by (step, first_index): position = global component index.
    big = merged["area"] >= min_size
    if keep is not None:
        big &= keep(merged["value_min"], merged["value_max"])
    kept = np.flatnonzero(big)
    kept = kept[np.lexsort((merged["first_index"][kept], merged["step"][kept]))]
    comp_of_root = np.full(roots.size, -1, np.int64)
    comp_of_root[kept] = np.arange(kept.size)
    table = {k: v[kept] for k, v in merged.items()}
    step_starts = np.searchsorted(table["step"], np.arange(n_steps + 1))
    comp_of_node = comp_of_root[root] if n_nodes else np.zeros(0, np.int64)

    # Overlaps between global components.
    ov = overlaps
    s_cur = ov["step"].astype(np.int64)
    t = ov["tile"].astype(np.int64)
    pn = node_base[s_cur - 1, t] + ov["prev_label"] - 1 if s_cur.size else s_cur
    cn = node_base[s_cur, t] + ov["cur_label"] - 1 if s_cur.size else s_cur
    pc, cc = comp_of_node[pn], comp_of_node[cn]
    ok = (pc >= 0) & (cc >= 0)
    pair_key = pc[ok] * max(kept.size, 1) + cc[ok]
    keys, agg = _group_reduce(pair_key, {
        "overlap": (ov["overlap"][ok], np.add),
        "first_overlap_index": (ov["first_overlap_index"][ok], np.minimum),
    })
    pair_prev = keys // max(kept.size, 1)
    pair_cur = keys % max(kept.size, 1)
    pair_step = table["step"][pair_cur] if keys.size else np.zeros(0, np.int64)
    forward = backward = None
    if overlap_fraction == "tos2ca":
        n_pieces, first_piece = _piece_counts(pieces, piece_strips, node_base, comp_of_node, kept.size, keys,
                                              n_steps, n_tile_rows, n_tile_cols, connectivity, wrap)
        forward, backward = tos2ca_fractions(agg["overlap"], table["area"][pair_prev], n_pieces, first_piece)

    areas, step_overlaps = [], []
    # Each step's pairs in key order, found once for all steps (a scan per step was quadratic).
    by_step = np.argsort(pair_step, kind="stable")
    pair_bounds = np.searchsorted(pair_step[by_step], np.arange(n_steps + 1))
    for s in range(n_steps):
        lo, hi = step_starts[s], step_starts[s + 1]
        areas.append(table["area"][lo:hi])
        sel = by_step[pair_bounds[s]:pair_bounds[s + 1]]
        if s == 0:
            step_overlaps.append(None)
            continue
        prev_lo = step_starts[s - 1]
        step_overlaps.append(StepOverlaps(
            prev=pair_prev[sel] - prev_lo,
            cur=pair_cur[sel] - lo,
            overlap=agg["overlap"][sel],
            first_overlap_index=agg["first_overlap_index"][sel],
            forward=None if forward is None else forward[sel],
            backward=None if backward is None else backward[sel],
        ))
    tracks = link(areas, step_overlaps, min_overlap, start)
    table["anomaly_id"] = (
        np.concatenate(tracks.anomaly_id) if tracks.anomaly_id else np.zeros(0, np.int32)
    )
    tags = [tag for step_tags in tracks.tag for tag in step_tags]

    anomaly_of_comp = np.r_[table["anomaly_id"], 0].astype(np.int32)
    node_anomaly = anomaly_of_comp[comp_of_node] if n_nodes else np.zeros(0, np.int32)
    ev = tracks.events or []
    return Resolved(
        components=table,
        tags=tags,
        n_anomalies=tracks.n_anomalies,
        node_base=node_base,
        node_count=node_count,
        node_anomaly=node_anomaly,
        events={"step": np.array([e[0] for e in ev], np.int64),
                "kind": np.array([0 if e[1] == "merge" else 1 for e in ev], np.int8),
                "anomaly_id": np.array([e[2] for e in ev], np.int32),
                "partner_id": np.array([e[3] for e in ev], np.int32)},
    )
