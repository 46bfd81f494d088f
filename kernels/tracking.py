"""The reduce: join components across tile seams, filter, link with ForTraCC.

Input is every chunk's tables, never pixels. A *node* is one (step, tile, local label); a
*component* is a set of nodes joined across seams; an *anomaly* is a ForTraCC series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tos2ca_batch.kernels.fortracc import OVERLAP_FRACTIONS, TAGS, LinkStart, StepOverlaps, link, tos2ca_fractions
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
    tag_code: np.ndarray
    n_anomalies: int
    node_base: np.ndarray
    node_count: np.ndarray
    node_anomaly: np.ndarray
    events: dict[str, np.ndarray] | None = None
    """Merges and splits with their partners: ``step``, ``kind`` (0 merge, 1 split), ``anomaly_id``
    (the one that goes on), ``partner_id`` (the one merged into it, or split off it)."""

    @property
    def tags(self) -> list[str]:
        return [TAGS[c] for c in self.tag_code]

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
    halo: bool = False,
) -> Resolved:
    """Global components and anomalies from per-chunk tables.

    ``components``, ``overlaps`` (and ``pieces``) carry a ``tile`` column (tile = i * n_tile_cols
    + j); ``strips[(i, j)]`` is tile (i, j)'s seam lines over all steps
    (``components.seam_lines``: its edges' labelled pixels, sparse). The
    ``"tos2ca"`` overlap fraction needs the overlap ``pieces`` and their ``piece_strips``.
    ``start`` continues an earlier linking whose last step is step 0 here (see ``link``).
    ``keep(value_min, value_max)``, if given, says which joined components count besides
    ``min_size`` (an operator's component rule, e.g. hysteresis: the component holds a core).
    ``halo``: step 0 is the last step of the time block before (its components and seam lines
    only), linked from as if its components had the ids 1..n and tag code -1 (unchanged); the
    block's new series follow from n + 1 (:class:`Stitch` makes them the job's ids).
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
    if halo:
        n0 = int(step_starts[1]) if n_steps else 0
        start = LinkStart(np.arange(1, n0 + 1, dtype=np.int32), np.full(n0, -1, np.int8), n0)
    tracks = link(areas, step_overlaps, min_overlap, start)
    table["anomaly_id"] = (
        np.concatenate(tracks.anomaly_id) if tracks.anomaly_id else np.zeros(0, np.int32)
    )
    tag_code = np.concatenate(tracks.tag_code) if tracks.tag_code else np.zeros(0, np.int8)

    anomaly_of_comp = np.r_[table["anomaly_id"], 0].astype(np.int32)
    node_anomaly = anomaly_of_comp[comp_of_node] if n_nodes else np.zeros(0, np.int32)
    ev = tracks.events or []
    return Resolved(
        components=table,
        tag_code=tag_code,
        n_anomalies=tracks.n_anomalies,
        node_base=node_base,
        node_count=node_count,
        node_anomaly=node_anomaly,
        events={"step": np.array([e[0] for e in ev], np.int64),
                "kind": np.array([0 if e[1] == "merge" else 1 for e in ev], np.int8),
                "anomaly_id": np.array([e[2] for e in ev], np.int32),
                "partner_id": np.array([e[3] for e in ev], np.int32)},
    )


class Stitch:
    """One linking from time blocks linked apart, in order: the first block by ``resolve`` (from
    a sync's ``start``, if any), every later one by ``resolve(..., halo=True)`` with the block
    before's last step as its step 0.

    Why it is exact: ForTraCC looks one step back, and its decisions at a step depend on the
    areas and overlaps of two steps only, never on the ids (ids are carried, and new series
    are numbered in the order they begin). A block linked from placeholder ids 1..n at its halo
    step therefore makes the same decisions as one linking over the job; its placeholder ids
    become the ids the block before gave its last step, and its own new series follow the
    block before's count. The halo step's tags as the block leaves them (dissipations, merges)
    are the block before's last tags: a block's table is handed out when the next one arrives
    (or at :meth:`finish`).
    """

    def __init__(self) -> None:
        self.n_anomalies = 0
        self._last_ids: np.ndarray | None = None  # job ids of the block before's last step, in order
        self._pending: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    def add(self, res: Resolved, first_step: int, halo: bool) -> tuple[np.ndarray, tuple | None]:
        """Take one block's ``res`` (its step 0 is job step ``first_step``). Returns the job id
        of each of the block's nodes (``res.node_anomaly`` translated) and the block before's
        finished ``(components, events)`` tables (None for the first block)."""
        ids = res.components["anomaly_id"].astype(np.int64)
        step = res.components["step"].astype(np.int64)
        n_steps = res.node_base.shape[0]
        if halo:
            n0 = int(np.count_nonzero(step == 0))
            last = self._last_ids if self._last_ids is not None else np.zeros(0, np.int32)
            if last.size != n0:
                raise ValueError(f"block at step {first_step}: its halo step has {n0} components, the block "
                                 f"before's last step {last.size}")
            n_new = res.n_anomalies - n0
            trans = np.r_[0, last, self.n_anomalies + np.arange(1, n_new + 1)].astype(np.int32)
            self.n_anomalies += n_new
        else:
            if self._last_ids is not None:
                raise ValueError("only the first block is linked without a halo step")
            trans = np.arange(res.n_anomalies + 1, dtype=np.int32)
            self.n_anomalies = res.n_anomalies
        job_ids = trans[ids]
        tag = res.tag_code.copy()
        finished = None
        if halo:
            patch, own = tag[step == 0], step > 0
            table, events = self._pending
            rows = np.flatnonzero(table["step"] == first_step)
            table["tag"][rows] = np.where(patch >= 0, patch, table["tag"][rows])
            finished = (table, events)
        else:
            own = np.ones(step.size, bool)
        table = {k: v[own] for k, v in res.components.items()}
        table["step"] = table["step"] + first_step
        table["anomaly_id"] = job_ids[own]
        table["tag"] = tag[own]
        ev = res.events
        events = {"step": ev["step"] + first_step, "kind": ev["kind"], "anomaly_id": trans[ev["anomaly_id"]],
                  "partner_id": trans[ev["partner_id"]]}
        self._pending = (table, events)
        self._last_ids = job_ids[step == n_steps - 1]
        return trans[res.node_anomaly], finished

    def finish(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The last block's ``(components, events)``."""
        if self._pending is None:
            raise ValueError("no block was added")
        out, self._pending = self._pending, None
        return out


def block_tables(gathered: dict, t0: int, t1: int, halo: bool) -> dict:
    """The rows of ``gathered`` (``components.gather_chunk_tables``' output, covering at least
    steps ``t0 - halo`` to ``t1``) that ``resolve`` needs for the time block ``t0:t1``, steps
    renumbered from 0. With ``halo``, step 0 is step ``t0 - 1``: its components and seam lines
    only (its overlaps and pieces link it to a step before, which this block does not link)."""
    lo = t0 - 1 if halo else t0

    def rows(table, first):
        if table is None:
            return None
        s = table["step"]
        keep = (s >= first) & (s < t1)
        out = {k: v[keep] for k, v in table.items()}
        out["step"] = (out["step"] - lo).astype(table["step"].dtype)
        return out

    def lines(strips, first):
        if strips is None:
            return None
        out = {}
        for ij, table in strips.items():
            out[ij] = {}
            for side in ("top", "bottom", "left", "right"):
                s = table[f"{side}_step"]
                keep = (s >= first) & (s < t1)
                out[ij][f"{side}_step"] = (s[keep] - lo).astype(s.dtype)
                out[ij][f"{side}_pos"] = table[f"{side}_pos"][keep]
                out[ij][f"{side}_label"] = table[f"{side}_label"][keep]
                out[ij][f"{side}_length"] = table[f"{side}_length"]
        return out

    return {"components": rows(gathered["components"], lo), "overlaps": rows(gathered["overlaps"], t0),
            "pieces": rows(gathered.get("pieces"), t0), "strips": lines(gathered["strips"], lo),
            "piece_strips": lines(gathered.get("piece_strips"), t0)}
