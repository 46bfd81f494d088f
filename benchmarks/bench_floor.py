"""A job's wall time as a ratio to the machine's single-core floor, both timed as whole processes.

    python benchmarks/bench_floor.py [--res 0.25] [--steps 48] [--workers 1 2] [--repeats 3] [--warmup 1] [--mpi]
                                     [--field blobs|fractal]

The floor is a process that starts Python, imports h5py and scipy, reads every step's field with
h5py and labels its mask (``> 10``) with ``scipy.ndimage.label``, 8-connected: the least any
tool must do. The job is ``tos2ca-batch run`` (masks only) on the same files, as a user runs it
(interpreter start and imports included), its work dir (chunk store, outputs, jobs DB) on
``--work`` (tmpfs by default). ``floor2`` runs two floor processes at once, each on half the
files: how well this machine runs two independent copies of the work, the ceiling of any
job's parallel efficiency here. Prints one JSON line: the medians, Mpx/s, the ratio of each to
the floor measured in the same run, and the parallel efficiencies T1 / (2 T2) of floor and job
(from the medians, and per round of the interleaved runs).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_run import imerg_catalog, job_arguments
from bench_run import spec as job_spec

FLOOR = """
import sys
import h5py, numpy as np
from scipy import ndimage
structure = np.ones((3, 3), bool)
n = 0
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        field = f["Grid/precipitation"][0]
    n += ndimage.label(field > 10.0, structure=structure)[1]
print(n)
"""


SERIAL_STAGES = ("plan", "reduce", "finalize")  # the waves of one task: every other worker waits


def timed(cmd: list[str], env: dict, timings: list | None = None) -> float:
    """The wall time of ``cmd``; ``timings``: gets the stage timings its last JSON line reports
    (``run`` prints them), so each run's serial share is of its own wall time."""
    # The last run's work dir was just deleted: on a disk mounted with ``discard`` (this machine)
    # the deletes stall the next files made for a second or so. Flush them before timing.
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {p.stderr[-2000:]}")
    if timings is not None:  # under mpirun every rank's lines are there: the job's is the one with timings
        timings.append(next(doc["timings"] for doc in map(_json_or_none, reversed(p.stdout.splitlines()))
                            if isinstance(doc, dict) and "timings" in doc))
    return wall


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def timed_together(cmds: list[list[str]], env: dict) -> float:
    """Wall time of processes started together, until the last one ends."""
    os.sync()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError(f"floor failed: {b''.join(errors)[-2000:]!r}")
    return wall


def main() -> None:
    ap = job_arguments()
    ap.add_argument("--mpi", action="store_true", help="also mpirun -n 2 ... --backend mpi")
    ap.add_argument("--warmup", type=int, default=1,
                    help="rounds of every mode run first and not kept (as hyperfine's --warmup): the "
                         "first job after a pause ran 5-15 %% slower than the next ones (RESULTS.md)")
    roomy_tmpfs = os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 4 << 30  # not Docker's 64 MB
    ap.add_argument("--work", default="/dev/shm" if roomy_tmpfs else None,
                    help="where each run's work dir (chunk store, outputs, jobs DB) goes; default: tmpfs "
                         "(/dev/shm), so that the disk's state after earlier runs' deletes does not time "
                         "the job's file creations (RESULTS.md); '' = the system's temp dir")
    args = ap.parse_args()
    catalog = imerg_catalog(args)
    data = catalog.parent
    files = sorted(str(p) for p in data.rglob("*.HDF5"))
    assert len(files) == args.steps, f"{len(files)} files under {data}"
    env = dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE")
    # An installed package has its bytecode compiled by pip; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (this machine) would compile ~80 modules in every process (0.12 s).
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "tos2ca_batch"), str(root / "kernels")],
                   check=True, capture_output=True)
    ny, nx = round(180 / args.res), round(360 / args.res)
    mpx = args.steps * ny * nx / 1e6
    spec = job_spec(args.steps)
    exe = str(Path(sys.executable).parent / "tos2ca-batch")
    modes = {f"local{w}": [exe, "run", "SPEC", "--catalog", str(catalog), "--workers", str(w)] for w in args.workers}
    if args.mpi:
        mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or "mpirun"
        modes["mpi2"] = [mpirun, "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tos2ca_batch", "run", "SPEC",
                         "--catalog", str(catalog), "--backend", "mpi"]
    walls: dict[str, list[float]] = {"floor": [], "floor2": [], **{m: [] for m in modes}}
    stage_timings: dict[str, list[dict]] = {m: [] for m in modes}
    half = len(files) // 2
    for round_ in range(-args.warmup, args.repeats):  # interleaved: a slow moment of the machine hits every mode alike
        kept = round_ >= 0  # the warm-up rounds' times are not kept
        runs = {"floor": timed([sys.executable, "-c", FLOOR, *files], env)}
        # The machine's own parallel ceiling for this work: two floor processes, each on half the
        # files, at once (nothing shared, nothing to coordinate).
        runs["floor2"] = timed_together([[sys.executable, "-c", FLOOR, *files[:half]],
                                         [sys.executable, "-c", FLOOR, *files[half:]]], env)
        for mode, cmd in modes.items():
            work = Path(tempfile.mkdtemp(prefix="bench-floor-", dir=args.work or None))
            try:
                (work / "spec.json").write_text(json.dumps(spec))
                cmd = [str(work / "spec.json") if c == "SPEC" else c for c in cmd] + ["--workdir", str(work)]
                runs[mode] = timed(cmd, env, stage_timings[mode] if kept else [])
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if kept:
            for mode, wall in runs.items():
                walls[mode].append(wall)
    med = {k: statistics.median(v) for k, v in walls.items()}
    serial = {m: [sum(t.get(k, 0.0) for k in SERIAL_STAGES) for t in ts] for m, ts in stage_timings.items()}
    print(json.dumps({
        "benchmark": "floor", "field": args.field, "shape": [args.steps, ny, nx], "mpx": round(mpx, 1),
        "repeats": args.repeats, "warmup": args.warmup, "median_s": {k: round(v, 3) for k, v in med.items()},
        "walls": {k: [round(x, 3) for x in v] for k, v in walls.items()},
        "mpx_per_s": {k: round(mpx / v, 1) for k, v in med.items()},
        "ratio_to_floor": {k: round(v / med["floor"], 2) for k, v in med.items() if k not in ("floor", "floor2")},
        # T1 / (2 T2): the job's (1 worker vs 2) and the floor's (one process vs two on halves)
        "parallel_efficiency": {"floor": round(med["floor"] / (2 * med["floor2"]), 3),
                                **({"job": round(med["local1"] / (2 * med["local2"]), 3)}
                                   if {"local1", "local2"} <= set(med) else {})},
        # The same, per round (its one- and two-process runs back to back): this VM's speed drifts
        # by 10-30 % over minutes, which medians of separate columns mix into the ratio.
        "parallel_efficiency_by_round": {
            name: [round(a / (2 * b), 3) for a, b in zip(walls[one], walls[two])]
            for name, one, two in (("floor", "floor", "floor2"), ("job", "local1", "local2"))
            if one in walls and two in walls},
        # plan + reduce + finalize as each run reports them, and as a share of that run's wall time
        "serial_ms": {m: round(statistics.median(v) * 1000, 1) for m, v in serial.items()},
        "serial_share": {m: round(statistics.median(x / w for x, w in zip(v, walls[m])), 4) for m, v in serial.items()},
        "machine": f"{os.cpu_count()} cores", "work": args.work or tempfile.gettempdir(),
    }))


if __name__ == "__main__":
    main()
