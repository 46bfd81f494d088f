"""Per-pixel running moments (count, mean, M2) and their exact, ordered merge.

Floating-point merging is order dependent, so callers fix the partition (a canonical
time blocking) and the merge order (ascending block); per-pixel arithmetic is elementwise,
so tile shapes never change a bit of the result.
"""

from __future__ import annotations

import numpy as np


def empty_moments(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {
        "count": np.zeros(shape, np.int64),
        "mean": np.zeros(shape, np.float64),
        "m2": np.zeros(shape, np.float64),
    }


def accumulate(moments: dict[str, np.ndarray], values: np.ndarray) -> None:
    """Welford update with one time step; NaN pixels are skipped."""
    valid = ~np.isnan(values)
    x = np.where(valid, values, 0.0).astype(np.float64)
    count = moments["count"] + valid
    delta = x - moments["mean"]
    safe = np.maximum(count, 1)
    mean = np.where(valid, moments["mean"] + delta / safe, moments["mean"])
    m2 = np.where(valid, moments["m2"] + delta * (x - mean), moments["m2"])
    moments["count"], moments["mean"], moments["m2"] = count, mean, m2


def merge(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Chan et al. pairwise merge of two partials (a before b)."""
    n = a["count"] + b["count"]
    safe = np.maximum(n, 1)
    delta = b["mean"] - a["mean"]
    mean = np.where(n > 0, a["mean"] + delta * (b["count"] / safe), 0.0)
    m2 = a["m2"] + b["m2"] + delta * delta * (a["count"] * b["count"] / safe)
    return {"count": n, "mean": mean, "m2": np.where(n > 0, m2, 0.0)}


def mean_std(moments: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std; NaN where a pixel had no valid sample."""
    n = moments["count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, moments["mean"], np.nan)
        std = np.where(n > 0, np.sqrt(np.maximum(moments["m2"], 0.0) / n), np.nan)
    return mean, std


def nan_percentile(stack: np.ndarray, q: float) -> np.ndarray:
    """Per-pixel ``q``-th percentile (0..100) along axis 0, NaN skipped: numpy's default
    ("linear") definition, vectorised (``np.nanpercentile`` loops over pixels in Python when
    any NaN is present). NaN where a pixel has no valid sample.

    Each pixel's result depends only on the multiset of its own samples (sorting removes the
    order), so any spatial split of the field and any order of the steps give the same bits.
    """
    x = np.sort(np.asarray(stack, np.float64), axis=0)  # NaN sort last
    n = np.count_nonzero(~np.isnan(x), axis=0)
    position = (np.maximum(n, 1) - 1) * (q / 100.0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(n - 1, 0))
    frac = position - below
    a = np.take_along_axis(x, below[None], 0)[0]
    b = np.take_along_axis(x, above[None], 0)[0]
    step = b - a
    # numpy's own interpolation (``_lerp``): from the nearer end, so results are monotonic in q
    value = np.where(frac >= 0.5, b - step * (1 - frac), a + step * frac)
    return np.where(n > 0, value, np.nan)
