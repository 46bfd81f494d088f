"""ForTraCC linking of per-step components into anomalies (SPEC section 5, exactly).

Works on tables only: per step the components' areas (already filtered by ``min_size`` and
ordered by ``first_index``) and the overlap pairs between consecutive steps.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

INITIATION = "initiation"
CONTINUATION = "continuation"
MERGE = "continuation - merge"
SPLIT = "continuation - split"
DISSIPATION = "dissipation"
DISSIPATION_MERGE = "dissipation - merge"
INITIATION_SPLIT = "initiation - split"
TAGS = (INITIATION, CONTINUATION, MERGE, SPLIT, DISSIPATION, DISSIPATION_MERGE, INITIATION_SPLIT)
CODE = {tag: np.int8(k) for k, tag in enumerate(TAGS)}
"""A tag's code: its position in ``TAGS`` (how tables store tags)."""


OVERLAP_FRACTIONS = ("exact", "tos2ca")


@dataclass
class StepOverlaps:
    """Overlaps between step s-1 (``prev``) and step s (``cur``), indices into each step.

    ``forward``/``backward``, when given, are the fractions used when the earlier component
    looks forward (splits, continuations from it) and when the later one looks back (merges,
    continuations into it); by default both are ``overlap / area(prev)`` (SPEC 5.2).
    """

    prev: np.ndarray
    cur: np.ndarray
    overlap: np.ndarray
    first_overlap_index: np.ndarray
    forward: np.ndarray | None = None
    backward: np.ndarray | None = None


