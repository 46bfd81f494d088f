"""The job spec as a JSON Schema (draft 2020-12), for editors, notebooks and other tools.

``tos2ca-batch schema`` prints it. :func:`tos2ca_batch.spec.validate` stays the authority (it
also checks the spec against the catalog: datasets, variables, stages); the schema describes the
same fields, types, ranges and defaults, and a test holds the two to each other.
"""

from __future__ import annotations

from tos2ca_batch.kernels.fortracc import OVERLAP_FRACTIONS
from tos2ca_batch.spec import TRACKING_DEFAULTS

TIME = {"type": "string", "description": "ISO 8601 (2020-01-04T00:00, seconds, fractions, Z or an offset, a date "
                                         "alone) or YYYYMMDDhhmm; times are UTC"}
CHUNKING = {
    "type": "object", "additionalProperties": False,
    "description": "how the job is cut into array tasks (default: the planner's choice)",
    "properties": {
        "block_steps": {"type": "integer", "minimum": 1, "description": "time steps per chunk"},
        "tile": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2,
                 "description": "[height, width] of a tile in grid cells"},
    },
}
COMMON = {
    "stage": {"const": "phdef", "default": "phdef",
              "description": "phdef: find and track anomalies; curation: extract another variable inside them"},
    "dataset": {"type": "string", "description": "a catalog dataset (manifests/datasets.json or --catalog)"},
    "variable": {"type": "string", "description": "one of the dataset's variables"},
    "chunking": CHUNKING,
    "email": {"type": "string", "pattern": "^[^@\\s,;<>]+@[^@\\s,;<>]+\\.[^@\\s,;<>]+$",
              "description": "one address, mailed when the job ends"},
    "name": {"type": "string", "description": "a label for the job (kept in its row)"},
    "products": {"type": "array", "items": {"type": "string"},
                 "description": "which outputs to write (default: all; README: Outputs)"},
}
def _operator_names() -> list[str]:
    from tos2ca_batch.operators import registry

    return list(registry())


PHDEF = {
    "type": "object", "additionalProperties": False,
    "required": ["dataset", "variable", "operator", "value", "start", "end"],
    "properties": {
        **COMMON,
        "operator": {"enum": list(_operator_names()),
                     "description": "the inequality a pixel must satisfy (anomalyEvent: value standard deviations "
                                    "from the per-pixel mean; percentile: beyond each pixel's value-th "
                                    "percentile; hysteresis: a core beyond value inside an extent beyond value2; "
                                    "tos2ca-batch operators lists them all)"},
        "value2": {"type": "number", "description": "the second threshold of an operator that takes one "
                                                    "(hysteresis: the extent's)"},
        "value": {"type": "number", "description": "the threshold, in the variable's units (anomalyEvent: k != 0; "
                                                   "percentile: the percentile, 0 < value < 100)"},
        "start": TIME, "end": dict(TIME, description="the last time step (clamped to the dataset's range)"),
        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                 "description": "[min_lon, min_lat, max_lon, max_lat] in degrees; min_lon > max_lon crosses 180"},
        "polygon": {"type": "string", "description": "WKT POLYGON or MULTIPOLYGON (lon lat) instead of or inside "
                                                     "bbox: pixels whose centre is outside are never in a mask"},
        "tracking": {
            "type": "object", "additionalProperties": False, "description": "ForTraCC settings",
            "properties": {
                "connectivity": {"enum": [1, 2], "default": TRACKING_DEFAULTS["connectivity"],
                                 "description": "1: 4-neighbour, 2: 8-neighbour"},
                "min_size": {"type": "integer", "minimum": 1, "default": TRACKING_DEFAULTS["min_size"],
                             "description": "smallest component kept, in pixels (after joining tiles)"},
                "min_overlap": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                                "default": TRACKING_DEFAULTS["min_overlap"],
                                "description": "overlap fraction that links a component to one a step before"},
                "overlap_fraction": {"enum": list(OVERLAP_FRACTIONS),
                                     "default": TRACKING_DEFAULTS["overlap_fraction"],
                                     "description": "exact: overlap / earlier area; tos2ca: the published "
                                                    "module's, where an overlap comes in pieces"},
            },
        },
        "baseline": {"type": "object", "additionalProperties": False, "required": ["start", "end"],
                     "properties": {"start": TIME, "end": TIME},
                     "description": "anomalyEvent and percentile: the period whose mean and std (or "
                                    "percentile) define anomalous; default the job's own range"},
    },
    "anyOf": [{"required": ["bbox"]}, {"required": ["polygon"]}],
}
CURATION = {
    "type": "object", "additionalProperties": False, "required": ["stage", "phdef_job", "dataset", "variable"],
    "properties": {**{k: v for k, v in COMMON.items() if k != "stage"},
                   "stage": {"const": "curation", "description": "extract another variable inside a PhDef "
                                                                 "job's anomalies"},
                   "phdef_job": {"type": "integer", "minimum": 1, "description": "a complete PhDef job's id"}},
}


def spec_schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tos2ca-batch job spec",
        "description": "A PhDef job (find and track where variable operator value) or a curation job. "
                       "tos2ca-batch refuses a spec naming the field and what is allowed.",
        "oneOf": [dict(PHDEF, title="PhDef job"), dict(CURATION, title="curation job")],
    }
