"""Fault campaign: interrupt jobs in every way an operator meets, finish them, compare outputs.

    python benchmarks/bench_faults.py [--trials 20] [--seed 0] [--redis redis://127.0.0.1:6379/0]

Faults (each trial ends with every output byte-identical to an uninterrupted run, or it counts
as not survived):
- ``kill -9`` of ``run`` at a seeded random moment (plan, map, reduce, publish, finalize), then
  ``resume``;
- Redis emptied at a random moment of a job whose tables live in Redis (a restart without
  persistence), then ``resume`` if the job did not finish;
- the disk full: the work dir on a small tmpfs, the job must end ``failed`` (never stuck) with
  no half-written file; the tmpfs is grown and the job resumed (needs root for ``mount``);
- a duplicate of every array task run concurrently with it (as AWS Batch may do).

Prints one JSON line per fault kind and a summary line ``faults survived / tried``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import assert_same_outputs, local_outputs  # noqa: E402

from tos2ca_batch.config import Config  # noqa: E402
from tos2ca_batch.synth import synthesize  # noqa: E402

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T07:30", "bbox": [-180.0, -90.0, 180.0, 90.0],
        "tracking": {"min_size": 20}, "chunking": {"block_steps": 2, "tile": [60, 120]}}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=900)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def same(ref: dict, res: dict, tmp: Path) -> bool:
    try:
        assert_same_outputs(local_outputs(ref, tmp), local_outputs(res, tmp))
        return True
    except AssertionError as exc:
        print(f"  outputs differ: {exc}", file=sys.stderr)
        return False


def finish(work: Path, env: dict) -> dict:
    """The job's final result: as it stands if complete, else after ``resume``."""
    p = cli("status", "1", "--workdir", str(work), env=env)
    st = last_json(p.stdout) if p.stdout.strip() else {}
    if st.get("job", {}).get("status") == "complete":
        return {"job_id": 1, "status": "complete", "outputs": st["outputs"]}
    p = cli("resume", "1", "--workdir", str(work), "--workers", "2", env=env)
    return last_json(p.stdout) if p.stdout.strip() else {"status": "no output", "stderr": p.stderr[-500:]}


