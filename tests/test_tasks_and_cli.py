"""Array tasks (claim, lease, re-run) and the command line, as a container runs them."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
from helpers import run_job, write_cube

from tos2ca_batch.stores.sqlite import SQLiteJobsDB

SPEC = {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
        "start": "2020-01-01T00:00", "end": "2020-01-01T01:30", "bbox": [0.0, 0.0, 11.0, 9.0],
        "tracking": {"min_size": 2}}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    values = np.random.default_rng(2).uniform(0, 20, (4, 10, 12)).astype(np.float32)
    return write_cube(base / "data", "CUBE", values, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))


def cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True,
                          env=e, timeout=300)


def test_claims_are_exclusive_and_leases_expire(tmp_path):
    db = SQLiteJobsDB(tmp_path / "j.sqlite")
    job = db.create_job({"stage": "phdef", "dataset": "D"})
    db.add_chunks(job, "map", [("202001010000", "202001010030")] * 2)
    db.add_chunks(job, "map", [("x", "y")] * 2)  # idempotent
    assert len(db.chunks(job, "map")) == 2
    db.add_stage_chunks(job, {"map": [("x", "y")] * 3, "reduce": [("a", "b")]})  # several stages, one commit
    assert [(r["stage"], r["chunkID"], r["startDate"]) for r in db.chunks(job)] == [
        ("map", 0, "202001010000"), ("map", 1, "202001010000"), ("map", 2, "x"), ("reduce", 0, "a")]
    db.execute("DELETE FROM chunks WHERE jobID = ? AND (stage = 'reduce' OR chunkID = 2)", (job,))
    assert db.claim_chunk(job, "map", 0, "w1", 600) == "claimed"
    assert db.claim_chunk(job, "map", 0, "w2", 600) == "busy"
    assert db.claim_chunk(job, "map", 1, "w1", -1) == "claimed"  # lease already expired
    assert db.claim_chunk(job, "map", 1, "w2", 600) == "claimed"
    row = db.chunks(job, "map")[1]
    assert row["attempts"] == 2 and row["worker"] == "w2"
    db.finish_chunk(job, "map", 1, "complete")
    assert db.claim_chunk(job, "map", 1, "w3", 600) == "complete"
    db.finish_chunk(job, "map", 0, "failed", "boom")
    assert db.claim_chunk(job, "map", 0, "w3", 600) == "claimed"
    assert db.query("SELECT version FROM schema_version") == [{"version": 3}]


def test_run_prints_json_last_and_exits_by_status(cube, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    p = cli("run", str(spec), "--catalog", str(cube), "--workdir", str(tmp_path / "w"), "--workers", "2",
            "--block-steps", "2", "--tile", "5,5", "--products", "masks,toc")
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["status"] == "complete" and last["job_id"] == 1
    assert sorted(os.path.basename(o) for o in last["outputs"]) == ["1-ForTraCC-Mask-Output.nc4", "1-ForTraCC-TOC.json"]
    assert "map" in p.stderr  # a progress bar per stage
    assert "job 1 complete: " in p.stderr and "anomalies" in p.stderr and "open first: 1-ForTraCC-TOC.json" in p.stderr
    # the process ends with os._exit, after closing SQLite: its WAL is back in jobs.sqlite
    assert sorted(p.name for p in (tmp_path / "w").glob("jobs.sqlite*")) == ["jobs.sqlite"]
    spec.write_text(json.dumps(dict(SPEC, operator="above")))
    p = cli("run", str(spec), "--catalog", str(cube), "--workdir", str(tmp_path / "w"))
    assert p.returncode != 0
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["status"] == "failed" and last["message"].startswith("operator:")
    st = json.loads(cli("status", "1", "--json", "--workdir", str(tmp_path / "w")).stdout)
    assert st["job"]["status"] == "complete" and st["chunks"]["map"] == {"complete": 2 * 3 * 2}
    assert st["job"]["spec"]["operator"] == "greaterThan"  # the spec as JSON, not a string
    human = cli("status", "1", "--workdir", str(tmp_path / "w")).stdout
    assert human.startswith("job 1 complete: ") and "chunks complete: map 12/12" in human
    failed = cli("status", "2", "--workdir", str(tmp_path / "w")).stdout
    assert failed.startswith("job 2 failed") and "message: operator:" in failed
    listing = cli("jobs", "--workdir", str(tmp_path / "w")).stdout.splitlines()
    assert [line.split()[:2] for line in listing] == [["2", "failed"], ["1", "complete"]]
    assert "CUBE v > 10.0" in listing[1]
    only = cli("jobs", "--status", "complete", "--json", "--workdir", str(tmp_path / "w")).stdout.splitlines()
    assert [json.loads(line)["jobID"] for line in only] == [1]


def ids_cube(cfg, job):
    import xarray as xr

    return xr.open_zarr(cfg.store(job).zarr_store())["anomaly_id"].values


def test_rerunning_a_task_is_harmless(cube, tmp_path):
    """Tasks of a running job, each a process as an array child runs it: a finished task re-run
    is skipped, a task without its done marker recomputes the same result."""
    ref_cfg, ref = run_job(tmp_path / "ref", SPEC, cube, block_steps=2, tile=(5, 12))
    before = ids_cube(ref_cfg, ref["job_id"])
    work = str(tmp_path / "w")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, chunking={"block_steps": 2, "tile": [5, 12]})))
    env = {"TOS2CA_CATALOG": str(cube)}
    assert cli("submit", str(spec), "--workdir", work, env=env).returncode == 0
    assert cli("task", "plan", "--job", "1", "--workdir", work, env=env).returncode == 0
    from tos2ca_batch.config import Config

    cfg = Config.from_env(work)
    db, store = cfg.db(), cfg.store(1)
    stages = (("map", 4), ("reduce", 1), ("relabel", 4))

    def run_all(expect: str, todo=stages) -> None:
        for stage, n in todo:
            for c in reversed(range(n)):
                p = cli("task", stage, "--job", "1", "--chunk", str(c), "--workdir", work, env=env)
                assert p.returncode == 0 and f'"{expect}"' in p.stdout, p.stderr

    def reset_and_run(expect: str) -> None:
        for stage, _ in stages:
            db.execute("UPDATE chunks SET status = 'pending' WHERE jobID = 1 AND stage = ?", (stage,))
        run_all(expect)

    run_all("done")
    p = cli("task", "relabel", "--job", "1", "--workdir", work, env=dict(env, AWS_BATCH_JOB_ARRAY_INDEX="1"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1]) == {"job_id": 1, "stage": "relabel", "chunk": 1, "state": "skipped"}
    # A task whose outputs are all written (e.g. killed before its row was updated) is not redone.
    reset_and_run("skipped")
    # Without the completion markers the tasks recompute: the same tables and the same ids.
    for stage, n in stages:
        for c in range(n):
            store.blobs.delete(f"{stage}:{c}:done")
    reset_and_run("done")
    run_all("done", [("publish", len(db.chunks(1, "publish"))), ("finalize", 1)])
    assert db.get_job(1)["status"] == "complete"
    after = ids_cube(cfg, 1)
    assert before.tobytes() == after.tobytes() and before.any()
    assert all(c["attempts"] == 3 and c["status"] == "complete" for c in db.chunks(1, "map"))


def test_submit_then_task_plan(cube, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    p = cli("submit", str(spec), "--catalog", str(cube), "--workdir", str(tmp_path / "w"))
    assert json.loads(p.stdout.splitlines()[-1]) == {"job_id": 1, "status": "pending", "message": None}
    p = cli("task", "plan", "--job", "1", "--workdir", str(tmp_path / "w"), env={"TOS2CA_CATALOG": str(cube)})
    assert p.returncode == 0, p.stderr
    st = json.loads(cli("status", "1", "--json", "--workdir", str(tmp_path / "w")).stdout)
    assert st["chunks"]["map"] == {"pending": 1} and st["job"]["phase"] == "plan"


def test_demo_command_help():
    p = cli("--help")
    assert p.returncode == 0 and all(c in p.stdout for c in ("demo", "run", "submit", "task", "status", "synth"))


def test_every_option_of_every_command_has_help():
    import argparse

    from tos2ca_batch.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(" ".join([*path, *(action.option_strings or [action.dest])]))

    walk(build_parser(), ["tos2ca-batch"])
    assert not missing, missing


def test_a_task_before_its_stage_is_ready_changes_nothing(cube, tmp_path):
    """`task reduce` before map finished: exit 75 ("not-ready"), the job is not failed, and it
    completes normally once map has run."""
    work = str(tmp_path / "w")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, chunking={"block_steps": 2, "tile": [5, 12]})))
    env = {"TOS2CA_CATALOG": str(cube)}
    assert cli("submit", str(spec), "--workdir", work, env=env).returncode == 0
    p = cli("task", "reduce", "--job", "1", "--workdir", work, env=env)
    assert p.returncode == 75 and json.loads(p.stdout.splitlines()[-1])["reason"] == "the job has not been planned yet"
    assert cli("task", "plan", "--job", "1", "--workdir", work, env=env).returncode == 0
    from tos2ca_batch.config import Config

    db = Config.from_env(work).db()
    before = db.chunks(1)
    assert cli("task", "map", "--job", "1", "--chunk", "0", "--workdir", work, env=env).returncode == 0
    p = cli("task", "reduce", "--job", "1", "--workdir", work, env=env)
    out = json.loads(p.stdout.splitlines()[-1])
    assert p.returncode == 75 and out["state"] == "not-ready", p.stderr
    assert out["reason"] == "map is not complete (3 pending)"
    row = db.get_job(1)
    assert row["status"] != "failed" and not row["message"]
    assert [c for c in db.chunks(1) if c["stage"] == "reduce"] == [c for c in before if c["stage"] == "reduce"]

    def run_stage(stage: str) -> None:
        for c in db.chunks(1, stage):
            p = cli("task", stage, "--job", "1", "--chunk", str(c["chunkID"]), "--workdir", work, env=env)
            assert p.returncode == 0 and json.loads(p.stdout.splitlines()[-1])["state"] in ("done", "skipped"), p.stderr

    # publish reads the map and reduce, not relabel's ids (they run as one wave): it may go first;
    # finalize waits for both.
    for stage in ("map", "reduce", "publish"):
        run_stage(stage)
    p = cli("task", "finalize", "--job", "1", "--workdir", work, env=env)
    reason = json.loads(p.stdout.splitlines()[-1])["reason"]
    assert p.returncode == 75 and reason == "relabel is not complete (4 pending)"
    for stage in ("relabel", "finalize"):
        run_stage(stage)
    assert db.get_job(1)["status"] == "complete"
    from helpers import assert_same_outputs, local_outputs

    from tos2ca_batch.runner import result

    _, ref = run_job(tmp_path / "ref", SPEC, cube, block_steps=2, tile=(5, 12))
    assert_same_outputs(local_outputs(result(Config.from_env(work), 1), tmp_path / "a"),
                        local_outputs(ref, tmp_path / "b"))


def test_the_pool_forks_after_the_plan_when_planning_leaves_no_thread_or_client(cube, tmp_path, monkeypatch):
    """``run`` of a PhDef job on local files with SQLite and folders forks its workers after the
    plan (its pages are then not shared yet: no copy-on-write while it plans), with no thread of
    the job alive at the fork; the job's lease is renewed from then on. Any other job, or any
    configuration that opens a connection, forks before the plan."""
    import threading

    from tos2ca_batch import runner
    from tos2ca_batch.backends.local import LocalBackend
    from tos2ca_batch.catalog import CatalogEntry
    from tos2ca_batch.config import Config
    from tos2ca_batch.spec import JobSpec
    from tos2ca_batch.worker import work

    events = []
    plan_job, make_pool = runner.plan_job, LocalBackend._make_pool
    monkeypatch.setattr(runner, "plan_job", lambda *a, **k: events.append("plan") or plan_job(*a, **k))
    monkeypatch.setattr(LocalBackend, "_make_pool", lambda self, cfg, ctx: events.append(
        ("fork", ctx.get_start_method(), sorted(t.name for t in threading.enumerate()))) or make_pool(self, cfg, ctx))

    def run_with_pool(cfg: Config, spec: dict) -> dict:
        backend = LocalBackend(2)
        backend.prepare()  # as the CLI does for ``run``
        try:
            return runner.run(cfg, spec, backend)
        finally:
            backend.close()

    threads = sorted(t.name for t in threading.enumerate())  # the test process's own: no lease, no tqdm monitor
    cfg = Config.from_env(str(tmp_path / "w"), [str(cube)])
    res = run_with_pool(cfg, SPEC)
    assert res["status"] == "complete", res["message"]
    assert events == ["plan", ("fork", "fork", threads)]

    # a job a worker claimed (its spec is read from its row when planned): forked before the plan
    events.clear()
    cfg = Config.from_env(str(tmp_path / "w2"), [str(cube)])
    job_id, error = runner.submit(cfg, SPEC)
    assert error is None
    backend = LocalBackend(2)
    backend.prepare()
    try:
        (res,) = work(cfg, backend, once=True)
    finally:
        backend.close()
    assert res["job_id"] == job_id and res["status"] == "complete", res["message"]
    assert events == [("fork", "fork", threads), "plan"]

    def decides(environ: dict, location: str = "/data/x_{time:%Y}.nc", fmt: str = "netcdf4", stage="phdef"):
        entry = CatalogEntry(name="D", full_name="", format=fmt, location=location, time_step=30,
                             start_date="2020-01-01T00:00", end_date="2020-01-02T00:00", variables=["v"],
                             coordinate_names={"lat": "lat", "lon": "lon", "time": "time"})
        spec = JobSpec(stage=stage, dataset="D", variable="v")
        return runner.forks_after_plan(Config.from_env(str(tmp_path / "w3"), environ=environ),
                                       (spec, {"D": entry}, {}))

    assert decides({}) and decides({}, fmt="hdf5")
    assert not decides({}, fmt="zarr")  # zarr's reads start a thread
    assert not decides({}, location="s3://bucket/x_{time:%Y}.nc")  # obstore's runtime
    assert not decides({}, stage="curation")
    for environ in ({"TOS2CA_DB_URL": "mysql://root@127.0.0.1:3306/x"}, {"TOS2CA_REDIS_URL": "redis://127.0.0.1"},
                    {"TOS2CA_STORE_URL": "s3://bucket/store"}, {"TOS2CA_OUTPUT_URL": "s3://bucket/out"}):
        assert not decides(environ), environ
    assert not runner.forks_after_plan(cfg, None)  # resume: the job's row is read after the fork


def test_a_lease_entered_without_renewal_starts_renewing_when_told(tmp_path):
    from tos2ca_batch.lifecycle import Lease

    holds = []
    lease = Lease(0.03, lambda: holds.append(1), "test", renew=False)
    with lease:
        assert len(holds) == 1 and lease._thread.ident is None  # held, no thread yet
        lease.renew_from_now()
        lease.renew_from_now()  # once
        assert lease._thread.is_alive()
        deadline = time.monotonic() + 60  # renewed every 0.01 s: however loaded the machine, it comes
        while len(holds) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(holds) >= 4
    lease._thread.join(60)
    assert not lease._thread.is_alive()


HEAP_PROBE = """
import resource, sys
import numpy as np
from tos2ca_batch.heap import tune_for_tasks
if sys.argv[1] == "tuned":
    assert tune_for_tasks() == {"heap_kept": True, "no_huge_page_advice": True}
    import numpy._core.multiarray as multiarray  # numpy 2, which the tests install
    assert not multiarray._get_madvise_hugepage()
