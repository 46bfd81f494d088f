"""Slurm job arrays against a real single-node Slurm (Debian's munged, slurmctld, slurmd: see
``slurmcluster``): a job submitted with ``tos2ca-batch slurm submit`` runs as chained
``sbatch --array`` children and equals a local run; a child killed outright is rerun and one
requeued by Slurm takes its chunk back; ``scancel`` leaves the job ``cancelled``, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import assert_same_outputs, local_outputs, run_job
from services import unavailable
from slurmcluster import SlurmCluster, installed

from tos2ca_batch import lifecycle
from tos2ca_batch.config import Config, task_identity
from tos2ca_batch.errors import SpecError
from tos2ca_batch.slurm import SlurmOptions, _count, array_parts, batch_script
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -90.0, 180.0, 90.0],
        "tracking": {"min_size": 20}}
MAX_ARRAY = 3  # the test cluster's MaxArraySize


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = installed()
    if why:
        unavailable("Slurm", RuntimeError(why))
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=2, max_array=MAX_ARRAY)
    try:
        c.start()
    except (RuntimeError, TimeoutError) as exc:
        c.stop()
        unavailable("Slurm", exc)
    yield c
    left = c.run(["squeue", "-h", "-o", "%A"], check=False).stdout.split()
    if left:
        c.run(["scancel", *sorted(set(left))], check=False)
        end = time.monotonic() + 30
        while c.run(["squeue", "-h"], check=False).stdout.strip() and time.monotonic() < end:
            time.sleep(0.5)
    c.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-data")
    catalog = synthesize("imerg", base / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)
    spec = base / "spec.json"
    spec.write_text(json.dumps(SPEC))
    _, local = run_job(base / "local", SPEC, catalog, block_steps=3, tile=(90, 360), workers=2)
    assert local["status"] == "complete"
    return spec, catalog, local_outputs(local, base)


def cli(cluster, *args, timeout=300) -> tuple[int, dict]:
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, **cluster.env))
    lines = p.stdout.strip().splitlines()
    assert lines, p.stderr[-3000:]
    return p.returncode, json.loads(lines[-1])


def submit(cluster, data, workdir: Path, *extra) -> dict:
    spec, catalog, _ = data
    rc, res = cli(cluster, "slurm", "submit", str(spec), "--catalog", str(catalog), "--workdir", str(workdir), *extra)
    assert rc == 0 and res["status"] == "running", res
    return res


def wait_for(what: str, ready, timeout: float = 240.0, cluster=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = ready()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {what}" + (f"\n{cluster.logs()}" if cluster else ""))


def job_row(workdir: Path, job_id: int) -> dict:
    return Config.from_env(str(workdir)).db().get_job(job_id)


def ended(workdir: Path, job_id: int):
    row = job_row(workdir, job_id)
    return row if row["status"] != "running" else None


def running_chunk(workdir: Path, job_id: int, stage: str):
    """A chunk of ``stage`` some Slurm child is running now (its row), or None."""
    rows = Config.from_env(str(workdir)).db().chunks(job_id, stage)
    return next((c for c in rows if c["status"] == "running" and (c["worker"] or "").startswith("slurm:")), None)


def requeue_log(work: Path, job_id: int) -> str:
    return "".join(p.read_text() for p in (work / "slurm" / f"job-{job_id}").glob("finalize-*.out"))


def outputs_of(workdir: Path, job_id: int, base: Path) -> dict:
    rows = Config.from_env(str(workdir)).db().outputs(job_id)
    return local_outputs({"job_id": job_id, "outputs": [r["location"] for r in rows]}, base)


def test_a_job_runs_as_chained_arrays_split_at_max_array_size_and_equals_a_local_run(cluster, data, tmp_path):
    res = submit(cluster, data, tmp_path / "w", "--block-steps", "2", "--tile", "90,180", "--time", "10",
                 "--mem", "2G", "--max-running", "2", "--partition", "debug", "--account", "geo123")
    job = res["job_id"]
    db = Config.from_env(str(tmp_path / "w")).db()
    n_map = len(db.chunks(job, "map"))
    assert n_map == 24 and len(res["slurm_jobs"]["map"]) == 8  # 24 chunks in arrays of at most 3
    row = wait_for("the job to end", lambda: ended(tmp_path / "w", job), cluster=cluster)
    assert row["status"] == "complete", row["message"]
    workers = {c["worker"] for c in db.chunks(job)}
    assert all(w.startswith("slurm:") for w in workers), workers  # every chunk ran in a Slurm child
    children = {c["worker"].split("#")[0] for c in db.chunks(job, "map")}  # chunk K: array K // 3, index K % 3
    assert children == {f"slurm:{j}_{k}" for j in res["slurm_jobs"]["map"] for k in range(MAX_ARRAY)}
    shown = cluster.run(["scontrol", "-o", "show", "job", res["slurm_jobs"]["relabel"][1]]).stdout
    for asked in ("TimeLimit=00:10:00", "MinMemoryNode=2G", "Partition=debug", "Account=geo123"):
        assert asked in shown, shown
    assert_same_outputs(data[2], outputs_of(tmp_path / "w", job, tmp_path))
    rc, status = cli(cluster, "slurm", "status", str(job), "--workdir", str(tmp_path / "w"))
    assert rc == 0 and status["status"] == "complete"
    assert status["stages"]["map"]["slurmStates"] == {"COMPLETED": 24}
    assert status["stages"]["map"]["chunks"] == {"complete": 24}


def test_a_killed_child_is_rerun_and_a_requeued_one_takes_its_chunk_back(cluster, data, tmp_path):
    work = tmp_path / "w"
    res = submit(cluster, data, work, "--block-steps", "6")
    job = res["job_id"]
    victim = wait_for("a publish chunk to run", lambda: running_chunk(work, job, "publish"), cluster=cluster)
    os.kill(int(victim["worker"].rsplit(":", 1)[1]), signal.SIGKILL)  # as the OOM killer would
    wait_for("the killed chunk to be taken over", lambda: (lambda c: c and c["worker"] != victim["worker"])(
        running_chunk(work, job, "publish")) or ended(work, job), cluster=cluster)
    requeued = wait_for("a finalize chunk to run", lambda: running_chunk(work, job, "finalize"), cluster=cluster)
    element = requeued["worker"].split("#")[0].removeprefix("slurm:")
    cluster.run(["scontrol", "requeue", element])  # as a preemption would: SIGTERM, back to pending, run again
    row = wait_for("the job to end", lambda: ended(work, job), cluster=cluster)
    assert row["status"] == "complete", row["message"]
    db = Config.from_env(str(work)).db()
    publish = {c["chunkID"]: c for c in db.chunks(job, "publish")}[victim["chunkID"]]
    assert publish["attempts"] >= 2 and publish["worker"].split("@")[0].endswith(".2"), publish  # the rerun
    log = (work / "slurm" / f"job-{job}").glob("publish-*.out")
    assert any("running it again (attempt 2)" in p.read_text() for p in log)
    final = db.chunks(job, "finalize")[0]
    assert final["worker"].split("@")[0].endswith("#1.1"), final  # Slurm's restart 1 ran it
    assert "Interrupted: SIGTERM" in requeue_log(work, job), "the SIGTERM'd run released its chunk"
    assert_same_outputs(data[2], outputs_of(work, job, tmp_path))


def submit_and_catch_a_map_chunk(cluster, data, work: Path) -> tuple[dict, int]:
    """A job submitted, once one of its map chunks is running in a Slurm child."""
    res = submit(cluster, data, work, "--block-steps", "3", "--tile", "90,180")
    wait_for("a map chunk to run", lambda: running_chunk(work, res["job_id"], "map"), cluster=cluster)
    return res, res["job_id"]


def test_scancel_leaves_the_job_cancelled_and_slurm_resume_finishes_it(cluster, data, tmp_path):
    work = tmp_path / "w"
    res, job = submit_and_catch_a_map_chunk(cluster, data, work)
    ids = [j for v in res["slurm_jobs"].values() for j in v]
    cluster.run(["scancel", *ids])  # the user's own scancel of the arrays (the settle job sees it)
    row = wait_for("the job to be settled", lambda: ended(work, job), cluster=cluster)
    assert row["status"] == "cancelled", row
    assert "was cancelled (scancel)" in row["message"] and f"slurm resume {job}" in row["message"]
    assert not [c for c in Config.from_env(str(work)).db().chunks(job) if c["status"] == "running"]
    rc, again = cli(cluster, "slurm", "resume", str(job), "--workdir", str(work))
    assert rc == 0 and again["status"] == "running", again
    row = wait_for("the resumed job to end", lambda: ended(work, job), cluster=cluster)
    assert row["status"] == "complete", row["message"]
    assert_same_outputs(data[2], outputs_of(work, job, tmp_path))


def test_slurm_cancel_stops_every_child_and_a_local_resume_finishes_the_job(cluster, data, tmp_path):
    work = tmp_path / "w"
    res, job = submit_and_catch_a_map_chunk(cluster, data, work)
    rc, out = cli(cluster, "slurm", "cancel", str(job), "--workdir", str(work), "--reason", "wrong threshold")
    assert rc == 0 and out["status"] == "cancelled" and res["settle"] in out["cancelled"]
    mine = set(out["cancelled"])
    wait_for("its Slurm jobs to leave the queue", lambda: not mine & set(
        cluster.run(["squeue", "-h", "-o", "%A"]).stdout.split()), cluster=cluster)
    assert job_row(work, job)["message"] == "wrong threshold"
    rc, local = cli(cluster, "resume", str(job), "--workdir", str(work), "--workers", "2")
    assert rc == 0 and local["status"] == "complete", local
    assert_same_outputs(data[2], outputs_of(work, job, tmp_path))


def test_bad_options_are_refused_by_name_before_a_job_is_stored():
    for opts, field in ((SlurmOptions(time="2 hours"), "--time"), (SlurmOptions(mem="lots"), "--mem"),
                        (SlurmOptions(cpus_per_task=0), "--cpus-per-task"), (SlurmOptions(retries=11), "--retries")):
        with pytest.raises(SpecError) as err:
            opts.check()
        assert err.value.field == field
    SlurmOptions(time="1-00:00:00", mem="4G", max_running=20).check()


def test_without_slurm_submit_says_so_and_stores_nothing(data, tmp_path):
    spec, catalog, _ = data
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no sbatch, no scontrol
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "slurm", "submit", str(spec), "--catalog", str(catalog),
                        "--workdir", str(tmp_path / "w")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert "scontrol not found" in json.loads(p.stdout.splitlines()[-1])["error"]
    assert Config.from_env(str(tmp_path / "w")).db().get_job(1) is None


def test_arrays_element_counts_and_the_batch_script(tmp_path):
    assert array_parts(7, 3) == [(0, 3), (3, 3), (6, 1)]
    assert [_count(e) for e in ("12_3", "12_0-2", "12_[3-5,7]", "12_0-9%2", "13")] == [1, 3, 4, 10, 1]
    cfg = Config.from_env(str(tmp_path), environ={"TOS2CA_DB_URL": "mysql://u:secret@db/x", "TOS2CA_REDUCE_ROWS": "9"})
    script = batch_script(cfg, 7, retries=2)
    assert "secret" not in script and "TOS2CA_REDUCE_ROWS=9" in script
    assert 'task "$stage" --job 7 --chunk-offset "$offset"' in script


def test_a_later_run_of_the_same_array_child_takes_over_an_earlier_ones_chunk():
    first = task_identity({"SLURM_JOB_ID": "40", "SLURM_ARRAY_JOB_ID": "37", "SLURM_ARRAY_TASK_ID": "3"})
    rerun = task_identity({"SLURM_JOB_ID": "40", "SLURM_ARRAY_JOB_ID": "37", "SLURM_ARRAY_TASK_ID": "3",
                           "TOS2CA_TASK_ATTEMPT": "2"})
    requeued = task_identity({"SLURM_JOB_ID": "40", "SLURM_ARRAY_JOB_ID": "37", "SLURM_ARRAY_TASK_ID": "3",
                              "SLURM_RESTART_COUNT": "1"})
    other = task_identity({"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "37", "SLURM_ARRAY_TASK_ID": "4",
                           "SLURM_RESTART_COUNT": "5"})
    assert first == "slurm:37_3#0.1" and rerun == "slurm:37_3#0.2" and requeued == "slurm:37_3#1.1"
    held = f"{first}@node7:123"
    assert lifecycle.holder_superseded(held, rerun) and lifecycle.holder_superseded(held, requeued)
    assert not lifecycle.holder_superseded(held, first) and not lifecycle.holder_superseded(held, other)
    assert not lifecycle.holder_superseded(f"{requeued}@node7:9", rerun)  # #1.1 is later than #0.2
    assert not lifecycle.holder_superseded("node7:123", rerun)  # a local process: only its host knows
    assert task_identity({"AWS_BATCH_JOB_ID": "ab:2", "AWS_BATCH_JOB_ATTEMPT": "2"}) == "batch:ab:2#2"
    assert task_identity({}) is None


def test_a_child_that_fails_fails_the_job_and_the_rest_of_the_chain_never_waits(cluster, data, tmp_path):
    import shutil

    spec, catalog, _ = data
    broken = tmp_path / "data"
    shutil.copytree(catalog.parent, broken)
    victim = sorted(broken.rglob("*.HDF5"))[4]  # in map chunk 1 (steps 3-5)
    victim.write_bytes(b"not an HDF5 file")
    rc, res = cli(cluster, "slurm", "submit", str(spec), "--catalog", str(broken / catalog.name), "--workdir",
                  str(tmp_path / "w"), "--block-steps", "3")
    assert rc == 0 and res["status"] == "running", res
    row = wait_for("the job to end", lambda: ended(tmp_path / "w", res["job_id"]), cluster=cluster)
    assert row["status"] == "failed" and row["message"].startswith("map chunk 1: OSError"), row["message"]
    mine = {j for v in res["slurm_jobs"].values() for j in v} | {res["settle"]}
    wait_for("the chain to leave the queue (cancelled, not pending forever)", lambda: not mine & set(
        cluster.run(["squeue", "-h", "-o", "%A"]).stdout.split()), cluster=cluster)
    reduce = cluster.run(["scontrol", "-o", "show", "job", res["slurm_jobs"]["reduce"][0]]).stdout
    assert "JobState=CANCELLED" in reduce and "DependencyNeverSatisfied" in reduce, reduce