def start_run(spec: Path, work: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--workdir", str(work),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **env))


def kill_trials(n: int, rng: random.Random, spec: Path, env: dict, ref: dict, tmp: Path, span: float) -> dict:
    survived, phases = 0, []
    for k in range(n):
        work = tmp / f"kill-{k}"
        proc = start_run(spec, work, env)
        delay = rng.uniform(0.5, span)
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < delay:
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        time.sleep(0.5)
        st = cli("status", "1", "--workdir", str(work), env=env)
        row = last_json(st.stdout).get("job") if st.returncode == 0 else None
        phases.append(row["phase"] if row else "before the job row")
        if row is None:  # killed before anything was stored: a new run is the answer
            p = cli("run", str(spec), "--workdir", str(work), env=env)
            res = last_json(p.stdout)
        else:
            res = finish(work, env)
        ok = res.get("status") == "complete" and same(ref, res, tmp)
        survived += ok
        print(f"  kill -9 after {delay:.2f} s (phase {phases[-1]}): {'survived' if ok else 'NOT survived'}",
              file=sys.stderr)
    return {"fault": "kill -9 of run, then resume", "tried": n, "survived": survived,
            "phases": {p: phases.count(p) for p in sorted(set(phases), key=str)}}


def redis_trials(n: int, rng: random.Random, spec: Path, env: dict, ref: dict, tmp: Path, url: str,
                 span: float) -> dict:
    import redis

    client = redis.Redis.from_url(url)
    survived = 0
    for k in range(n):
        ns = f"tos2ca-faults-{os.getpid()}-{k}"
        e = dict(env, TOS2CA_REDIS_URL=url, TOS2CA_REDIS_PREFIX=ns)
        work = tmp / f"redis-{k}"
        proc = start_run(spec, work, e)
        time.sleep(rng.uniform(0.5, span))
        keys = list(client.scan_iter(f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
        proc.communicate(timeout=900)
        res = finish(work, e)
        ok = res.get("status") == "complete" and same(ref, res, tmp)
        survived += ok
        print(f"  Redis emptied ({len(keys)} keys): {'survived' if ok else 'NOT survived'}", file=sys.stderr)
        leftover = list(client.scan_iter(f"{ns}:*", count=1000))
        if leftover:
            client.delete(*leftover)
    return {"fault": "Redis emptied mid-job, then resume", "tried": n, "survived": survived}


def disk_full_trials(n: int, spec: Path, env: dict, ref: dict, tmp: Path) -> dict:
    survived = tried = 0
    for k in range(n):
        work = tmp / f"full-{k}"
        work.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={1 + k}m", "tmpfs", str(work)]).returncode:
            return {"fault": "disk full (tmpfs)", "tried": 0, "survived": 0, "skipped": "mount is not allowed"}
        tried += 1
        try:
            e = dict(env, TOS2CA_DB_URL=f"sqlite:///{tmp}/full-{k}.sqlite")
            p = cli("run", str(spec), "--workdir", str(work), "--workers", "2", env=e)
            first = last_json(p.stdout) if p.stdout.strip() else {"status": "no JSON line"}
            clean = not list(work.rglob("*.part")) and not list(work.rglob(".*.tmp*"))
            ended = first.get("status") in ("failed", "complete")
            subprocess.run(["mount", "-o", "remount,size=512m", str(work)], check=True)
            res = finish(work, e) if first.get("status") != "complete" else first
            ok = ended and clean and res.get("status") == "complete" and same(ref, res, tmp)
            survived += ok
            print(f"  disk of {1 + k} MB: first run {first.get('status')} ({(first.get('message') or '')[:80]}), "
                  f"clean={clean}: {'survived' if ok else 'NOT survived'}", file=sys.stderr)
        finally:
            subprocess.run(["umount", str(work)])
    return {"fault": "disk full (work dir on a tmpfs), then grown and resumed", "tried": tried, "survived": survived}


def duplicate_tasks(spec: Path, env: dict, ref: dict, tmp: Path) -> dict:
    work = tmp / "dup"
    assert cli("submit", str(spec), "--workdir", str(work), env=env).returncode == 0
    assert cli("task", "plan", "--job", "1", "--workdir", str(work), env=env).returncode == 0
    db = Config.from_env(str(work)).db()
    for stage in ("map", "reduce", "relabel", "publish", "finalize"):
        procs = []
        for c in db.chunks(1, stage):
            for _ in range(2):
                procs.append(subprocess.Popen([sys.executable, "-m", "tos2ca_batch", "task", stage, "--job", "1",
                                               "--chunk", str(c["chunkID"]), "--workdir", str(work)],
                                              env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            while len([p for p in procs if p.poll() is None]) >= 4:
                time.sleep(0.05)
        for p in procs:
            p.wait()
    res = finish(work, env)
    ok = res.get("status") == "complete" and same(ref, res, tmp)
    return {"fault": "every task run twice at once", "tried": 1, "survived": int(ok)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--redis-trials", type=int, default=5)
    ap.add_argument("--disk-trials", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    try:
        catalog = synthesize("imerg", tmp / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 7, 30), res=1.0)
        env = {"TOS2CA_CATALOG": str(catalog), "HDF5_USE_FILE_LOCKING": "FALSE"}
        spec = tmp / "spec.json"
        spec.write_text(json.dumps(SPEC))
        t0 = time.time()
        p = cli("run", str(spec), "--workdir", str(tmp / "ref"), "--workers", "2", env=env)
        ref = last_json(p.stdout)
        span = time.time() - t0
        assert ref["status"] == "complete", ref
        reports = [kill_trials(args.trials, rng, spec, env, ref, tmp, span)]
        try:
            import redis

            redis.Redis.from_url(args.redis, socket_connect_timeout=3).ping()
            reports.append(redis_trials(args.redis_trials, rng, spec, env, ref, tmp, args.redis, span))
        except Exception as exc:
            reports.append({"fault": "Redis emptied mid-job", "tried": 0, "survived": 0, "skipped": str(exc)})
        reports.append(disk_full_trials(args.disk_trials, spec, env, ref, tmp))
        reports.append(duplicate_tasks(spec, env, ref, tmp))
        for r in reports:
            print(json.dumps(r))
        tried = sum(r["tried"] for r in reports)
        print(json.dumps({"faults survived": sum(r["survived"] for r in reports), "tried": tried,
                          "uninterrupted run s": round(span, 2)}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
