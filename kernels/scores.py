"""Scores of a detection against a known truth: pixels, objects, tracks, merge and split events.

Pure numpy/scipy on small tables; no I/O. A *frame* is one step's objects: for truth and for
detection alike, the flat pixel index and object id of every object pixel of the step (ids > 0;
truth ids are feature ids, detected ids anomaly ids, both constant along a track).

- Objects are matched per step one-to-one by IoU (``scipy.optimize.linear_sum_assignment`` on
  the IoU matrix, maximized), a pair counting only at IoU >= the threshold.
- Pixels: POD = hits / (hits + misses), FAR = false alarms / (hits + false alarms), CSI = hits /
  (hits + misses + false alarms), over every step.
- Tracks (CLEAR MOT and identity measures): MOTA = 1 - (misses + false alarms + identity
  switches) / truth objects; an identity switch is a truth track matched to another detected id
  than at its previous matched step; a fragmentation is a truth track's return to matched after
  one or more unmatched steps. IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) with truth and detected
  tracks paired one-to-one for the whole run (``linear_sum_assignment`` on the steps each pair is
  matched), IDTP those pairs' matched steps.
- Events: a detected merge (split) at step s counts as a hit when a truth merge (split) at a step
  within one of s involves the truth feature its anomaly is matched to at s (the feature merged
  into, or split from); precision over detected events, recall over truth events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Frame:
    """One step's object pixels: flat index and id (> 0) of each."""

    index: np.ndarray
    ids: np.ndarray


