"""Jobs that survive anything: kill -9, Ctrl-C, SIGTERM, cancel, a lost Redis, absurd requests.

Every interrupted job is finished by ``resume`` with outputs identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import assert_same_outputs, local_outputs, run_job

from tos2ca_batch.config import Config
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T07:30", "bbox": [-180.0, -90.0, 180.0, 90.0],
        "tracking": {"min_size": 20}, "chunking": {"block_steps": 2, "tile": [60, 120]}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("resilience")
    catalog = synthesize("imerg", base / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 7, 30), res=1.0)
    _, ref = run_job(base / "ref", SPEC, catalog, workers=2)
    assert ref["status"] == "complete"
    spec = base / "spec.json"
    spec.write_text(json.dumps(SPEC))
    return base, catalog, spec, ref


def cli(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True, env=e,
                          timeout=600, **kw)


def start_run(spec: Path, catalog: Path, work: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--catalog", str(catalog),
                             "--workdir", str(work), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def processes_of(work: Path) -> list[int]:
    """Live processes whose environment names this work dir (the run and its pool)."""
    pids = []
    needle = f"TOS2CA_WORKDIR={work}".encode()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def wait_until(predicate, timeout: float = 60.0) -> None:
    t0 = time.time()
    while not predicate():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


def job_stored(work: Path) -> bool:
    try:
        return (work / "jobs.sqlite").exists() and Config.from_env(str(work)).db().get_job(1) is not None
    except Exception:
        return False


def map_started(work: Path) -> bool:
    try:
        return Config.from_env(str(work)).db().chunk_counts(1).get("map", {}).get("complete", 0) > 0
    except Exception:
        return False


def resume_and_compare(work: Path, catalog: Path, ref: dict, tmp_path: Path) -> dict:
    p = cli("resume", "1", "--workdir", str(work), "--workers", "2", env={"TOS2CA_CATALOG": str(catalog)})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["status"] == "complete" and res["job_id"] == 1
    assert_same_outputs(local_outputs(ref, tmp_path), local_outputs(res, tmp_path))
    return res


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_run_at_a_random_point_then_resume(world, tmp_path, seed):
    base, catalog, spec, ref = world
    work = tmp_path / "w"
    proc = start_run(spec, catalog, work)
    wait_until(lambda: job_stored(work) or proc.poll() is not None)  # timed from the job's start, not Python's
    delay = random.Random(seed).uniform(0.0, 6.0)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < delay:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    wait_until(lambda: not [p for p in processes_of(work) if p != proc.pid], 60)  # orphaned pool workers end
    row = Config.from_env(str(work)).db().get_job(1)
    if row["status"] == "complete":  # the kill came after the end: nothing to resume
        return
    resume_and_compare(work, catalog, ref, tmp_path)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_the_job_stops_the_pool_and_prints_the_json_line(world, tmp_path, sig, code):
    base, catalog, spec, ref = world
    work = tmp_path / "w"
    proc = start_run(spec, catalog, work)
    wait_until(lambda: map_started(work) or proc.poll() is not None)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["status"] == "cancelled" and res["interrupted"] == sig.name
    assert "Traceback" not in err
    # No pool process outlives the run: each sees its parent gone within 0.2 s (under a loaded
    # machine, a little later than the parent's exit, hence the wait).
    wait_until(lambda: processes_of(work) == [], 30)
    db = Config.from_env(str(work)).db()
    row = db.get_job(1)
    assert row["status"] == "cancelled" and f"interrupted by {sig.name}" in row["message"]
    assert all(c["status"] != "running" for c in db.chunks(1)), "leases released"
    resume_and_compare(work, catalog, ref, tmp_path)


def test_cancel_from_outside_stops_the_run_at_a_chunk_boundary(world, tmp_path):
    base, catalog, spec, ref = world
    work = tmp_path / "w"
    proc = start_run(spec, catalog, work)
    wait_until(lambda: map_started(work) or proc.poll() is not None)
    p = cli("cancel", "1", "--workdir", str(work), "--reason", "wrong threshold")
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "cancelled", p.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["status"] == "cancelled" and res["message"] == "wrong threshold"
    wait_until(lambda: processes_of(work) == [], 30)
    # A task started after the cancellation changes nothing.
    p = cli("task", "map", "--job", "1", "--chunk", "0", "--workdir", str(work), env={"TOS2CA_CATALOG": str(catalog)})
    assert p.returncode == 3 and json.loads(p.stdout.splitlines()[-1])["state"] == "cancelled"
    resume_and_compare(work, catalog, ref, tmp_path)
    assert cli("resume", "1", "--workdir", str(work)).returncode == 1  # complete: nothing to resume


def test_resume_refuses_a_job_another_live_process_holds(world, tmp_path):
    base, catalog, spec, ref = world
    work = tmp_path / "w"
    proc = start_run(spec, catalog, work)
    try:
        wait_until(lambda: map_started(work) or proc.poll() is not None)
        p = cli("resume", "1", "--workdir", str(work), env={"TOS2CA_CATALOG": str(catalog)})
        assert p.returncode == 1 and "is running on" in json.loads(p.stdout.splitlines()[-1])["error"]
    finally:
        out, _ = proc.communicate(timeout=300)
    assert json.loads(out.strip().splitlines()[-1])["status"] == "complete"


def test_a_lost_redis_is_survived_by_resume(world, tmp_path, monkeypatch, redis_namespace):
    """Redis flushed mid-job (after map): the chunks whose tables vanished run again, the plan is
    rebuilt without truncating the stored ids, and the outputs equal an uninterrupted run."""
    base, catalog, spec, ref = world
    redis_url, ns, client = redis_namespace
    env = {"TOS2CA_CATALOG": str(catalog), "TOS2CA_REDIS_URL": redis_url, "TOS2CA_REDIS_PREFIX": ns}
    work = tmp_path / "w"
    assert cli("submit", str(spec), "--workdir", str(work), env=env).returncode == 0
    assert cli("task", "plan", "--job", "1", "--workdir", str(work), env=env).returncode == 0
    monkeypatch.setenv("TOS2CA_REDIS_URL", redis_url)
    db = Config.from_env(str(work)).db()
    for c in db.chunks(1, "map")[:5]:
        p = cli("task", "map", "--job", "1", "--chunk", str(c["chunkID"]), "--workdir", str(work), env=env)
        assert p.returncode == 0, p.stderr
    keys = list(client.scan_iter(f"{ns}:*", count=1000))
    assert keys
    client.delete(*keys)  # Redis restarted empty
    p = cli("resume", "1", "--workdir", str(work), "--workers", "2", env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["status"] == "complete"
    assert_same_outputs(local_outputs(ref, tmp_path), local_outputs(res, tmp_path))
    assert all(c["attempts"] == 2 for c in db.chunks(1, "map")[:5]), "the lost chunks ran again"


def test_a_failed_job_is_resumed_once_its_cause_is_gone(world, tmp_path):
    base, catalog, spec, ref = world
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    victim = sorted(data.rglob("*.HDF5"))[7]
    good = victim.read_bytes()
    victim.write_bytes(b"not an HDF5 file")
    work = tmp_path / "w"
    p = cli("run", str(spec), "--catalog", str(data / "catalog-imerg.json"), "--workdir", str(work), "--workers", "2")
    assert p.returncode == 1 and json.loads(p.stdout.strip().splitlines()[-1])["status"] == "failed"
    victim.write_bytes(good)
    resume_and_compare(work, data / "catalog-imerg.json", ref, tmp_path)


def test_redis_emptied_while_run_runs_ends_the_job_then_resume_finishes(world, tmp_path, redis_namespace):
    """Never a livelock: tasks that find their plan gone fail the job (saying to resume)."""
    base, catalog, spec, ref = world
    redis_url, ns, client = redis_namespace
    env = {"TOS2CA_REDIS_URL": redis_url, "TOS2CA_REDIS_PREFIX": ns}
    work = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--catalog", str(catalog),
                             "--workdir", str(work), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))
    wait_until(lambda: map_started(work) or proc.poll() is not None)
    keys = list(client.scan_iter(f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    out, err = proc.communicate(timeout=300)
    first = json.loads(out.strip().splitlines()[-1])
    if first["status"] == "complete":  # it finished before the flush landed
        return
    assert proc.returncode == 1 and first["status"] == "failed", err[-2000:]
    assert "resume" in first["message"] or "KeyError" in first["message"], first["message"]
    p = cli("resume", "1", "--workdir", str(work), "--workers", "2",
            env=dict(env, TOS2CA_CATALOG=str(catalog)))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert_same_outputs(local_outputs(ref, tmp_path), local_outputs(res, tmp_path))


def test_a_signal_inside_a_held_block_is_raised_when_it_ends_never_inside_it():
    from tos2ca_batch.interrupts import held, hold_or_run

    seen = []

    def interrupt():
        raise KeyboardInterrupt("held")

    with pytest.raises(KeyboardInterrupt):
        with held():
            with held():
                hold_or_run(interrupt)  # what the CLI's handler does; nothing is raised here
                seen.append("inner ran on")
            seen.append("outer ran on")
    assert seen == ["inner ran on", "outer ran on"]
    with pytest.raises(KeyboardInterrupt):
        hold_or_run(interrupt)  # outside a held block: at once
    with held():
        pass  # nothing held is left over
