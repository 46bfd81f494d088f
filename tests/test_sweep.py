"""A sweep over 3 x 2 x 3 settings: one map per distinct binarization (reads counted), each
combination's outputs equal to a separate job's, scores against an injected truth, refusals."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same_outputs, local_outputs, run_job, write_cube
from test_inject_score import FEATURES

from tos2ca_batch.backends.local import LocalBackend
from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.inject import inject
from tos2ca_batch.readers import StepReader
from tos2ca_batch.sweep import parse_grid, sweep

PRODUCTS = ["masks", "toc", "hierarchy", "ids", "tables"]
GRID = ["value=0.9,5,25", "tracking.min_size=3,20", "tracking.min_overlap=0.1,0.25,0.5"]


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(1)
    lat, lon = np.arange(-40.0, 41.0), np.arange(-180.0, 180.0)
    background = rng.random((12, lat.size, lon.size)).astype(np.float32)
    catalog = write_cube(tmp / "bg", "bg", background, lat, lon, datetime(2020, 1, 1))
    cfg = Config.from_env(str(tmp / "w"), [str(catalog)])
    res = inject(cfg, "bg", datetime(2020, 1, 1), datetime(2020, 1, 1, 5, 30), FEATURES, tmp / "inj")
    spec = {"dataset": res["dataset"], "variable": "v", "operator": "greaterThan", "value": 5.0,
            "start": "2020-01-01T00:00", "end": "2020-01-01T05:30", "bbox": [-180, -40, 180, 40],
            "chunking": {"block_steps": 12, "tile": [81, 360]}, "products": PRODUCTS}
    return tmp, [catalog, Path(res["catalog"])], spec, res["truth"]


def test_a_sweep_reads_each_file_once_per_binarization_and_equals_separate_jobs(injected, tmp_path, monkeypatch):
    tmp, catalogs, spec, truth = injected
    reads: dict[datetime, int] = {}

    def counted(original):
        def counting(self, t, *a, **k):
            reads[t] = reads.get(t, 0) + 1
            return original(self, t, *a, **k)

        return counting

    originals = {m: getattr(StepReader, m) for m in ("read", "read_at_least")}  # whole, or what can pass
    for method, original in originals.items():
        monkeypatch.setattr(StepReader, method, counted(original))
    cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
    cfg.workdir.mkdir(parents=True)
    lines = []
    res = sweep(cfg, spec, parse_grid(GRID), LocalBackend(1), truth, report=lines.append)
    assert res["status"] == "complete", res["message"]
    assert len(res["rows"]) == 18 and {r["status"] for r in res["rows"]} == {"complete"}
    # one chunk per file: each of the 12 files read once per distinct value, never per combination
    assert len(reads) == 12 and set(reads.values()) == {3}, reads
    assert "18 combinations, 3 distinct binarizations" in lines[0]
    for method, original in originals.items():
        monkeypatch.setattr(StepReader, method, original)

    rows = {r["combination"]: r for r in res["rows"]}
    sweep_dir = Path(res["outputs"][0]).parent
    for name in ("value=5,min_size=3,min_overlap=0.1", "value=5,min_size=20,min_overlap=0.5",
                 "value=25,min_size=3,min_overlap=0.25"):
        row = rows[name]
        assert Path(row["outputs"]) == sweep_dir / name  # its own sub-folder
        settings = dict(spec, value=row["value"], tracking={"min_size": row["tracking.min_size"],
                                                             "min_overlap": row["tracking.min_overlap"]})
        _, alone = run_job(tmp_path / name, settings, catalogs)
        assert alone["status"] == "complete"
        swept = {"job_id": row["job_id"], "outputs": [o["location"] for o in cfg.db().outputs(row["job_id"])]}
        assert_same_outputs(local_outputs(alone, tmp_path), local_outputs(swept, tmp_path))
    # the settings matter and the scores say which is right: drizzle at 0.9 mm/hr is thousands of
    # false alarms unless min_size drops them; 25 is above every feature; a min_overlap above what
    # the fast mover keeps from step to step breaks its track (identity switches) and the split
    for min_size in (3, 20):
        best = rows[f"value=5,min_size={min_size},min_overlap=0.1"]
        assert best["pixel_csi"] == 1.0 and best["false_alarms"] == 0 and best["id_switches"] == 0
        assert best["merge_recall"] == best["split_recall"] == 1.0
        assert rows[f"value=5,min_size={min_size},min_overlap=0.5"]["id_switches"] > 0
        assert rows[f"value=25,min_size={min_size},min_overlap=0.1"]["hits"] == 0
    assert rows["value=0.9,min_size=3,min_overlap=0.1"]["false_alarms"] > 100
    assert rows["value=0.9,min_size=20,min_overlap=0.1"]["false_alarms"] == 0
    table = list(csv.DictReader(open(sweep_dir / f"{res['sweep_id']}-sweep.csv")))
    assert len(table) == 18 and table[0]["value"] == "0.9" and table[0]["tracking.min_overlap"] == "0.1"
    assert float(table[0]["pixel_csi"]) == rows[table[0]["combination"]]["pixel_csi"]
    assert (sweep_dir / f"{res['sweep_id']}-sweep.png").stat().st_size > 10_000
    assert json.loads((sweep_dir / f"{res['sweep_id']}-sweep.json").read_text())["grid"]["value"] == [0.9, 5, 25]
    row = cfg.db().get_job(res["sweep_id"])
    assert row["stage"] == "sweep" and row["status"] == "complete" and "18 of 18" in row["message"]


def test_a_sweep_linked_a_map_block_at_a_time_equals_separate_jobs_linked_at_once(injected, tmp_path):
    """Each combination's reduce in time blocks (one 3-step map block each, ``reduce_rows=1``),
    its map shared and keeping small components for the smaller ``min_size``: the same files as
    a job of its own, whose map drops them and whose reduce links the range at once."""
    tmp, catalogs, spec, _ = injected
    spec = dict(spec, chunking={"block_steps": 3, "tile": [41, 180]})
    cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
    cfg.workdir.mkdir(parents=True)
    cfg.reduce_rows = 1
    res = sweep(cfg, spec, parse_grid(["tracking.min_size=3,20", "tracking.min_overlap=0.1,0.5"]),
                LocalBackend(1), report=lambda _: None)
    assert res["status"] == "complete", res["message"]
    for row in res["rows"]:
        assert len(cfg.store(row["job_id"]).reduce_blocks()) == 4  # 12 steps, linked 3 at a time
        settings = dict(spec, tracking={"min_size": row["tracking.min_size"],
                                        "min_overlap": row["tracking.min_overlap"]})
        _, alone = run_job(tmp_path / row["combination"], settings, catalogs)
        assert alone["status"] == "complete" and alone["job_id"] != row["job_id"]
        swept = {"job_id": row["job_id"], "outputs": [o["location"] for o in cfg.db().outputs(row["job_id"])]}
        assert_same_outputs(local_outputs(alone, tmp_path), local_outputs(swept, tmp_path))


def test_a_sweep_without_truth_tables_counts_and_refuses_bad_grids_before_any_work(injected, tmp_path):
    tmp, catalogs, spec, _ = injected
    for grid, field in ((["speed=1,2"], "grid"), (["value=1,1"], "grid"), (["value"], "grid"),
                        (["tracking.min_overlap=0.5,2"], "tracking.min_overlap")):
        with pytest.raises(SpecError) as e:
            cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
            sweep(cfg, spec, parse_grid(grid), LocalBackend(1))
        assert e.value.field == field, e.value
    assert "combination min_overlap=2" in str(e.value)
    assert not (tmp_path / "w" / "jobs.sqlite").exists() or not cfg.db().list_jobs()  # nothing was stored
    res = sweep(cfg, spec, parse_grid(["tracking.min_size=3,400"]), LocalBackend(1), report=lambda _: None)
    assert res["status"] == "complete"
    small, large = res["rows"]
    assert small["n_anomalies"] > large["n_anomalies"] >= 0 and small["mean_lifetime_steps"] > 1
    assert "pixel_csi" not in small and small["max_area_px"] > 0


def test_a_killed_sweep_is_finished_by_resume_equal_to_an_uninterrupted_one(injected, tmp_path):
    """SIGKILL while the second binarization's lead maps: the sweep row is left running, the
    combinations not started are planned and waiting; ``resume S`` runs what did not end, the
    last job writes the table, and every combination equals the same sweep run without a kill."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, catalogs, spec, _ = injected
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dict(spec, chunking={"block_steps": 2, "tile": [81, 120]})))
    work = tmp_path / "w"
    env = dict(os.environ, TOS2CA_LEASE_SECONDS="5")
    args = ["--catalog", str(catalogs[0]), "--catalog", str(catalogs[1]), "--workdir", str(work)]
    grid = ["--grid", "value=3,5", "--grid", "tracking.min_size=3,20"]
    proc = subprocess.Popen([sys.executable, "-m", "tos2ca_batch", "sweep", str(spec_file), *grid, *args,
                             "--workers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # jobs 2 (lead of value=3), 3 (its follower), 4 (lead of value=5), 5
    def second_lead_mapping() -> bool:
        try:
            return Config.from_env(str(work)).db().chunk_counts(4).get("map", {}).get("complete", 0) > 0
        except Exception:
            return False

    t0 = time.time()
    while not second_lead_mapping() and proc.poll() is None:
        assert time.time() - t0 < 120, "the sweep never started its second map"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    db = Config.from_env(str(work)).db()
    assert db.get_job(1)["status"] == "running"  # as the dead process left it
    assert db.get_job(2)["status"] == db.get_job(3)["status"] == "complete"
    assert db.get_job(5)["status"] == "running" and not db.chunks(5, "map")  # planned, waiting for job 4's share
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "resume", "1", *args], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, (p.stdout, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    row = db.get_job(1)
    assert row["status"] == "complete" and "4 of 4 combinations complete" in row["message"], row
    table = list(csv.DictReader(open(Path(db.outputs(1)[0]["location"]).parent / "1-sweep.csv")))
    assert [r["status"] for r in table] == ["complete"] * 4
    cfg2 = Config.from_env(str(tmp_path / "w2"), [str(c) for c in catalogs])
    cfg2.workdir.mkdir(parents=True)
    res = sweep(cfg2, json.loads(spec_file.read_text()), parse_grid(grid[1::2]), LocalBackend(1),
                report=lambda _: None)
    for job, again in zip(range(2, 6), range(2, 6)):
        mine = {"job_id": job, "outputs": [o["location"] for o in db.outputs(job)]}
        other = {"job_id": again, "outputs": [o["location"] for o in cfg2.db().outputs(again)]}
        assert_same_outputs(local_outputs(mine, tmp_path), local_outputs(other, tmp_path))
    assert [r["n_anomalies"] for r in res["rows"]] == [int(r["n_anomalies"]) for r in table]


def test_a_lead_that_fails_fails_the_jobs_sharing_its_map_and_resume_finishes_the_sweep(injected, tmp_path):
    """The cascade AWS Batch relies on (a job whose dependency failed never runs): a lead failing
    before its share fails its followers at once; the last combination to end writes the table
    and ends the sweep failed; ``resume S`` runs the failed ones again and completes it."""
    from tos2ca_batch import lifecycle
    from tos2ca_batch.sweep import _drive, prepare, resume_sweep

    tmp, catalogs, spec, _ = injected
    cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
    cfg.workdir.mkdir(parents=True)
    sweep_id = prepare(cfg, spec, parse_grid(["value=3,5", "tracking.min_size=3,20"]), report=lambda _: None)
    db = cfg.db()
    lead, follower = 2, 3
    assert db.get_job(follower)["status"] == "running" and not db.chunks(follower, "map")
    lifecycle.fail(cfg, lead, "map chunk 0: the disk is on fire")
    assert db.get_job(follower)["status"] == "failed"
    assert db.get_job(follower)["message"] == ("the map it shares, job 2's, did not complete: map chunk 0: the disk "
                                               "is on fire")
    res = _drive(cfg, sweep_id, LocalBackend(1), lambda _: None)
    assert res["status"] == "failed" and res["message"].startswith("2 of 4 combinations complete"), res
    assert [r["status"] for r in res["rows"]] == ["failed", "failed", "complete", "complete"]
    assert db.get_job(sweep_id)["status"] == "failed"
    res = resume_sweep(cfg, sweep_id, LocalBackend(1), report=lambda _: None)
    assert res["status"] == "complete" and [r["status"] for r in res["rows"]] == ["complete"] * 4, res
    table = list(csv.DictReader(open(Path(res["outputs"][0]))))
    assert [r["status"] for r in table] == ["complete"] * 4 and table[0]["combination"] == "value=3,min_size=3"


def test_cancel_S_cancels_the_sweep_and_its_waiting_combinations_and_resume_S_finishes_them(injected, tmp_path):
    import subprocess
    import sys

    from tos2ca_batch.sweep import prepare, resume_sweep

    tmp, catalogs, spec, _ = injected
    cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
    cfg.workdir.mkdir(parents=True)
    sweep_id = prepare(cfg, spec, parse_grid(["tracking.min_size=3,20"]), report=lambda _: None)
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "cancel", str(sweep_id), "--reason", "wrong box",
                        "--workdir", str(cfg.workdir)], capture_output=True, text=True, timeout=120)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0 and res["status"] == "cancelled" and res["cancelled"] == [2, 3], (res, p.stderr)
    assert cfg.db().get_job(3)["message"] == "sweep 1 cancelled: wrong box"
    res = resume_sweep(cfg, sweep_id, LocalBackend(1), report=lambda _: None)
    assert res["status"] == "complete" and [r["status"] for r in res["rows"]] == ["complete"] * 2, res


def test_a_sweep_scores_with_the_truth_it_stored_so_tasks_elsewhere_need_not_see_the_file(injected, tmp_path):
    """On AWS Batch the combination that ends last runs in a container without the client's
    files: the sweep keeps the truth document in its store and scores with that."""
    import shutil

    from tos2ca_batch.sweep import _drive, prepare

    tmp, catalogs, spec, truth = injected
    cfg = Config.from_env(str(tmp_path / "w"), [str(c) for c in catalogs])
    cfg.workdir.mkdir(parents=True)
    mine = tmp_path / "truth.json"
    shutil.copy(truth, mine)
    sweep_id = prepare(cfg, spec, parse_grid(["tracking.min_size=3,20"]), str(mine), report=lambda _: None)
    mine.unlink()
    res = _drive(cfg, sweep_id, LocalBackend(1), lambda _: None)
    assert res["status"] == "complete", res
    assert [r["pixel_csi"] for r in res["rows"]] == [1.0, 1.0] and res["rows"][0]["merge_recall"] == 1.0
