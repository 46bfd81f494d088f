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
    """Per step: anomaly id (1-based) and tag of every component, in component order."""

    anomaly_id: list[np.ndarray]
    tag: list[list[str]]
    n_anomalies: int
    events: list[tuple[int, str, int, int]] | None = None
    """``(step, "merge" | "split", anomaly, partner)``: at ``step`` anomaly ``partner`` merged into
    ``anomaly`` (its last step was step - 1), or split off ``anomaly`` (its first step)."""


@dataclass
class LinkStart:
    """Where an earlier linking stopped, to continue it (a sync): its last step's anomaly ids and
    tags, in component order, and how many anomalies it had. That step is step 0 of the
    continued linking; its tags may change (an anomaly that continued may now dissipate)."""

    anomaly_id: np.ndarray
    tag: list[str]
    n_anomalies: int


def _partners(ov: StepOverlaps, prev_area: np.ndarray, min_overlap: float, n_prev: int, n_cur: int):
    """Partner lists ``[(first_overlap_index, other, frac)]`` ordered by first_overlap_index."""
    of_prev: list[list[tuple[int, int, float]]] = [[] for _ in range(n_prev)]
    of_cur: list[list[tuple[int, int, float]]] = [[] for _ in range(n_cur)]
    frac = ov.overlap / prev_area[ov.prev] if ov.prev.size else np.zeros(0)
    forward = frac if ov.forward is None else ov.forward
    backward = frac if ov.backward is None else ov.backward
    order = np.argsort(ov.first_overlap_index, kind="stable")
    for k in order:
        p, c, i = int(ov.prev[k]), int(ov.cur[k]), int(ov.first_overlap_index[k])
        if forward[k] >= min_overlap:
            of_prev[p].append((i, c, float(forward[k])))
        if backward[k] >= min_overlap:
            of_cur[c].append((i, p, float(backward[k])))
    return of_prev, of_cur


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
         start: LinkStart | None = None) -> Tracks:
    """Track components through time. ``overlaps[s]`` links step s-1 to s (``overlaps[0]`` unused).

    With ``start``, step 0 is the last step of an earlier linking: its ids are taken as they
    were, and linking goes on from there exactly as one linking over the whole range would
    (series are numbered in the order they begin, and only step s-1's tags change at step s)."""
    with _collector_paused():
        return _link(areas, overlaps, min_overlap, start)


def _link(areas: list[np.ndarray], overlaps: list[StepOverlaps | None], min_overlap: float,
          start: LinkStart | None) -> Tracks:
    ids = [np.zeros(a.size, np.int32) for a in areas]
    tags: list[list[str]] = [[""] * a.size for a in areas]
    n_series = 0
    ends_prev: np.ndarray = np.zeros(0, np.int64)  # series index (id - 1) of each comp of step s-1
    first = 0
    events: list[tuple[int, str, int, int]] = []
    if start is not None and areas:
        if start.anomaly_id.size != areas[0].size:
            raise ValueError(f"the earlier linking's last step has {start.anomaly_id.size} components, this "
                             f"step 0 has {areas[0].size}")
        ids[0][:] = start.anomaly_id
        tags[0] = list(start.tag)
        n_series = int(start.n_anomalies)
        ends_prev = start.anomaly_id.astype(np.int64) - 1
        first = 1
    for s in range(first, len(areas)):
        cur_area = areas[s]
        n_cur = cur_area.size
        prev_area = areas[s - 1] if s > 0 else np.zeros(0, np.int64)
        n_prev = prev_area.size
        ov = overlaps[s] if s > 0 else None
        if ov is None:
            ov = StepOverlaps(*(np.zeros(0, np.int64) for _ in range(4)))
        of_prev, of_cur = _partners(ov, prev_area, min_overlap, n_prev, n_cur)
        cur_ids, cur_tags, prev_tags = ids[s], tags[s], tags[s - 1] if s > 0 else []
        ends_cur = np.full(n_cur, -1, np.int64)
        in_prev = np.ones(n_prev, bool)
        in_cur = np.ones(n_cur, bool)

        def extend(sid: int, c: int, tag: str, ids_s=cur_ids, tags_s=cur_tags, ends_s=ends_cur) -> None:
            ids_s[c] = sid + 1
            tags_s[c] = tag
            ends_s[c] = sid

        # Largest area first; ties: step s before s-1, then the later component first.
        pool = [(-int(a), 0, -k, True, k) for k, a in enumerate(cur_area)]
        pool += [(-int(a), 1, -k, False, k) for k, a in enumerate(prev_area)]
        pool.sort()
        # A series that ended at step s-1 ends in one component p there, so "the series' last
        # entry" is always (s-1, p): its tag is prev_tags[p].
        for *_, is_cur, e in pool:
            if is_cur:
                if not in_cur[e]:
                    continue
                mapped = [m for m in of_cur[e] if in_prev[m[1]]]
                in_cur[e] = False
                if not mapped:
                    n_series += 1
                    extend(n_series - 1, e, INITIATION)
                elif len(mapped) == 1:
                    extend(int(ends_prev[mapped[0][1]]), e, CONTINUATION)
                else:
                    best = _best(mapped)
                    into = int(ends_prev[mapped[best][1]]) + 1
                    for k, (_, p, _) in enumerate(mapped):
                        if k == best:
                            extend(into - 1, e, MERGE)
                        else:
                            prev_tags[p] = DISSIPATION_MERGE
                            events.append((s, "merge", into, int(ends_prev[p]) + 1))
                for _, p, _ in mapped:
                    in_prev[p] = False
            else:
                if not in_prev[e]:
                    continue
                mapped = [m for m in of_prev[e] if in_cur[m[1]]]
                in_prev[e] = False
                sid = int(ends_prev[e])
                if not mapped:
                    prev_tags[e] = DISSIPATION
                elif len(mapped) == 1:
                    extend(sid, mapped[0][1], CONTINUATION)
                else:
                    best = _best(mapped)
                    for k, (_, c, _) in enumerate(mapped):
                        if k == best:
                            extend(sid, c, SPLIT)
                        else:
                            n_series += 1
                            extend(n_series - 1, c, INITIATION_SPLIT)
                            events.append((s, "split", sid + 1, n_series))
                for _, c, _ in mapped:
                    in_cur[c] = False
        ends_prev = ends_cur
    return Tracks(anomaly_id=ids, tag=tags, n_anomalies=n_series, events=events)
