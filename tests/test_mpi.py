"""The MPI backend under a real ``mpirun -n 2``."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import assert_same_outputs, local_outputs, run_job
from services import unavailable

from tos2ca_batch.config import Config
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -90.0, 180.0, 90.0],
        "tracking": {"min_size": 20}}


def mpirun() -> str:
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    if not found:
        unavailable("mpirun", FileNotFoundError("pip install mpi4py mpich"))
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("mpi")
    return base, synthesize("imerg", base / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)


def run_mpi(spec_path, catalog, workdir, *extra, timeout=600):
    cmd = [mpirun(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "run", str(spec_path),
           "--backend", "mpi", "--catalog", str(catalog), "--workdir", str(workdir), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_mpirun_outputs_identical_to_local(data, tmp_path):
    base, catalog = data
    _, local = run_job(tmp_path / "local", SPEC, catalog, block_steps=3, tile=(90, 360), workers=2)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    p = run_mpi(spec, catalog, tmp_path / "mpi", "--block-steps", "2", "--tile", "60,120")
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["status"] == "complete"
    assert_same_outputs(local_outputs(local, tmp_path), local_outputs(res, tmp_path))
    db = Config.from_env(str(tmp_path / "mpi")).db()
    workers = {c["worker"] for c in db.chunks(res["job_id"], "map")}
    assert len({w.rsplit(":", 1)[1] for w in workers}) == 2, "both ranks ran map chunks"


def test_a_rank_that_raises_aborts_all(data, tmp_path):
    base, catalog = data
    broken = tmp_path / "data"
    shutil.copytree(base / "data", broken)
    victim = sorted(broken.rglob("*.HDF5"))[5]  # inside map chunk 1 only (steps 4-7), on rank 1
    victim.write_bytes(b"not an HDF5 file")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    t0 = time.time()
    p = run_mpi(spec, broken / "catalog-imerg.json", tmp_path / "w", "--block-steps", "4", timeout=120)
    assert p.returncode != 0
    assert time.time() - t0 < 100
    row = Config.from_env(str(tmp_path / "w")).db().get_job(1)
    assert row["status"] == "failed" and row["message"].startswith("map chunk 1 on rank 1: OSError"), row["message"]


def test_a_sync_under_mpirun_equals_the_one_shot_job(data, tmp_path):
    base, catalog = data
    _, one = run_job(tmp_path / "one", SPEC, catalog, block_steps=3, tile=(90, 360), workers=2)
    _, first = run_job(tmp_path / "mpi", dict(SPEC, end="2020-01-04T02:30"), catalog, block_steps=2)
    assert first["status"] == "complete"
    cmd = [mpirun(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "sync", str(first["job_id"]),
           "--backend", "mpi", "--catalog", str(catalog), "--workdir", str(tmp_path / "mpi")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["sync"] == "synced" and res["new_steps"] == 6, res
    db = Config.from_env(str(tmp_path / "mpi")).db()
    workers = {c["worker"] for c in db.chunks(res["sync_job"], "map")}
    assert len({w.rsplit(":", 1)[1] for w in workers}) == 2, "both ranks ran the sync's map chunks"
    outputs = [o["location"] for o in db.outputs(first["job_id"])]
    assert_same_outputs(local_outputs(one, tmp_path),
                        local_outputs({"job_id": first["job_id"], "outputs": outputs}, tmp_path))


def test_a_sweep_under_mpirun_runs_every_combination_on_both_ranks_as_separate_jobs_would(data, tmp_path):
    base, catalog = data
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, chunking={"block_steps": 3, "tile": [90, 360]})))
    cmd = [mpirun(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "sweep", str(spec),
           "--grid", "value=5,10", "--grid", "tracking.min_size=5,20", "--backend", "mpi", "--catalog",
           str(catalog), "--workdir", str(tmp_path / "mpi")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["status"] == "complete" and len(res["rows"]) == 4, res.get("message")
    db = Config.from_env(str(tmp_path / "mpi")).db()
    row = next(r for r in res["rows"] if r["combination"] == "value=10,min_size=20")
    assert not db.chunks(row["job_id"], "map")  # it shared the map of value=10,min_size=5
    lead = next(r for r in res["rows"] if r["combination"] == "value=10,min_size=5")
    workers = {c["worker"] for c in db.chunks(lead["job_id"], "map")}
    assert len({w.rsplit(":", 1)[1] for w in workers}) == 2, "both ranks ran the shared map's chunks"
    _, alone = run_job(tmp_path / "one", dict(SPEC, chunking={"block_steps": 3, "tile": [90, 360]}), catalog,
                       workers=2)
    swept = {"job_id": row["job_id"], "outputs": [o["location"] for o in db.outputs(row["job_id"])]}
    assert_same_outputs(local_outputs(alone, tmp_path), local_outputs(swept, tmp_path))


def _rank_process(rank: int) -> int | None:
    """The pid of this machine's tos2ca_batch MPI rank ``rank`` (hydra sets PMI_RANK)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tos2ca_batch" in argv and b"mpi4py" in argv and f"PMI_RANK={rank}".encode() in environ:
            return int(pid)
    return None


def test_a_rank_killed_outright_fails_the_job_with_a_reason_and_resume_finishes_it(data, tmp_path):
    """``kill -9`` of rank 1: mpirun stops rank 0 too, so nobody in the run can record it; rank 0's
    watchdog does. The job ends failed (not running, no reason) and ``resume`` completes it."""
    import signal

    base, catalog = data
    _, local = run_job(tmp_path / "local", SPEC, catalog, block_steps=3, tile=(90, 360), workers=2)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    work = tmp_path / "w"
    cmd = [mpirun(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "run", str(spec),
           "--backend", "mpi", "--catalog", str(catalog), "--workdir", str(work), "--block-steps", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    end = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < end:  # rank 1 waits while rank 0 finalizes
        row = Config.from_env(str(work)).db().get_job(1) if (work / "jobs.sqlite").exists() else None
        if row and row["phase"] == "finalize":
            break
        time.sleep(0.05)
    victim = _rank_process(1)
    assert victim is not None and proc.poll() is None, "caught the run while rank 0 finalizes"
    os.kill(victim, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    db = Config.from_env(str(work)).db()
    t0 = time.monotonic()
    while db.get_job(1)["status"] == "running" and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    row = db.get_job(1)
    assert row["status"] == "failed", row
    assert "rank 0" in row["message"] and "tos2ca-batch resume 1" in row["message"], row["message"]
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "resume", "1", "--workdir", str(work), "--workers", "2"],
                       capture_output=True, text=True, timeout=300)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 0 and res["status"] == "complete", p.stderr[-3000:]
    assert_same_outputs(local_outputs(local, tmp_path), local_outputs(res, tmp_path))
