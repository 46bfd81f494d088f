"""Absurd requests are refused before anything is allocated or written, naming the field; any
exception ends a job failed; secrets never reach a message; mail only to a valid address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
from helpers import run_job, write_cube

from tos2ca_batch.config import Config

GOOD = {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
        "start": "2020-01-01T00:00", "end": "2020-01-01T01:30", "bbox": [0.0, 0.0, 11.0, 9.0],
        "tracking": {"min_size": 1}}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    values = np.full((4, 10, 12), 20.0, np.float32)
    return write_cube(base / "data", "CUBE", values, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))


def cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True, env=e,
                          timeout=300)


@pytest.mark.parametrize("change,field,hint", [
    ({"value": 10**400}, "value", "finite number"),
    ({"bbox": [0.0, 0.0, 10**400, 9.0]}, "bbox", "four finite numbers"),
    ({"tracking": {"min_size": 2**31}}, "tracking.min_size", "from 1 to 2147483647"),
    ({"tracking": {"min_size": 121}}, "tracking.min_size", "more than the job grid's 120 pixels"),
    ({"chunking": {"block_steps": 10**30}}, "chunking.block_steps", "from 1 to"),
    ({"chunking": {"tile": [10**20, 5]}}, "chunking.tile", "[height, width]"),
    ({"phdef_job": 10**30, "stage": "curation"}, "phdef_job", "complete PhDef job"),
])
def test_huge_and_odd_numbers_are_refused_naming_the_field(cube, tmp_path, change, field, hint):
    spec = dict(GOOD, **change)
    if spec["stage"] == "curation":
        spec = {"stage": "curation", "dataset": "CUBE", "variable": "v", "phdef_job": change["phdef_job"]}
    cfg, res = run_job(tmp_path / "w", spec, cube)
    assert res["status"] == "failed" and res["message"].startswith(f"{field}:") and hint in res["message"], res
    assert cfg.db().chunks(res["job_id"]) == []


def test_an_end_far_in_the_future_is_clamped_to_the_catalog(cube, tmp_path):
    cfg, res = run_job(tmp_path / "w", dict(GOOD, end="9999-12-31T23:59"), cube)
    assert res["status"] == "complete", res["message"]
    assert len(cfg.db().chunks(res["job_id"], "publish")) >= 1
    assert cfg.store(res["job_id"]).get_json("plan")["timestamps"][-1] == "202001010130"


def test_twenty_years_of_tiny_tiles_is_refused_before_any_chunk_row(tmp_path):
    values = np.zeros((1, 180, 360), np.float32)
    lat, lon = np.arange(-89.5, 90.0), np.arange(-179.5, 180.0)
    cat = write_cube(tmp_path / "data", "GLOBAL", values, lat, lon, datetime(2001, 1, 1))
    entry = json.loads(cat.read_text())
    entry["GLOBAL"]["endDate"] = "2020-12-31T23:30"
    cat.write_text(json.dumps(entry))
    spec = dict(GOOD, dataset="GLOBAL", start="2001-01-01T00:00", end="2020-12-31T23:30",
                bbox=[-180.0, -90.0, 180.0, 90.0], chunking={"tile": [10, 10]})
    cfg, res = run_job(tmp_path / "w", spec, cat)
    msg = res["message"]
    assert res["status"] == "failed" and msg.startswith("chunking: the map stage would have"), msg
    assert "TOS2CA_MAX_CHUNKS" in msg and '"block_steps":' in msg
    assert cfg.db().chunks(res["job_id"]) == [] and not (tmp_path / "w" / "outputs").exists()
    # The suggested chunking fits the limit (it is then refused only for the missing files).
    suggestion = json.loads(msg[msg.index("e.g. ") + 5:])
    _, res2 = run_job(tmp_path / "w", dict(spec, chunking=suggestion), cat)
    assert res2["message"].startswith("start: 350639 of 350640 time steps of GLOBAL have no file"), res2["message"]


def test_a_tile_over_the_memory_budget_is_refused(cube, tmp_path, monkeypatch):
    monkeypatch.setenv("TOS2CA_MEMORY_MB", "0.002")
    _, res = run_job(tmp_path / "w", dict(GOOD, chunking={"tile": [10, 12]}), cube)
    assert res["status"] == "failed" and res["message"].startswith("chunking: tile [10, 12] needs about")
    assert '"tile": [' in res["message"] and "TOS2CA_MEMORY_MB" in res["message"]


@pytest.mark.parametrize("mutate,hint", [
    (lambda e: "not an object", "must be an object, got str"),
    (lambda e: dict(e, timeStep=0), "timeStep must be minutes"),
    (lambda e: dict(e, timeStep=-30), "timeStep must be minutes"),
    (lambda e: dict(e, variables="v"), "variables must be a list"),
    (lambda e: dict(e, coordinateNames=["lat", "lon"]), "coordinateNames must be an object"),
    (lambda e: dict(e, endDate="someday"), "endDate: expected an ISO 8601 time"),
])
def test_bad_catalog_entries_fail_the_job_naming_them(cube, tmp_path, mutate, hint):
    entries = json.loads(cube.read_text())
    entries["CUBE"] = mutate(entries["CUBE"])
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(entries).replace('"CUBE_', f'"{cube.parent}/CUBE_'))
    cfg, res = run_job(tmp_path / "w", GOOD, cat)
    assert res["status"] == "failed" and "dataset 'CUBE'" in res["message"] and hint in res["message"], res
    assert cfg.db().get_job(res["job_id"])["status"] == "failed"


def test_an_unexpected_error_in_planning_fails_the_job(cube, tmp_path):
    entries = json.loads(cube.read_text())
    entries["CUBE"]["group"] = "NoSuchGroup"
    entries["CUBE"]["location"] = str(cube.parent / entries["CUBE"]["location"])
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(entries))
    cfg, res = run_job(tmp_path / "w", GOOD, cat)
    assert res["status"] == "failed" and res["message"].startswith("plan: "), res["message"]


def test_command_line_numbers_are_checked(cube, tmp_path):
    work = str(tmp_path / "w")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(GOOD))
    p = cli("run", str(spec), "--workers", "0", "--workdir", work)
    assert p.returncode == 2 and "--workers must be a whole number >= 1" in p.stderr
    env = {"TOS2CA_CATALOG": str(cube)}
    assert cli("submit", str(spec), "--workdir", work, env=env).returncode == 0
    assert cli("task", "plan", "--job", "1", "--workdir", work, env=env).returncode == 0
    p = cli("task", "map", "--job", "1", "--chunk", "abc", "--workdir", work, env=env)
    assert p.returncode == 2 and "argument --chunk: must be a chunk index" in p.stderr
    p = cli("task", "map", "--job", "1", "--workdir", work, env=dict(env, AWS_BATCH_JOB_ARRAY_INDEX="abc"))
    assert p.returncode == 2 and "AWS_BATCH_JOB_ARRAY_INDEX: must be a chunk index" in p.stdout, p.stdout + p.stderr
    p = cli("task", "map", "--job", "1", "--workdir", work, env=dict(env, AWS_BATCH_JOB_ARRAY_INDEX="99"))
    assert p.returncode == 2 and "has 1 map chunks (0..0); got 99" in p.stdout
    p = cli("task", "map", "--job", "7", "--workdir", work, env=env)
    assert p.returncode == 1 and "no such job" in p.stdout
    assert Config.from_env(work).db().get_job(1)["status"] == "running", "nothing failed the job"


def test_a_database_password_never_reaches_the_terminal(tmp_path):
    secret = "S3cr#t/pa@ss"
    url = f"mysql://tos2ca:{secret}@127.0.0.1:1/tos2ca"  # nothing listens on port 1
    p = cli("status", "1", "--workdir", str(tmp_path), env={"TOS2CA_DB_URL": url})
    assert p.returncode != 0
    assert secret not in p.stdout + p.stderr and "S3cr" not in p.stdout + p.stderr
    from tos2ca_batch.redact import redact

    assert redact(f"cannot connect to {url}") == "cannot connect to mysql://tos2ca:***@127.0.0.1:1/tos2ca"


def test_mail_goes_only_to_a_valid_single_address(cube, tmp_path, monkeypatch, smtp_server):
    url, received = smtp_server
    monkeypatch.setenv("TOS2CA_SMTP_URL", url)
    for bad in ("a@example.org,b@example.org", "a@example.org; b@example.org", "<a@example.org>"):
        _, res = run_job(tmp_path / "w", dict(GOOD, email=bad), cube)
        assert res["status"] == "failed" and res["message"].startswith("email:")
    assert received == [], "a refused address gets no mail"
    _, res = run_job(tmp_path / "w", dict(GOOD, email="scientist@example.org"), cube)
    assert res["status"] == "complete" and [m["to"] for m in received] == [["scientist@example.org"]]


def test_a_failed_folder_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import shutil

    from tos2ca_batch.stores.blobs import DirBlobs
    from tos2ca_batch.stores.objectstore import LocalOutputStore

    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)

    def full_disk(a, b, *args, **kw):
        with open(b, "wb") as f:
            f.write(b"x" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    out = LocalOutputStore(str(tmp_path / "out"))
    with pytest.raises(OSError, match="No space"):
        out.put(src, "1-file.bin")
    assert list((tmp_path / "out").iterdir()) == []

    blobs = DirBlobs(tmp_path / "blobs")

    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space"):
        blobs.put("map:0:x", b"data")
    assert list((tmp_path / "blobs").iterdir()) == []


def test_a_moved_output_is_renamed_into_place_or_copied_across_file_systems(tmp_path, monkeypatch):
    """``put(..., move=True)`` (a finished file its writer no longer needs) renames it into the
    outputs folder; where a rename cannot (another file system: EXDEV) the file is copied as
    without ``move``, atomically; either way the folder holds the whole file and no temp file."""
    import errno

    from tos2ca_batch.stores.objectstore import LocalOutputStore

    out = LocalOutputStore(str(tmp_path / "out"))
    src = tmp_path / "a.nc4"
    src.write_bytes(b"a" * 5000)
    assert out.put(src, "1-a.nc4", move=True) == str(tmp_path / "out" / "1-a.nc4")
    assert not src.exists() and (tmp_path / "out" / "1-a.nc4").read_bytes() == b"a" * 5000

    real_replace = os.replace

    def cross_device(a, b):
        if str(a) == str(tmp_path / "b.nc4"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", cross_device)
    src = tmp_path / "b.nc4"
    src.write_bytes(b"b" * 7000)
    out.put(src, "1-b.nc4", move=True)
    assert (tmp_path / "out" / "1-b.nc4").read_bytes() == b"b" * 7000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1-a.nc4", "1-b.nc4"]


def test_nasa_data_without_credentials_fails_at_plan_saying_what_to_set(tmp_path):
    """The README's spec on the built-in catalog (NASA's archives) with no Earthdata login, in
    us-west-2 (the DAAC's S3 credentials) and elsewhere (HTTPS): the job ends failed at plan, the
    message says what to set, no traceback, nothing running. No NASA endpoint is asked: a login
    is looked for before any request."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
                                "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00",
                                "end": "2020-01-05T23:30", "bbox": [-100.0, 10.0, -60.0, 40.0]}))
    for region in ("us-west-2", "eu-west-1"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOS2CA_", "EARTHDATA_"))}
        env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_DEFAULT_REGION=region,
                   NETRC=str(tmp_path / "none"))
        p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--workdir",
                            str(tmp_path / region)], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
        res = json.loads(p.stdout.strip().splitlines()[-1])
        assert res["status"] == "failed" and "EARTHDATA_TOKEN" in res["message"], res
        assert "netrc" in res["message"] and "urs.earthdata.nasa.gov" in res["message"]
