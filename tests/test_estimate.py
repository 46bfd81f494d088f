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

    for cls, method in ((StepReader, "read"), (StepReader, "read_at_least"), (RawChunks, "read"),
                        (RawChunks, "candidates")):
        monkeypatch.setattr(cls, method, no_pixels)
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    est = estimate(cfg, SPEC, [100, 1000])
    steps = (datetime(2039, 12, 31, 23, 30) - datetime(2020, 1, 4)).total_seconds() // 1800 + 1
    assert est["steps"] == steps == 350496
    # blocks for array children: ~2,000 map chunks (TOS2CA_ARRAY_CHUNKS), not 14,604 of 24 steps
    assert est["grid"] == [180, 360] and est["chunking"]["block_steps"] == 176
    assert est["stages"]["map"]["chunks"] == 1992 and est["stages"]["map"]["arrays"] == [1992]
    assert est["stages"]["reduce"]["arrays"] == [1]
    assert est["wall_hours_by_containers"]["100"] > est["wall_hours_by_containers"]["1000"] > 0
    assert est["s3_bytes_read"] > 0 and est["vcpu_hours"] > 0
    assert not (tmp_path / "w").exists(), "an estimate writes nothing"


def test_wall_times_follow_max_vcpus_and_the_fargate_launch_rate(twenty_years, tmp_path):
    _, cat = twenty_years
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    short = dict(SPEC, chunking={"block_steps": 24})  # 14,604 map chunks: two arrays
    est = estimate(cfg, short, [1000, 5000])  # 2 vCPUs a container, maxvCpus 2000
    assert est["stages"]["map"]["arrays"] == [10000, 4604] and any("2 arrays" in w for w in est["warnings"])
    assert est["containers_running"] == {"1000": 1000, "5000": 1000}
    assert est["wall_hours_by_containers"]["5000"] == est["wall_hours_by_containers"]["1000"]
    assert any(w.startswith("maxvCpus 2,000 runs at most 1,000 containers") for w in est["warnings"])
    wide = estimate(cfg, short, [1000, 5000], max_vcpus=10_000)
    assert wide["containers_running"] == {"1000": 1000, "5000": 5000} and not any(
        w.startswith("maxvCpus") for w in wide["warnings"])
    # 5,000 containers of children a minute long start no faster than 20 a second: the launches
    # are the wall time's floor, and the time saved over 1,000 containers is far less than 5x
    launches = sum(max(0, s["chunks"] - 100) / 20 for s in wide["stages"].values()) / 3600
    assert wide["launch_hours"] == round(launches, 2) > 0.3 and wide["launches_per_second"] == 20
    walls = wide["wall_hours_by_containers"]
    assert walls["5000"] >= wide["launch_hours"] and walls["1000"] / walls["5000"] < 3
    ec2 = estimate(cfg, short, [5000], platform="ec2", max_vcpus=10_000)
    assert ec2["launches_per_second"] is None and ec2["launch_hours"] == 0


def test_the_reduces_memory_follows_its_time_block_not_the_jobs_length(twenty_years, tmp_path):
    _, cat = twenty_years
    cfg = Config.from_env(str(tmp_path / "w"), [str(cat)])
    blocks = {"block_steps": 24}  # the same blocks: the reduce's memory follows them
    twenty = estimate(cfg, dict(SPEC, chunking=blocks), [100], components_per_step=5000)
    month = estimate(cfg, dict(SPEC, end="2020-02-03T23:30", chunking=blocks), [100], components_per_step=5000)
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
