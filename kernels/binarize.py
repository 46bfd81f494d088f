"""Turn a field into a boolean mask: the six TOS2CA operators and polygon masking."""

from __future__ import annotations

import numpy as np

OPERATORS = (
    "lessThan",
    "lessThanOrEqualTo",
    "greaterThan",
    "greaterThanOrEqualTo",
    "equalTo",
    "anomalyEvent",
)

# Names used in the masks file's ``event_type`` attribute (TOS2CA wording).
EVENT_TYPES = {
    "lessThan": "less_than_threshold",
    "lessThanOrEqualTo": "less_than_or_equal_to_threshold",
    "greaterThan": "greater_than_threshold",
    "greaterThanOrEqualTo": "greater_than_or_equal_to_threshold",
    "equalTo": "equal_to_threshold",
    "anomalyEvent": "anomaly_event",
}


def binarize(
    values: np.ndarray,
    operator: str,
    value: float,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of ``values`` satisfying the inequality; NaN is never in a mask.

    For ``anomalyEvent`` ``value`` is k and a pixel is anomalous when
    ``(x - mean) >= k*std`` (k > 0) or ``<= k*std`` (k < 0). Pixels whose std is 0 or
    undefined (no valid samples) are never anomalous: a constant pixel has no anomaly.
    """
    x = values
    with np.errstate(invalid="ignore"):
        if operator == "lessThan":
            mask = x < value
        elif operator == "lessThanOrEqualTo":
            mask = x <= value
        elif operator == "greaterThan":
            mask = x > value
        elif operator == "greaterThanOrEqualTo":
            mask = x >= value
        elif operator == "equalTo":
            mask = x == value
        elif operator == "anomalyEvent":
            if mean is None or std is None:
                raise ValueError("anomalyEvent needs per-pixel mean and std")
            diff = x.astype(np.float64) - mean
            bound = value * std
            mask = (diff >= bound) if value > 0 else (diff <= bound)
            mask &= std > 0
        else:
            raise ValueError(f"operator must be one of {', '.join(OPERATORS)}; got {operator!r}")
    # Every comparison with NaN is False (NaN == NaN too), so NaN is never in a mask without a
    # second pass over the field (tests/test_masks_semantics.py checks each operator on NaN).
    return mask


def hysteresis_extent(values: np.ndarray, core: float, extent: float) -> np.ndarray:
    """The extent of a hysteresis mask: pixels beyond ``extent``, below it when ``core < extent``
    (cold cores), above it otherwise. Which components count is :func:`hysteresis_core_kept`."""
    with np.errstate(invalid="ignore"):
        return values < extent if core < extent else values > extent


def hysteresis_core_kept(value_min: np.ndarray, value_max: np.ndarray, core: float, extent: float) -> np.ndarray:
    """Which components of an extent hold a core pixel (beyond ``core``), from each joined
    component's value range: exact, as a component's min and max are those of all its pixels."""
    return value_min < core if core < extent else value_max > core


def polygon_mask(lat: np.ndarray, lon: np.ndarray, polygon) -> np.ndarray:
    """Pixels (lat x lon) whose centre lies inside or on ``polygon`` (a shapely geometry, lon/lat degrees)."""
    import shapely

    lon2, lat2 = np.meshgrid(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
    return shapely.intersects_xy(polygon, lon2, lat2)


def beyond_percentile(values: np.ndarray, q: float, percentile: np.ndarray) -> np.ndarray:
    """Pixels beyond their own ``q``-th percentile of a baseline: above it for ``q >= 50``,
    below it for ``q < 50`` (strictly; NaN values or percentiles are never in the mask)."""
    with np.errstate(invalid="ignore"):
        return values > percentile if q >= 50 else values < percentile
