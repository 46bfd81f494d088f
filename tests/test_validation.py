"""Bad input is refused before any work: a clear message naming the field, the job row failed,
nothing written."""

from datetime import datetime

import numpy as np
import pytest
from helpers import run_job, write_cube

GOOD = {
    "stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
    "start": "2020-01-01T00:00", "end": "2020-01-01T01:30", "bbox": [0.0, 0.0, 11.0, 9.0],
    "tracking": {"min_size": 1},
}

BAD = [
    ({"dataset": "NOPE"}, "dataset", "allowed: "),
    ({"dataset": "x'); DROP TABLE jobs;--"}, "dataset", "unknown dataset"),
    ({"variable": "precip"}, "variable", "allowed: v"),
    ({"operator": "greaterish"}, "operator", "lessThan, lessThanOrEqualTo"),
    ({"value": "ten"}, "value", "finite number"),
    ({"start": "2020-01-01T01:30", "end": "2020-01-01T00:00"}, "end", "before start"),
    ({"start": "yesterday"}, "start", "2020-01-04T00:00"),
    ({"start": "2020-01-01T00:00ZZZ"}, "start", "ISO 8601"),
    ({"end": "2020-01-01T01:30:00+0x:00"}, "end", "ISO 8601"),
    ({"bbox": [0.0, 5.0, 11.0, 5.0]}, "bbox", "empty box"),
    ({"bbox": [0.0, -95.0, 11.0, 9.0]}, "bbox", "[-90, 90]"),
    ({"bbox": [1.0, 2.0, 3.0]}, "bbox", "[min_lon, min_lat, max_lon, max_lat]"),
    ({"bbox": [50.0, 50.0, 60.0, 60.0]}, "bbox", "selects no grid cells"),
    ({"start": "2019-01-01T00:00", "end": "2019-01-02T00:00"}, "start", "no time steps"),
    ({"chunking": {"block_steps": 0}}, "chunking.block_steps", "from 1 to"),
    ({"chunking": {"tile": [0, 5]}}, "chunking.tile", "[height, width]"),
    ({"chunking": {"blocks": 3}}, "chunking", "block_steps"),
    ({"tracking": {"connectivity": 3}}, "tracking.connectivity", "1 (4-neighbour) or 2"),
    ({"tracking": {"min_overlap": 1.5}}, "tracking.min_overlap", "(0, 1]"),
    ({"tracking": {"overlap_fraction": "published"}}, "tracking.overlap_fraction", "exact, tos2ca"),
    ({"treshold": 3}, "treshold", "unknown field"),
    ({"email": "not-an-address"}, "email", "user@example.org"),
    ({"polygon": "POLYGON ((0 0, 1"}, "polygon", "WKT"),
    ({"baseline": {"start": "2020-01-01T00:00", "end": "2020-01-01T01:00"}}, "baseline", "anomalyEvent"),
    ({"stage": "forecast"}, "stage", "phdef, curation"),
]


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    base = tmp_path_factory.mktemp("cube")
    values = np.full((4, 10, 12), 20.0, np.float32)
    cat = write_cube(base / "data", "CUBE", values, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))
    return base, cat


@pytest.mark.parametrize("change,field,hint", BAD, ids=[b[1] + ":" + b[2][:12] for b in BAD])
def test_refused_before_any_work(cube, tmp_path, change, field, hint):
    _, cat = cube
    spec = dict(GOOD, **change)
    cfg, res = run_job(tmp_path / "work", spec, cat)
    assert res["status"] == "failed"
    assert res["message"].startswith(f"{field}:"), res["message"]
    assert hint in res["message"]
    db = cfg.db()
    row = db.get_job(res["job_id"])
    assert row["status"] == "failed" and row["message"] == res["message"]
    assert db.chunks(res["job_id"]) == [] and db.outputs(res["job_id"]) == []
    assert not (cfg.workdir / "outputs").exists()
    assert not (cfg.workdir / "jobs" / str(res["job_id"])).exists()


