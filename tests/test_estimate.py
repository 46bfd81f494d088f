"""``tos2ca-batch estimate``: a 20-year global job priced from the plan alone, no pixel read."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from tos2ca_batch.config import Config
from tos2ca_batch.estimate import estimate
from tos2ca_batch.rawchunks import RawChunks
from tos2ca_batch.readers import StepReader
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2039-12-31T23:30", "bbox": [-180.0, -90.0, 180.0, 90.0]}


@pytest.fixture(scope="module")
def twenty_years(tmp_path_factory):
    """A catalog that says 2020-2039 while only its first files exist: what estimate may read."""
    base = tmp_path_factory.mktemp("est")
    cat = synthesize("imerg", base, datetime(2020, 1, 4), datetime(2020, 1, 4, 0, 30), res=1.0)
    doc = json.loads(cat.read_text())
    doc["GPM_3IMERGHH"]["endDate"] = "2039-12-31T23:30"
    cat.write_text(json.dumps(doc))
    return base, cat


def test_twenty_years_priced_without_reading_a_pixel(twenty_years, tmp_path, monkeypatch):
    base, cat = twenty_years

    def no_pixels(*args, **kwargs):
        raise AssertionError("estimate read pixels")

    monkeypatch.setattr(StepReader, "read", no_pixels)
    monkeypatch.setattr(RawChunks, "read", no_pixels)
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    est = estimate(cfg, SPEC, [100, 1000])
    steps = (datetime(2039, 12, 31, 23, 30) - datetime(2020, 1, 4)).total_seconds() // 1800 + 1
    assert est["steps"] == steps == 350496
    assert est["grid"] == [180, 360] and est["chunking"]["block_steps"] == 24
    assert est["stages"]["map"]["chunks"] == 14604 and est["stages"]["map"]["arrays"] == [10000, 4604]
    assert est["stages"]["reduce"]["arrays"] == [1]
    assert any("2 arrays" in w for w in est["warnings"])
    assert est["wall_hours_by_containers"]["100"] > est["wall_hours_by_containers"]["1000"] > 0
    assert est["s3_bytes_read"] > 0 and est["vcpu_hours"] > 0
    assert not (tmp_path / "w").exists(), "an estimate writes nothing"


def test_the_reduces_memory_follows_its_time_block_not_the_jobs_length(twenty_years, tmp_path):
    _, cat = twenty_years
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    twenty = estimate(cfg, SPEC, [100], components_per_step=5000)
    month = estimate(cfg, dict(SPEC, end="2020-02-03T23:30"), [100], components_per_step=5000)
    assert twenty["memory_mib_per_task"]["reduce"] == month["memory_mib_per_task"]["reduce"]
    assert twenty["memory_mib_per_task"]["reduce"] < twenty["job_definition_memory_mib"]
    assert twenty["stages"]["reduce"]["seconds_per_task"] > 100 * month["stages"]["reduce"]["seconds_per_task"]
    # A map block is the least the reduce holds: one of millions of rows outgrows a task.
    est = estimate(cfg, SPEC, [100], components_per_step=500_000)
    assert est["memory_mib_per_task"]["reduce"] > est["job_definition_memory_mib"]
    assert any(w.startswith("reduce:") for w in est["warnings"])


def test_estimate_cli_prints_json_and_refuses_bad_specs(twenty_years, tmp_path):
    _, cat = twenty_years
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "estimate", str(spec), "--catalog", str(cat),
                        "--workdir", str(tmp_path / "w"), "--containers", "500"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    est = json.loads(p.stdout.strip().splitlines()[-1])
    assert list(est["wall_hours_by_containers"]) == ["500"] and "350,496 steps" in p.stderr
    spec.write_text(json.dumps(dict(SPEC, bbox=[10.0, 95.0, 20.0, 96.0])))
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "estimate", str(spec), "--catalog", str(cat),
                        "--workdir", str(tmp_path / "w")], capture_output=True, text=True)
    assert p.returncode == 2 and "bbox" in json.loads(p.stdout.strip().splitlines()[-1])["error"]