def match_frame(truth: Frame, detected: Frame, iou_threshold: float) -> tuple[dict[int, int], dict]:
    """One-to-one matches ``{truth id: detected id}`` at IoU >= ``iou_threshold`` and the step's
    pixel counts ``{"hits", "misses", "false_alarms"}``."""
    t_ids, t_area = np.unique(truth.ids, return_counts=True)
    d_ids, d_area = np.unique(detected.ids, return_counts=True)
    both, ti, di = np.intersect1d(truth.index, detected.index, assume_unique=True, return_indices=True)
    hits = both.size
    pixels = {"hits": hits, "misses": truth.index.size - hits, "false_alarms": detected.index.size - hits}
    if not t_ids.size or not d_ids.size or not hits:
        return {}, pixels
    pair_t = np.searchsorted(t_ids, truth.ids[ti])
    pair_d = np.searchsorted(d_ids, detected.ids[di])
    inter = np.zeros((t_ids.size, d_ids.size), np.int64)
    np.add.at(inter, (pair_t, pair_d), 1)
    iou = inter / (t_area[:, None] + d_area[None, :] - inter)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    keep = iou[rows, cols] >= iou_threshold
    return {int(t_ids[r]): int(d_ids[c]) for r, c in zip(rows[keep], cols[keep])}, pixels


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def score(truth: list[Frame], detected: list[Frame], iou_threshold: float = 0.5,
          truth_events: list[tuple[str, int, int]] | None = None,
          detected_events: list[tuple[str, int, int]] | None = None) -> dict:
    """Every score of a run of steps (``truth[s]``, ``detected[s]`` the frames of step s).

    Events are ``(kind, step, id)``: kind ``merge`` or ``split``; for truth the feature merged
    into or split from, for detection the anomaly tagged so at that step. Returns the totals and
    ``per_step`` rows (step, hits, misses, false alarms, CSI of objects)."""
    if len(truth) != len(detected):
        raise ValueError(f"truth has {len(truth)} steps, the detection {len(detected)}")
    px = {"hits": 0, "misses": 0, "false_alarms": 0}
    obj = {"hits": 0, "misses": 0, "false_alarms": 0}
    switches = fragmentations = 0
    last_match: dict[int, int] = {}  # truth track -> detected id at its last matched step
    was_matched: dict[int, bool] = {}
    interrupted: dict[int, bool] = {}
    pair_steps: dict[tuple[int, int], int] = {}
    truth_len: dict[int, int] = {}
    det_len: dict[int, int] = {}
    matches_at: list[dict[int, int]] = []
    per_step = []
    for s, (t, d) in enumerate(zip(truth, detected)):
        matches, pixels = match_frame(t, d, iou_threshold)
        matches_at.append(matches)
        for k in px:
            px[k] += pixels[k]
        t_ids, d_ids = np.unique(t.ids), np.unique(d.ids)
        for a in t_ids.tolist():
            truth_len[a] = truth_len.get(a, 0) + 1
        for a in d_ids.tolist():
            det_len[a] = det_len.get(a, 0) + 1
        n_hit = len(matches)
        step_obj = {"hits": n_hit, "misses": t_ids.size - n_hit, "false_alarms": d_ids.size - n_hit}
        for k in obj:
            obj[k] += step_obj[k]
        for a in t_ids.tolist():
            if a in matches:
                if a in last_match and last_match[a] != matches[a]:
                    switches += 1
                if interrupted.get(a):
                    fragmentations += 1
                interrupted[a] = False
                last_match[a] = matches[a]
                pair_steps[(a, matches[a])] = pair_steps.get((a, matches[a]), 0) + 1
                was_matched[a] = True
            elif was_matched.get(a):
                interrupted[a] = True
        per_step.append({"step": s, **step_obj,
                         "csi": _ratio(n_hit, n_hit + step_obj["misses"] + step_obj["false_alarms"])})
    n_truth = sum(truth_len.values())
    idtp = 0
    if pair_steps:
        row_of = {a: k for k, a in enumerate(sorted(truth_len))}
        col_of = {b: k for k, b in enumerate(sorted(det_len))}
        m = np.zeros((len(row_of), len(col_of)), np.int64)
        for (a, b), n in pair_steps.items():
            m[row_of[a], col_of[b]] = n
        rows, cols = linear_sum_assignment(m, maximize=True)
        idtp = int(m[rows, cols].sum())
    n_det = sum(det_len.values())
    out = {
        "pixels": dict(px, pod=_ratio(px["hits"], px["hits"] + px["misses"]),
                       far=_ratio(px["false_alarms"], px["hits"] + px["false_alarms"]),
                       csi=_ratio(px["hits"], px["hits"] + px["misses"] + px["false_alarms"])),
        "objects": obj,
        "tracking": {
            "mota": None if not n_truth else 1 - (obj["misses"] + obj["false_alarms"] + switches) / n_truth,
            "idf1": _ratio(2 * idtp, n_truth + n_det), "id_switches": switches,
            "fragmentations": fragmentations, "idtp": idtp, "idfn": n_truth - idtp, "idfp": n_det - idtp,
        },
        "per_step": per_step,
    }
    if truth_events is not None and detected_events is not None:
        out["events"] = event_scores(truth_events, detected_events, matches_at)
    return out


def event_scores(truth_events: list[tuple[str, int, int]], detected_events: list[tuple[str, int, int]],
                 matches_at: list[dict[int, int]]) -> dict:
    """Precision and recall of merges and splits, each kind on its own (see the module doc)."""
    out = {}
    for kind in ("merge", "split"):
        truth_k = [(s, f) for k, s, f in truth_events if k == kind]
        det_k = [(s, a) for k, s, a in detected_events if k == kind]
        used: set[int] = set()
        hits = 0
        for s, a in det_k:
            feature = next((f for f, b in matches_at[s].items() if b == a), None) if s < len(matches_at) else None
            for k, (ts, f) in enumerate(truth_k):
                if k not in used and f == feature and abs(ts - s) <= 1:
                    used.add(k)
                    hits += 1
                    break
        out[kind] = {"truth": len(truth_k), "detected": len(det_k), "hits": hits,
                     "precision": _ratio(hits, len(det_k)), "recall": _ratio(hits, len(truth_k))}
    return out