faults = []
for _ in range(6):  # a map task's steps: two step-sized arrays (values, labels) made, filled, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    values, labels = np.ones(26 << 20, np.uint8), np.ones(26 << 20, np.uint8)
    del values, labels
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[0], sum(faults[1:]))
"""


@pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"), reason="glibc's mallopt only")
def test_a_task_process_reuses_a_freed_step_arrays_pages_for_the_next_step():
    """With the memory settings for tasks (``heap.tune_for_tasks``, what the CLI and every pool
    worker apply), the pages of one step's freed arrays serve the next step's: the kernel faults
    them in once, for the first step. glibc's defaults give them back and fault them in again."""
    def probe(mode: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        first, later = map(int, out.stdout.split())
        return first, later

    first, later = probe("tuned")
    assert first > 0 and later < first / 20, (first, later)
    default_first, default_later = probe("default")
    assert default_later > default_first, (default_first, default_later)  # what the setting avoids


def _tuned_here(_: int) -> bool:
    from tos2ca_batch import heap

    return heap._tuned is not None and all(heap._tuned.values())


def test_pool_workers_and_the_cli_tune_memory_for_tasks(cube, tmp_path):
    """Every process that runs tasks has the settings: a pool worker (whatever its parent did) and
    the CLI's own process (a one-worker run, an MPI rank, a Batch child)."""
    from tos2ca_batch.backends.local import LocalBackend
    from tos2ca_batch.config import Config

    backend = LocalBackend(2)
    try:
        pool = backend._ensure_pool(Config.from_env(str(tmp_path / "w"), [str(cube)]))  # spawned: a fresh parent
        assert all(pool.map(_tuned_here, range(2)))
    finally:
        backend.close()
    code = ("import sys; from tos2ca_batch import cli, heap; cli.main(['operators']); "
            "sys.stderr.write(repr(heap._tuned))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    want = "{'heap_kept': True, 'no_huge_page_advice': True}"
    assert out.returncode == 0 and out.stderr.endswith(want), out.stderr[-2000:]
