"""The job spec (SPEC section 8) and its validation.

Every refusal is a :class:`SpecError` naming the field and what is allowed. Checks that need
the data (grid, files) run in the plan stage, still before any work is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from tos2ca_batch.errors import SpecError
from tos2ca_batch.kernels.fortracc import OVERLAP_FRACTIONS
from tos2ca_batch.timeutil import parse_time

STAGES = ("phdef", "curation")
PHDEF_FIELDS = {
    "stage", "dataset", "variable", "operator", "value", "value2", "start", "end", "bbox", "polygon",
    "tracking", "chunking", "email", "baseline", "name",
}
CURATION_FIELDS = {"stage", "phdef_job", "dataset", "variable", "chunking", "email", "name"}
TRACKING_DEFAULTS = {"connectivity": 2, "min_size": 150, "min_overlap": 0.25, "overlap_fraction": "exact"}
EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


@dataclass
class JobSpec:
    stage: str
    dataset: str
    variable: str
    operator: str | None = None
    value: float | None = None
    value2: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    polygon: str | None = None
    tracking: dict = field(default_factory=lambda: dict(TRACKING_DEFAULTS))
    block_steps: int | None = None
    tile: tuple[int, int] | None = None
    email: str | None = None
    baseline: tuple[datetime, datetime] | None = None
    phdef_job: int | None = None
    raw: dict = field(default_factory=dict)

    @property
    def crosses_antimeridian(self) -> bool:
        return self.bbox is not None and self.bbox[0] > self.bbox[2]

    def coords_wkt(self) -> str | None:
        if self.polygon:
            return self.polygon
        if self.bbox is None:
            return None
        x0, y0, x1, y1 = self.bbox
        return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def _allowed(values) -> str:
    return ", ".join(str(v) for v in values)


def _number(raw: dict, name: str) -> float:
    v = raw.get(name)
    try:
        ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(float(v))
    except OverflowError:  # an integer with hundreds of digits
        ok = False
    if not ok:
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
        raise SpecError(name, f"must be a finite number, got {shown}")
    return float(v)


def _time(raw: dict, name: str, where: str | None = None) -> datetime:
    label = where or name
    try:
        return parse_time(raw.get(name))
    except ValueError as exc:
        raise SpecError(label, str(exc)) from None


MAX_INT = 2**31 - 1  # every count of a job fits an int32 (and a database INTEGER)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise SpecError(name, f"must be a whole number from 1 to {MAX_INT}, got {shown}")
    return value


def _dataset_and_variable(raw: dict, catalog: dict, stage: str) -> tuple[str, str, dict]:
    name = raw.get("dataset")
    if not isinstance(name, str) or name not in catalog:
        raise SpecError("dataset", f"unknown dataset {name!r}; allowed: {_allowed(sorted(catalog))}")
    entry = catalog[name]
    if stage not in entry.stages:
        raise SpecError("dataset", f"{name} may not be used by the {stage} stage (stages: {list(entry.stages)})")
    var = raw.get("variable")
    if not isinstance(var, str) or var not in entry.variables:
        raise SpecError("variable", f"unknown variable {var!r} for {name}; allowed: {_allowed(entry.variables)}")
    return name, var, entry


def _chunking(raw: dict) -> tuple[int | None, tuple[int, int] | None]:
    chunking = raw.get("chunking", {}) or {}
    if not isinstance(chunking, dict) or set(chunking) - {"block_steps", "tile"}:
        raise SpecError("chunking", "must be an object with optional block_steps (int >= 1) and tile ([H, W])")
    block = chunking.get("block_steps")
    if block is not None:
        block = _positive_int(block, "chunking.block_steps")
    tile = chunking.get("tile")
    if tile is not None:
        ok = isinstance(tile, list | tuple) and len(tile) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT for v in tile)
        if not ok:
            raise SpecError("chunking.tile", f"must be [height, width] of whole numbers >= 1, got {tile!r}")
        tile = (tile[0], tile[1])
    return block, tile


def _bbox(raw: dict) -> tuple[float, float, float, float]:
    box = raw.get("bbox")
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise SpecError("bbox", f"must be [min_lon, min_lat, max_lon, max_lat], got {box!r}")
    try:
        x0, y0, x1, y1 = (_number({"bbox": v}, "bbox") for v in box)
    except SpecError:
        raise SpecError("bbox", f"must hold four finite numbers, got {box!r}") from None
    if not (-90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise SpecError("bbox", f"latitudes must lie in [-90, 90], got {y0}, {y1}")
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180):
        raise SpecError("bbox", f"longitudes must lie in [-180, 180], got {x0}, {x1}")
    if y0 >= y1:
        raise SpecError("bbox", f"empty box: min_lat {y0} must be below max_lat {y1}")
    if x0 == x1:
        raise SpecError("bbox", f"empty box: min_lon equals max_lon ({x0}); min_lon > max_lon crosses 180")
    return x0, y0, x1, y1


def validate(raw: dict, catalog: dict) -> JobSpec:
    """Check a spec document against the catalog; return the parsed spec or raise SpecError."""
    if not isinstance(raw, dict):
        raise SpecError("spec", "must be a JSON object")
    stage = raw.get("stage", "phdef")
    if stage not in STAGES:
        raise SpecError("stage", f"unknown stage {stage!r}; allowed: {_allowed(STAGES)}")
    allowed = PHDEF_FIELDS if stage == "phdef" else CURATION_FIELDS
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(unknown[0], f"unknown field for a {stage} job; allowed: {_allowed(sorted(allowed))}")
    dataset, variable, _ = _dataset_and_variable(raw, catalog, stage)
    email = raw.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL_RE.match(email)):
        raise SpecError("email", f"must be an address like user@example.org, got {email!r}")
    block, tile = _chunking(raw)
    if stage == "curation":
        job = raw.get("phdef_job")
        if isinstance(job, bool) or not isinstance(job, int) or not 1 <= job <= 2**63 - 1:
            raise SpecError("phdef_job", f"must be the id of a complete PhDef job, got {job!r}")
        return JobSpec(stage, dataset, variable, phdef_job=job, block_steps=block, tile=tile,
                       email=email, raw=raw)

    from tos2ca_batch.operators import find, registry

    operator = raw.get("operator")
    op = find(operator) if isinstance(operator, str) else None
    if op is None:
        raise SpecError("operator", f"unknown operator {operator!r}; allowed: {_allowed(registry())} "
                                    "(tos2ca-batch operators lists them with their parameters)")
    value = _number(raw, "value")
    value2 = None
    if op.takes_value2:
        value2 = _number(raw, "value2")
        if value2 == value:
            raise SpecError("value2", f"{operator} needs two different thresholds; value and value2 are both {value}")
    elif raw.get("value2") is not None:
        ops = registry()
        raise SpecError("value2", f"only {_allowed([o for o in ops if ops[o].takes_value2])} take a value2, "
                                  f"not {operator}")
    if operator == "anomalyEvent" and value == 0:
        raise SpecError("value", "anomalyEvent needs k != 0 standard deviations")
    if op.baseline == "percentile" and not 0 < value < 100:
        raise SpecError("value", f"{operator} needs a percentile 0 < value < 100, got {value}")
    start, end = _time(raw, "start"), _time(raw, "end")
    if end < start:
        raise SpecError("end", f"end {raw['end']} is before start {raw['start']}")
    polygon = raw.get("polygon")
    if polygon is not None:
        import shapely.wkt  # only a job with a polygon pays its import (15 ms)

        try:
            geom = shapely.wkt.loads(polygon)
        except Exception:
            raise SpecError("polygon", "must be WKT text of a POLYGON or MULTIPOLYGON in lon/lat") from None
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty or not geom.is_valid:
            raise SpecError("polygon", f"must be a valid, non-empty (Multi)Polygon; got {geom.geom_type}")
        box = geom.bounds
        bbox = _bbox({"bbox": list(box)}) if raw.get("bbox") is None else _bbox(raw)
    else:
        bbox = _bbox(raw)
    tracking = dict(TRACKING_DEFAULTS)
    given = raw.get("tracking", {}) or {}
    if not isinstance(given, dict) or set(given) - set(TRACKING_DEFAULTS):
        raise SpecError("tracking", f"allowed keys: {_allowed(TRACKING_DEFAULTS)}")
    tracking.update(given)
    if tracking["connectivity"] not in (1, 2) or isinstance(tracking["connectivity"], bool):
        raise SpecError("tracking.connectivity",
                        f"must be 1 (4-neighbour) or 2 (8-neighbour), got {tracking['connectivity']!r}")
    _positive_int(tracking["min_size"], "tracking.min_size")
    mo = tracking["min_overlap"]
    if isinstance(mo, bool) or not isinstance(mo, int | float) or not 0 < mo <= 1:
        raise SpecError("tracking.min_overlap", f"must be a fraction in (0, 1], got {mo!r}")
    if tracking["overlap_fraction"] not in OVERLAP_FRACTIONS:
        raise SpecError("tracking.overlap_fraction", f"must be one of {_allowed(OVERLAP_FRACTIONS)} (exact: the "
                                                     "plain fraction; tos2ca: the published module's), got "
                                                     f"{tracking['overlap_fraction']!r}")
    baseline = None
    if raw.get("baseline") is not None:
        b = raw["baseline"]
        if op.baseline is None:
            ops = registry()
            raise SpecError("baseline", f"only {_allowed([o for o in ops if ops[o].baseline])} take a baseline, "
                                        f"not {operator}")
        if not isinstance(b, dict) or set(b) != {"start", "end"}:
            raise SpecError("baseline", 'must be {"start": ..., "end": ...}')
        baseline = (_time(b, "start", "baseline.start"), _time(b, "end", "baseline.end"))
        if baseline[1] < baseline[0]:
            raise SpecError("baseline.end", "is before baseline.start")
    return JobSpec(
        stage, dataset, variable, operator=operator, value=value, value2=value2, start=start, end=end,
        bbox=bbox, polygon=polygon, tracking=tracking, block_steps=block, tile=tile,
        email=email, baseline=baseline, raw=raw,
    )
