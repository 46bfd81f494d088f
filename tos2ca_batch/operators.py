"""The operators a PhDef job may use: the built-ins, and third-party ones from the
``tos2ca_batch.operators`` entry-point group (``tos2ca-batch operators`` lists them all).

An operator says which pixels are in a mask (``mask``, per pixel, so every chunking gives the
same masks) and, optionally, which joined components count (``keeps``, on a component's
statistics after the reduce joined it across every seam, so that too is the same for every
chunking). A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."tos2ca_batch.operators"]
    warmcore = "mypackage.ops:WARM_CORE"      # an Operator

An operator may need a per-pixel statistic of a baseline period (``baseline``): ``moments``
(mean and std: ``anomalyEvent``) or ``percentile`` (the ``value``-th percentile: ``percentile``);
the job then has a stats stage, and ``mask`` is given the statistic's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tos2ca_batch.kernels.binarize import (
    EVENT_TYPES,
    beyond_percentile,
    binarize,
    hysteresis_core_kept,
    hysteresis_extent,
)

ENTRY_POINT_GROUP = "tos2ca_batch.operators"


@dataclass(frozen=True)
class Operator:
    name: str
    summary: str
    mask: Callable[..., np.ndarray]
    """``mask(values, value, value2, baseline)``: the pixels in the mask (NaN never); ``baseline``
    is None, or the per-pixel statistic the operator asked for: ``{"mean", "std"}`` arrays
    (``moments``) or ``{"percentile"}`` (``percentile``)."""
    parameters: dict[str, str] = field(default_factory=lambda: {"value": "the threshold, in the variable's units"})
    """The spec fields it reads (``value``, and ``value2`` when it takes two thresholds)."""
    event_type: str = "custom"
    """The masks file's ``event_type`` attribute."""
    keeps: Callable[..., np.ndarray] | None = None
    """``keeps(value_min, value_max, value, value2)``: which joined components count (None: all)."""
    baseline: str | None = None
    """The per-pixel statistic of a baseline period it needs: None, ``moments`` or ``percentile``."""
    floor: Callable[..., float | None] | None = None
    """``floor(value, value2)``: a number below which no value can be in a mask, or None (any
    may). The map then reads only the values that can reach it (``StepReader.read_at_least``)."""
    source: str = "built-in"

    @property
    def takes_value2(self) -> bool:
        return "value2" in self.parameters


def _inequality(name: str) -> Operator:
    symbol = {"lessThan": "<", "lessThanOrEqualTo": "<=", "greaterThan": ">", "greaterThanOrEqualTo": ">=",
              "equalTo": "=="}[name]
    above = name in ("greaterThan", "greaterThanOrEqualTo")
    return Operator(name, f"pixels whose value {symbol} value", lambda v, t, t2, b: binarize(v, name, t),
                    event_type=EVENT_TYPES[name], floor=(lambda t, t2: t) if above else None)


BUILTIN = (
    *(_inequality(n) for n in ("lessThan", "lessThanOrEqualTo", "greaterThan", "greaterThanOrEqualTo", "equalTo")),
    Operator("anomalyEvent", "pixels at least value standard deviations beyond their mean over the baseline "
                             "(value < 0: below it)",
             lambda v, t, t2, b: binarize(v, "anomalyEvent", t, b["mean"], b["std"]),
             {"value": "k, standard deviations (not 0)", "baseline": "the steps of the mean and std (optional)"},
             EVENT_TYPES["anomalyEvent"], baseline="moments"),
    Operator("percentile", "pixels beyond their own value-th percentile over the baseline: above it for "
                           "value >= 50 (95: each pixel's wettest or hottest 5 %), below it for value < 50",
             lambda v, t, t2, b: beyond_percentile(v, t, b["percentile"]),
             {"value": "the percentile q, 0 < q < 100", "baseline": "the steps of the percentile (optional; "
                                                                    "default the job's own range)"},
             "percentile_threshold", baseline="percentile"),
    Operator("hysteresis", "components of the pixels beyond value2 (the extent) that hold at least one pixel "
                           "beyond value (the core), e.g. cold cores below 225 K in an extent below 241 K; "
                           "beyond is below when value < value2, above otherwise",
             lambda v, t, t2, b: hysteresis_extent(v, t, t2),
             {"value": "the core's threshold", "value2": "the extent's threshold"}, "hysteresis_threshold",
             lambda vmin, vmax, t, t2: hysteresis_core_kept(vmin, vmax, t, t2)),
)


@lru_cache(maxsize=1)
def registry() -> dict[str, Operator]:
    """Every operator by name: the built-ins, then installed plugins (a plugin never replaces a
    built-in; one that fails to load is listed as broken by :func:`plugin_errors`)."""
    out = {op.name: op for op in BUILTIN}
    for name, op in _plugins().items():
        out.setdefault(name, op)
    return out


_ERRORS: dict[str, str] = {}


def _plugins() -> dict[str, Operator]:
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            op = ep.load()
        except Exception as exc:  # a broken plugin must not break the built-ins
            _ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(op, Operator):
            _ERRORS[ep.name] = f"{ep.value} is a {type(op).__name__}, not a tos2ca_batch.operators.Operator"
            continue
        found[op.name] = Operator(**{**op.__dict__, "source": f"{ep.dist.name if ep.dist else '?'} ({ep.value})"})
    return found


def plugin_errors() -> dict[str, str]:
    registry()
    return dict(_ERRORS)


_BUILTIN_BY_NAME = {op.name: op for op in BUILTIN}


def find(name: str) -> Operator | None:
    """The operator ``name``, or None. A built-in is found without looking for plugins: a plugin
    never replaces one, and the look (every installed distribution's entry points read) costs
    ~5 ms in each process of a job."""
    return _BUILTIN_BY_NAME.get(name) or registry().get(name)


def get(name: str) -> Operator:
    op = find(name)
    if op is None:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(registry())}")
    return op
