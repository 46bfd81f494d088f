"""``tos2ca-batch schema``: the spec's JSON Schema agrees with the validator and the README."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tos2ca_batch.schema import spec_schema
from tos2ca_batch.spec import CURATION_FIELDS, PHDEF_FIELDS, TRACKING_DEFAULTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_specs() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), re.S)
    return [json.loads(b) for b in blocks if '"dataset"' in b]


def test_the_cli_prints_a_valid_schema():
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "schema"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    schema = json.loads(p.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == spec_schema()


def test_the_readme_specs_are_valid_and_name_every_field():
    validator = jsonschema.Draft202012Validator(spec_schema())
    specs = _readme_specs()
    assert len(specs) >= 2 and {s.get("stage", "phdef") for s in specs} == {"phdef", "curation"}
    for spec in specs:
        validator.validate(spec)
    text = README.read_text()
    fields = (PHDEF_FIELDS | CURATION_FIELDS | {"products"}) - {"tracking"}  # tracking: by its keys
    for field in sorted(fields | {f"tracking.{k}" for k in TRACKING_DEFAULTS}):
        assert f"`{field}`" in text, f"the README does not document {field}"


def test_schema_and_validator_know_the_same_fields():
    phdef, curation = spec_schema()["oneOf"]
    assert set(phdef["properties"]) == PHDEF_FIELDS | {"products"}
    assert set(curation["properties"]) == CURATION_FIELDS | {"products"}
    assert set(phdef["properties"]["tracking"]["properties"]) == set(TRACKING_DEFAULTS)


@pytest.mark.parametrize("change", [{"operator": "above"}, {"value": "ten"}, {"bbox": [1, 2, 3]},
                                    {"tracking": {"connectivity": 3}}, {"tracking": {"min_overlap": 0}},
                                    {"chunking": {"tile": [0, 10]}}, {"colour": "red"}])
def test_the_schema_refuses_what_the_validator_refuses(change):
    spec = dict(_readme_specs()[0], **change)
    assert not jsonschema.Draft202012Validator(spec_schema()).is_valid(spec)