def test_injection_stored_literally_and_tables_survive(cube, tmp_path):
    _, cat = cube
    name = "x'); DROP TABLE jobs;--"
    cfg, res = run_job(tmp_path / "work", dict(GOOD, dataset=name), cat)
    db = cfg.db()
    assert db.get_job(res["job_id"])["dataset"] == name
    assert db.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 1


def test_missing_file_in_range_is_refused(cube, tmp_path):
    base, cat = cube
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    (data / "CUBE_202001010030.nc").unlink()
    cfg, res = run_job(tmp_path / "work", GOOD, data / "catalog.json")
    assert res["status"] == "failed" and "1 of 4 time steps of CUBE have no file" in res["message"]
    assert "2020-01-01T00:30" in res["message"]


def test_a_range_without_any_file_is_refused_naming_a_path_looked_for(cube, tmp_path):
    base, cat = cube
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    for f in data.glob("CUBE_*.nc"):
        f.unlink()
    cfg, res = run_job(tmp_path / "work", GOOD, data / "catalog.json")
    assert res["status"] == "failed", res
    assert res["message"].startswith("start: no files of CUBE in range (looked for e.g. "), res["message"]
    assert f"{data}/CUBE_202001010000.nc)" in res["message"]


def test_unknown_product_refused(cube, tmp_path):
    from tos2ca_batch.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "spec.json", "--products", "masks,movie"])
    assert exc.value.code == 2


def test_a_file_on_another_grid_fails_the_job_naming_it(cube, tmp_path):
    """One 0.5-degree file among 1-degree files: the job fails naming it, and writes no output."""
    base, cat = cube
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    odd = data / "CUBE_202001010100.nc"
    odd.unlink()
    write_cube(tmp_path / "odd", "CUBE", np.full((1, 20, 24), 20.0, np.float32), np.arange(0, 10, 0.5),
               np.arange(0, 12, 0.5), datetime(2020, 1, 1, 1, 0))
    shutil.copy(tmp_path / "odd" / "CUBE_202001010100.nc", odd)
    for block in (None, 1):
        work = tmp_path / f"work-{block}"
        cfg, res = run_job(work, GOOD, data / "catalog.json", block_steps=block, tile=(5, 5), workers=2)
        assert res["status"] == "failed", res
        assert str(odd) in res["message"] and "another grid" in res["message"], res["message"]
        assert "lat 20 values 0.0000..9.5000 step 0.5000" in res["message"]
        assert "lat 10 values 0.0000..9.0000 step 1.0000" in res["message"]
        job = cfg.db().get_job(res["job_id"])
        assert job["status"] == "failed" and str(odd) in job["message"]
        assert res["outputs"] == [] and cfg.db().outputs(res["job_id"]) == []
        out_dir = work / "outputs" / str(res["job_id"])
        assert not out_dir.exists() or [p.name for p in out_dir.iterdir()] == [".tos2ca-job"]  # the claim only


@pytest.mark.parametrize("text,expected", [
    ("2020-01-04T00:00", datetime(2020, 1, 4)),
    ("2020-01-04T00:00:00+00:00", datetime(2020, 1, 4)),
    ("2020-01-04T02:30:00+02:30", datetime(2020, 1, 4)),
    ("2020-01-03T22:00:00-02:00", datetime(2020, 1, 4)),
    ("2020-01-04T00:00:00.250Z", datetime(2020, 1, 4, 0, 0, 0, 250000)),
    ("2020-01-04T00:00:00.123456789Z", datetime(2020, 1, 4, 0, 0, 0, 123456)),
    ("2020-01-04 00:00", datetime(2020, 1, 4)),
    ("2020-01-04", datetime(2020, 1, 4)),
    ("202001040000", datetime(2020, 1, 4)),
])
def test_spec_times_iso8601(text, expected):
    from tos2ca_batch.timeutil import parse_time

    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["2020-01-04T00:00ZZZ", "2020-01-04T00:00+25", "04/01/2020", "2020-13-01",
                                  "2020-01-04T25:00", "now", "", None, 20200104])
def test_spec_times_junk_refused(text):
    from tos2ca_batch.timeutil import parse_time

    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time(text)