def tos2ca_fractions(overlap: np.ndarray, prev_area: np.ndarray, n_pieces: np.ndarray,
                     first_piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published TOS2CA module's fractions of a pair (SPEC 5.5), all arguments per pair.

    Forward ``o / (k * area(p))``; backward ``o / (area(p) + o - o_1)``, where ``k`` pieces hold
    ``o`` overlap pixels and ``o_1`` is the size of the first piece in raster order. With one
    piece both equal the exact ``o / area(p)``.
    """
    o = overlap.astype(np.float64)
    a = prev_area.astype(np.float64)
    return o / (n_pieces * a), o / (a + o - first_piece)


@dataclass
class Tracks:
    """Per step: anomaly id (1-based) and tag code (``TAGS`` index) of every component, in
    component order."""

    anomaly_id: list[np.ndarray]
    tag_code: list[np.ndarray]
    n_anomalies: int
    events: list[tuple[int, str, int, int]] | None = None
    """``(step, "merge" | "split", anomaly, partner)``: at ``step`` anomaly ``partner`` merged into
    ``anomaly`` (its last step was step - 1), or split off ``anomaly`` (its first step)."""

    @property
    def tag(self) -> list[list[str]]:
        return [[TAGS[c] for c in codes] for codes in self.tag_code]


@dataclass
class LinkStart:
    """Where an earlier linking stopped, to continue it (a sync): its last step's anomaly ids and
    tag codes, in component order, and how many anomalies it had. That step is step 0 of the
    continued linking; its tags may change (an anomaly that continued may now dissipate)."""

    anomaly_id: np.ndarray
    tag_code: np.ndarray
    n_anomalies: int


def _best(mapped: list[tuple[int, int, float]]) -> int:
    """Position of the largest frac; the first in partner order wins ties."""
    best = 0
    for k in range(1, len(mapped)):
        if mapped[k][2] > mapped[best][2]:
            best = k
    return best


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off while linking builds one small list per component (tens
    of millions on a multi-year job, none of them cyclic): its passes over them were a third of
    the reduce's time at 100,000 steps (``benchmarks/bench_serial.py``). Restored afterwards."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def link(areas: list[np.ndarray], overlaps: list[StepOverlaps | None], min_overlap: float,
         start: LinkStart | None = None, shortcut: bool = True) -> Tracks:
    """Track components through time. ``overlaps[s]`` links step s-1 to s (``overlaps[0]`` unused).

    With ``start``, step 0 is the last step of an earlier linking: its ids are taken as they
    were, and linking goes on from there exactly as one linking over the whole range would
    (series are numbered in the order they begin, and only step s-1's tags change at step s).

    Why it is exact and fast: a component's decision reads and consumes only its partners (the
    components it shares a passing overlap with), so each group of components joined by
    passing overlaps between two steps is decided alone, in the pool's order restricted to it.
    Most groups are one component (an initiation or a dissipation) or one pair (a
    continuation, or not, by the direction of whichever of the two comes first in the pool):
    those are decided with array operations; only groups of three or more (merges, splits) go
    through the pool loop. New series are then numbered in the order the pool creates them, as
    one pass over the whole pool would. ``shortcut=False`` sends every group through the loop
    (how ``tests/test_fortracc.py`` holds the shortcut to it)."""
    with _collector_paused():
        return _link(areas, overlaps, min_overlap, start, shortcut)


def _pool_ranks(cur_area: np.ndarray, prev_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each component's position in the pool: largest area first; ties: step s before s-1, then
    the later component first."""
    n_cur, n_prev = cur_area.size, prev_area.size
    area = np.r_[cur_area, prev_area].astype(np.int64)
    side = np.r_[np.zeros(n_cur, np.int8), np.ones(n_prev, np.int8)]
    k = np.r_[np.arange(n_cur), np.arange(n_prev)]
    order = np.lexsort((-k, side, -area))
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank[:n_cur], rank[n_cur:]


def _link(areas: list[np.ndarray], overlaps: list[StepOverlaps | None], min_overlap: float,
          start: LinkStart | None, shortcut: bool) -> Tracks:
    ids = [np.zeros(a.size, np.int32) for a in areas]
    tags = [np.zeros(a.size, np.int8) for a in areas]
    n_series = 0
    first = 0
    events: list[tuple[int, str, int, int]] = []
    if start is not None and areas:
        if start.anomaly_id.size != areas[0].size:
            raise ValueError(f"the earlier linking's last step has {start.anomaly_id.size} components, this "
                             f"step 0 has {areas[0].size}")
        ids[0][:] = start.anomaly_id
        tags[0][:] = start.tag_code
        n_series = int(start.n_anomalies)
        first = 1
    empty = StepOverlaps(*(np.zeros(0, np.int64) for _ in range(4)))
    for s in range(first, len(areas)):
        cur_area = areas[s]
        prev_area = areas[s - 1] if s > 0 else np.zeros(0, np.int64)
        ov = (overlaps[s] if s > 0 else None) or empty
        prev_ids = ids[s - 1] if s > 0 else np.zeros(0, np.int32)
        prev_tags = tags[s - 1] if s > 0 else np.zeros(0, np.int8)
        n_series = _link_step(s, cur_area, prev_area, ov, min_overlap, prev_ids, prev_tags, ids[s], tags[s],
                              n_series, events, shortcut)
    return Tracks(anomaly_id=ids, tag_code=tags, n_anomalies=n_series, events=events)


def _link_step(s, cur_area, prev_area, ov, min_overlap, prev_ids, prev_tags, cur_ids, cur_tags, n_series,
               events, shortcut) -> int:
    """Link step s-1 to step s: fills ``cur_ids``/``cur_tags``, changes ``prev_tags`` (dissipations),
    appends merges and splits to ``events``; returns the number of series after step s."""
    n_cur, n_prev = cur_area.size, prev_area.size
    frac = ov.overlap / prev_area[ov.prev] if ov.prev.size else np.zeros(0)
    forward = frac if ov.forward is None else ov.forward
    backward = frac if ov.backward is None else ov.backward
    fwd, bwd = forward >= min_overlap, backward >= min_overlap
    edge = fwd | bwd  # the pairs that join two components into one group
    ep, ec = ov.prev[edge].astype(np.int64), ov.cur[edge].astype(np.int64)
    deg_prev = np.bincount(ep, minlength=n_prev)
    deg_cur = np.bincount(ec, minlength=n_cur)
    rank_cur, rank_prev = _pool_ranks(cur_area, prev_area)
    loop_prev = deg_prev > 0
    loop_cur = deg_cur > 0
    born = [np.flatnonzero(deg_cur == 0)]  # new series: components of step s that begin one
    if shortcut:
        pair = (deg_prev[ep] == 1) & (deg_cur[ec] == 1)
        pp, pc = ep[pair], ec[pair]
        cur_first = cur_area[pc] >= prev_area[pp]  # equal areas: step s comes first
        linked = np.where(cur_first, bwd[edge][pair], fwd[edge][pair])
        cur_ids[pc[linked]] = prev_ids[pp[linked]]
        cur_tags[pc[linked]] = CODE[CONTINUATION]
        prev_tags[pp[~linked]] = CODE[DISSIPATION]
        loop_prev[pp] = False
        loop_cur[pc] = False
        born.append(pc[~linked])
    prev_tags[deg_prev == 0] = CODE[DISSIPATION]
    born_c = np.concatenate(born)
    # Each new series keyed by (pool rank of the component whose decision made it, its place
    # among that decision's new series): the order one pass over the pool numbers them in.
    born_rank, born_sub = rank_cur[born_c], np.zeros(born_c.size, np.int64)
    split_events: list[tuple[int, int, int]] = []
    if loop_prev.any() or loop_cur.any():
        made: list[tuple[int, int, int]] = []
        _pool_loop(ov, forward, backward, min_overlap, loop_prev, loop_cur, rank_cur, rank_prev, prev_ids,
                   prev_tags, cur_ids, cur_tags, made, events, split_events, s)
        if made:
            extra = np.array(made, np.int64)
            born_rank, born_sub = np.r_[born_rank, extra[:, 0]], np.r_[born_sub, extra[:, 1]]
            born_c = np.r_[born_c, extra[:, 2]]
    order = np.lexsort((born_sub, born_rank))
    new_ids = np.empty(n_cur, np.int64)
    new_ids[born_c[order]] = n_series + 1 + np.arange(order.size)
    cur_ids[born_c] = new_ids[born_c]
    cur_tags[born_c] = np.where(born_sub > 0, CODE[INITIATION_SPLIT], CODE[INITIATION])
    for at, into, c in split_events:  # a split's partner is the series it started
        events[at] = (s, "split", into, int(new_ids[c]))
    return n_series + born_c.size


def _pool_loop(ov, forward, backward, min_overlap, loop_prev, loop_cur, rank_cur, rank_prev, prev_ids, prev_tags,
               cur_ids, cur_tags, created, events, split_events, s) -> None:
    """The pool's decisions for the components in groups of three or more (``loop_prev``,
    ``loop_cur``), in pool order, exactly as SPEC section 5 reads."""
    sel = np.flatnonzero(loop_prev[ov.prev] | loop_cur[ov.cur])
    sel = sel[np.argsort(ov.first_overlap_index[sel], kind="stable")]
    of_prev: dict[int, list[tuple[int, int, float]]] = {}
    of_cur: dict[int, list[tuple[int, int, float]]] = {}
    for k in sel.tolist():
        p, c, i = int(ov.prev[k]), int(ov.cur[k]), int(ov.first_overlap_index[k])
        if forward[k] >= min_overlap:
            of_prev.setdefault(p, []).append((i, c, float(forward[k])))
        if backward[k] >= min_overlap:
            of_cur.setdefault(c, []).append((i, p, float(backward[k])))
    in_prev, in_cur = loop_prev.copy(), loop_cur.copy()
    cur_k, prev_k = np.flatnonzero(loop_cur), np.flatnonzero(loop_prev)
    pool = sorted([(int(rank_cur[c]), True, int(c)) for c in cur_k] + [(int(rank_prev[p]), False, int(p))
                                                                      for p in prev_k])
    for rank, is_cur, e in pool:
        if is_cur:
            if not in_cur[e]:
                continue
            mapped = [m for m in of_cur.get(e, ()) if in_prev[m[1]]]
            in_cur[e] = False
            if not mapped:
                created.append((rank, 0, e))
            elif len(mapped) == 1:
                cur_ids[e], cur_tags[e] = prev_ids[mapped[0][1]], CODE[CONTINUATION]
            else:
                best = _best(mapped)
                into = int(prev_ids[mapped[best][1]])
                for k, (_, p, _) in enumerate(mapped):
                    if k == best:
                        cur_ids[e], cur_tags[e] = into, CODE[MERGE]
                    else:
                        prev_tags[p] = CODE[DISSIPATION_MERGE]
                        events.append((s, "merge", into, int(prev_ids[p])))
            for _, p, _ in mapped:
                in_prev[p] = False
        else:
            if not in_prev[e]:
                continue
            mapped = [m for m in of_prev.get(e, ()) if in_cur[m[1]]]
            in_prev[e] = False
            sid = int(prev_ids[e])
            if not mapped:
                prev_tags[e] = CODE[DISSIPATION]
            elif len(mapped) == 1:
                cur_ids[mapped[0][1]], cur_tags[mapped[0][1]] = sid, CODE[CONTINUATION]
            else:
                best = _best(mapped)
                n_new = 0
                for k, (_, c, _) in enumerate(mapped):
                    if k == best:
                        cur_ids[c], cur_tags[c] = sid, CODE[SPLIT]
                    else:
                        n_new += 1
                        created.append((rank, n_new, c))
                        split_events.append((len(events), sid, c))
                        events.append((s, "split", sid, 0))
            for _, c, _ in mapped:
                in_cur[c] = False
