"""Configuration read in one place and handed to children; typed plans that survive their JSON."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from tos2ca_batch.algorithm import Layout
from tos2ca_batch.catalog import CatalogEntry
from tos2ca_batch.config import Config
from tos2ca_batch.plans import CurationGrid, CurationPlan, JobGrid, PhDefPlan, Tracking, plan_from_json

SECRET = "pa55-w0rd-never-shown"
ENV = {
    "TOS2CA_WORKDIR": "/tmp/tos2ca-config-test", "TOS2CA_DB_URL": f"mysql://u:{SECRET}@db:3306/tos2ca",
    "TOS2CA_REDIS_URL": f"redis://:{SECRET}@cache:6379/0", "TOS2CA_STORE_URL": "s3://bucket/store",
    "TOS2CA_OUTPUT_URL": "s3://bucket", "TOS2CA_CATALOG": "/data/a.json:/data/b.json",
    "TOS2CA_MEMORY_MB": "4096", "TOS2CA_LEASE_SECONDS": "30", "TOS2CA_REDIS_TTL": "600",
    "TOS2CA_REDIS_PART_BYTES": "1000", "TOS2CA_REDIS_PREFIX": "t2", "TOS2CA_INSTITUTION": "JPL",
    "TOS2CA_MAX_CHUNKS": "50", "TOS2CA_SMTP_URL": f"smtp://mail:{SECRET}@localhost:2525",
    "TOS2CA_MAIL_FROM": "tos2ca@example.org", "TOS2CA_BUILTIN_CATALOG": "/opt/manifests/datasets.json",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_DEFAULT_REGION": "us-west-2",
}


@pytest.fixture(autouse=True)
def _restore_s3_settings():
    """A Config sets the process's S3 endpoint; give later tests this process's own back."""
    yield
    Config.from_env()


def test_every_setting_is_read_and_a_child_gets_the_same_configuration():
    cfg = Config.from_env(catalogs=["/data/c.json"], environ=ENV)
    assert (cfg.memory_mb, cfg.lease_seconds, cfg.redis_ttl, cfg.redis_part_bytes) == (4096.0, 30.0, 600, 1000)
    assert (cfg.redis_prefix, cfg.institution, cfg.max_chunks, cfg.mail_from) == ("t2", "JPL", 50,
                                                                                  "tos2ca@example.org")
    assert cfg.catalogs == ["/data/a.json", "/data/b.json", "/data/c.json"]
    assert (cfg.aws_endpoint_url, cfg.aws_region) == ("http://127.0.0.1:5000", "us-west-2")
    child = Config.from_env(environ=cfg.child_env())
    assert child == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # what a local pool process receives


def test_no_secret_in_repr_or_batch_submission():
    cfg = Config.from_env(environ=ENV)
    assert SECRET not in repr(cfg)
    forwarded = cfg.batch_env()
    assert SECRET not in json.dumps(forwarded)
    assert forwarded["TOS2CA_STORE_URL"] == "s3://bucket/store" and "TOS2CA_DB_URL" not in forwarded


@pytest.mark.parametrize("name,value", [("TOS2CA_MAX_CHUNKS", "0"), ("TOS2CA_MEMORY_MB", "lots"),
                                        ("TOS2CA_REDIS_TTL", "-5"), ("TOS2CA_LEASE_SECONDS", "0")])
def test_a_bad_setting_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_env(environ={"TOS2CA_WORKDIR": "/tmp/x", name: value})


ENTRY = CatalogEntry.from_json("CUBE", {
    "location": "/data/cube_{time:%Y%m%d%H%M}.nc", "timeStep": 30, "format": "netcdf4",
    "coordinateNames": {"lat": "lat", "lon": "lon", "time": "time"}, "startDate": "2020-01-01T00:00",
    "endDate": "2020-01-02T00:00", "variables": ["v"], "units": {"v": "mm/hr"}, "categorical": [],
})


def _grid() -> JobGrid:
    lat, lon = np.linspace(-10, 10, 5), np.linspace(-20, 20, 9)
    return JobGrid(lat, lon, np.arange(5), np.arange(9), (lat.astype(np.float32), lon.astype(np.float32)))


def test_catalog_entry_round_trips_its_json():
    assert CatalogEntry.from_json("CUBE", ENTRY.to_json()) == ENTRY
    assert ENTRY.full_name == "CUBE" and ENTRY.units_of("v") == "mm/hr"


@pytest.mark.parametrize("kind", ["phdef", "curation"])
def test_plans_round_trip_their_json(kind):
    common = dict(job_id=7, job_uid="u" * 32, dataset="CUBE", variable="v", entry=ENTRY,
                  layout=Layout(4, 5, 9, 2, 5, 5), timestamps=["202001010000", "202001010030", "202001010100",
                                                               "202001010130"],
                  products=["masks"], units="mm/hr", long_name="rain", output_prefix="/out/7", grid=_grid())
    if kind == "phdef":
        plan = PhDefPlan(**common, operator="greaterThan", threshold=10, tracking=Tracking(2, 3, 0.25, "tos2ca"),
                         wraps=False, bbox=[-20.0, -10.0, 20.0, 10.0], polygon=None, baseline_timestamps=None,
                         software_version="0.1.0")
        assert plan.stages() == ["map", "reduce", "relabel", "publish", "finalize"]
        assert plan.stage_chunks("map") == 4 and plan.stage_chunks("reduce") == 1
        assert plan.stage_ranges("map") == [("202001010000", "202001010030")] * 2 + [
            ("202001010100", "202001010130")] * 2
        cgrid = None
    else:
        cgrid = CurationGrid(np.arange(3.0), np.arange(4.0), np.arange(3.0), np.arange(4.0))
        plan = CurationPlan(**common, phdef_job=3, curation_grid=cgrid, global_curation_grid=False,
                            matches=["202001010000", None, "202001010100", "202001010100"],
                            neighbours=[[None, "202001010030"], None, [None, None], [None, None]],
                            missing_times=["202001010030"], time_step_minutes=30, categorical=False)
        assert plan.stages() == ["curate", "cfinalize"]
    doc = json.loads(json.dumps(plan.to_json()))  # what the chunk store keeps
    assert doc["kind"] == kind
    again = plan_from_json(doc, plan.grid, cgrid)
    assert type(again) is type(plan) and again.to_json() == plan.to_json()
    assert again.entry == ENTRY and again.layout == plan.layout


def test_a_plan_of_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        plan_from_json({"kind": "sync"}, _grid())


def test_stages_run_in_waves_and_a_stage_waits_only_for_the_waves_before_it():
    """publish reads the map tables and the reduce's lookup, never relabel's ids: the two run as
    one wave (no barrier between them); finalize and a sync's commit wait for both."""
    from tos2ca_batch.pipeline import predecessors, stages_for, waves

    order = stages_for("phdef")
    assert waves(order) == [["map"], ["reduce"], ["relabel", "publish"], ["finalize"]]
    assert predecessors(order, "publish") == predecessors(order, "relabel") == ["map", "reduce"]
    assert predecessors(order, "finalize") == ["map", "reduce", "relabel", "publish"]
    assert waves(stages_for("phdef", periods=True))[-2:] == [["periods"], ["finalize"]]
    assert waves(stages_for("phdef", sync=True))[-2:] == [["relabel", "publish"], ["commit"]]
    assert waves(stages_for("curation")) == [["curate"], ["cfinalize"]]
    with pytest.raises(ValueError, match="no curate stage"):
        predecessors(order, "curate")
