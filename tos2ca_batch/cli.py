"""Command line: ``tos2ca-batch demo | run | submit | task | resume | cancel | status | worker | aws | slurm | synth``.

Exit status: 0 complete (or done), 1 failed, 2 bad usage, 3 cancelled, 75 a task whose earlier
stages are not complete or whose chunk another live task holds (nothing changed; never 0, so an
array scheduler does not count it done), 130/143 interrupted by SIGINT/SIGTERM (a job: cancelled,
continue it with ``resume``; a ``task``: its chunk released, the job goes on).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tos2ca_batch import __version__
from tos2ca_batch.heap import tune_for_tasks
from tos2ca_batch.pipeline import TASK_COMMANDS
from tos2ca_batch.stages.common import CURATION_PRODUCTS, PHDEF_OPTIONAL, PHDEF_PRODUCTS

EXIT_NOT_READY = 75  # EX_TEMPFAIL: a task whose earlier stages are not complete; nothing changed
EXIT_CANCELLED = 3
EXIT_BY_STATUS = {"complete": 0, "failed": 1, "cancelled": EXIT_CANCELLED}


def _workers(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number >= 1, got {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1 or len(text.strip()) > 9:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 999999999, got {text!r}")
    return int(text)


def _index(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 9:
        raise argparse.ArgumentTypeError(f"must be a chunk index (a whole number >= 0), got {text!r}")
    return int(text)


def _job(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 18 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a job id is a whole number >= 1, got {text!r}")
    return int(text)


class _Signals:
    """SIGINT/SIGTERM raise :class:`~tos2ca_batch.runner.Interrupted` in the main thread, so the
    job is cancelled (leases released, pool stopped) and the JSON line still printed."""

    def __enter__(self):
        import signal

        from tos2ca_batch.interrupts import hold_or_run
        from tos2ca_batch.runner import Interrupted

        def interrupt(signum: int) -> None:
            raise Interrupted(signum)

        def handler(signum, frame):
            hold_or_run(lambda: interrupt(signum))

        self._old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        import signal

        for s, h in self._old.items():
            signal.signal(s, h)


def _exit_code(res: dict) -> int:
    if res.get("interrupted"):
        import signal

        return 128 + int(getattr(signal, res["interrupted"]))
    return EXIT_BY_STATUS.get(res["status"], 1)


def _tile(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.split(","))
        if h < 1 or w < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be H,W with whole numbers >= 1, got {text!r}") from None
    return h, w


def _products(text: str) -> list[str]:
    items = [p for p in text.split(",") if p]
    allowed = PHDEF_PRODUCTS + PHDEF_OPTIONAL + tuple(p for p in CURATION_PRODUCTS if p not in PHDEF_PRODUCTS)
    bad = [p for p in items if p not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"--products: unknown {bad}; allowed: PhDef "
                                         f"{','.join(PHDEF_PRODUCTS + PHDEF_OPTIONAL)}; curation "
                                         f"{','.join(CURATION_PRODUCTS)}")
    return items


def _load_spec(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"spec: cannot read {path} as JSON ({exc})") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="work dir (jobs.sqlite, chunk store, outputs/); default ./tos2ca-work "
                                     "or $TOS2CA_WORKDIR")
    p.add_argument("--catalog", action="append", default=[], help="extra dataset catalog JSON (repeatable)")


SPEC_HELP = "the job spec, a JSON file (README: Running a job)"
BACKEND_HELP = "where array tasks run (mpi: start under mpirun ... python -m mpi4py -m tos2ca_batch)"
PREFIX_HELP = "prefix of the compute environment, queue and job definition names (tos2ca-batch)"


def _chunking_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--block-steps", type=_count, default=None, help="time steps per chunk (default: the planner's)")
    p.add_argument("--tile", type=_tile, default=None, help="tile size H,W in grid cells (default: the planner's)")
    p.add_argument("--products", type=_products, default=None,
                   help=f"PhDef: subset of {','.join(PHDEF_PRODUCTS)} (default: all) and "
                        f"{','.join(PHDEF_OPTIONAL)} (a GIF of the job; only when asked for); curation: "
                        f"{','.join(CURATION_PRODUCTS)} (default: all but anomaly-plots)")


def _run_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_workers, default=None, help="parallel processes (default: cores)")
    _chunking_opts(p)
    p.add_argument("--backend", default="local", choices=["local", "mpi"], help=BACKEND_HELP)


def _dataset_range(p: argparse.ArgumentParser, verb: str, variable_verb: str) -> None:
    """``--dataset --variable --start --end``: a command on a dataset's files over a range."""
    p.add_argument("--dataset", required=True, help=f"the catalog dataset to {verb}")
    p.add_argument("--variable", default=None, help=f"the variable to {variable_verb} (default: the dataset's first)")
    p.add_argument("--start", required=True, help="first time, ISO 8601")
    p.add_argument("--end", required=True, help="last time, ISO 8601")


def _on_job(sub, name: str, help_: str, func, reason: bool = False) -> argparse.ArgumentParser:
    """A subcommand on one existing job: ``<name> JOB [--reason R] [--workdir] [--catalog]``."""
    p = sub.add_parser(name, help=help_)
    p.set_defaults(func=func)
    p.add_argument("job", type=_job, help="the job's id")
    if reason:
        p.add_argument("--reason", default="cancelled by the user", help="recorded as the job's message")
    _common(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tos2ca-batch", description=__doc__)
    ap.add_argument("--version", action="version", version=__version__)
    ap.add_argument("-v", "--verbose", action="store_true", help="log this package's steps (DEBUG) to stderr")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthesize data, run a PhDef job, print where to look")
    p.set_defaults(func=cmd_demo)
    _common(p)
    _run_opts(p)
    p.add_argument("--res", type=float, default=0.25, help="synthetic grid spacing in degrees")

    p = sub.add_parser("run", help="run a job spec to completion")
    p.set_defaults(func=cmd_run)
    p.add_argument("spec", help=SPEC_HELP)
    _common(p)
    _run_opts(p)

    p = sub.add_parser("submit", help="store a job as pending and print its id")
    p.set_defaults(func=cmd_submit)
    p.add_argument("spec", help=SPEC_HELP)
    _common(p)
    _chunking_opts(p)

    p = sub.add_parser("task", help="run one array task (as an AWS Batch child does)")
    p.set_defaults(func=cmd_task)
    p.add_argument("stage", choices=TASK_COMMANDS, help="the stage whose chunk to run (plan: plan the job)")
    p.add_argument("--job", type=_job, required=True, help="the job's id (from submit or aws submit)")
    p.add_argument("--chunk", type=_index, default=None, help="default: $AWS_BATCH_JOB_ARRAY_INDEX or 0")
    p.add_argument("--chunk-offset", type=_index, default=0,
                   help="added to $AWS_BATCH_JOB_ARRAY_INDEX: the first chunk of this array part (a stage of "
                        "over 10,000 chunks is submitted as several arrays)")
    _common(p)

    p = _on_job(sub, "resume", "finish a job that stopped (killed, interrupted, failed, cancelled)", cmd_resume)
    p.add_argument("--workers", type=_workers, default=None, help="parallel processes (default: cores)")
    p.add_argument("--backend", default="local", choices=["local", "mpi"], help=BACKEND_HELP)
    _on_job(sub, "cancel", "cancel a pending or running job (its tasks stop at the next chunk)", cmd_cancel,
            reason=True)

    p = sub.add_parser("worker", help="claim pending jobs and run them (TOS2CA's EC2 loop)")
    p.set_defaults(func=cmd_worker)
    _common(p)
    p.add_argument("--once", action="store_true", help="stop when no job is pending")
    p.add_argument("--poll-seconds", type=float, default=10.0, help="wait between looks for pending jobs (10)")
    p.add_argument("--workers", type=_workers, default=None, help="parallel processes per job (default: cores)")
    p.add_argument("--backend", default="local", choices=["local", "mpi"], help=BACKEND_HELP)

    p = sub.add_parser("aws", help="AWS Batch / Fargate: register manifests, submit, status")
    aws = p.add_subparsers(dest="aws_command", required=True)
    r = aws.add_parser("register", help="create compute environment and queue, register the job definition")
    r.set_defaults(func=cmd_aws_register)
    r.add_argument("--platform", choices=["ec2", "fargate"], default="ec2",
                   help="EC2 Spot compute environment or Fargate (default: ec2)")
    r.add_argument("--image", required=True, help="the container image built from the Dockerfile")
    r.add_argument("--subnets", required=True, help="comma-separated subnet ids")
    r.add_argument("--security-groups", required=True, help="comma-separated security group ids")
    r.add_argument("--service-role-arn", required=True, help="AWS Batch's service role")
    r.add_argument("--execution-role-arn", required=True, help="the role ECS pulls the image and writes logs with")
    r.add_argument("--job-role-arn", required=True, help="the role the tasks run as (S3, Secrets Manager, SES)")
    r.add_argument("--instance-role-arn", default="", help="EC2 only: instance profile ARN")
    r.add_argument("--secret-id", default="", help="Secrets Manager secret the children read")
    r.add_argument("--store-url", default="", help="chunk store for children, e.g. s3://bucket/store")
    r.add_argument("--name-prefix", default="tos2ca-batch", help=PREFIX_HELP)
    r.add_argument("--max-vcpus", type=int, default=2000,
                   help="the compute environment's most vCPUs (2000: the 1,000 two-vCPU containers of estimate's "
                        "middle column; estimate gives the vCPUs each container count needs)")
    r.add_argument("--assign-public-ip", choices=["ENABLED", "DISABLED"], default="DISABLED",
                   help="Fargate: give tasks a public IP (only without a NAT gateway; default DISABLED)")
    r.add_argument("--scheduling-policy", default=None, metavar="fair-share|ARN",
                   help="make the job queue fair-share: 'fair-share' creates manifests/scheduling-policy.json's "
                        "(equal shares; a job's share is its user's unless --share-identifier), or give a policy's "
                        "ARN (default: first in, first out). Only when the queue is created")
    r.add_argument("--sync-schedule", default=None,
                   help="also create an EventBridge rule that runs 'sync --due' as a Batch job on this schedule, "
                        "e.g. 'rate(30 minutes)' (jobs get schedules with: sync J --every)")
    r.add_argument("--events-role-arn", default="", help="with --sync-schedule: the role EventBridge submits "
                                                         "the job with (batch:SubmitJob)")
    s = aws.add_parser("submit", help="plan here, then submit the chained array jobs")
    s.set_defaults(func=cmd_aws_submit)
    s.add_argument("spec", help=SPEC_HELP)
    _common(s)
    _batch_opts(s)
    _chunking_opts(s)
    w = aws.add_parser("sweep", help="plan a sweep here (every combination of a grid of settings), then submit "
                                     "each combination's chain; jobs that share a map start after its share job; "
                                     "the last combination to end writes the sweep's table")
    w.set_defaults(func=cmd_aws_sweep)
    _sweep_opts(w)
    _batch_opts(w)
    _chunking_opts(w)
    y = _on_job(aws, "sync", "plan a sync of a complete job here, then submit only its new chunks as array jobs "
                             "(the chain of aws submit)", cmd_aws_sync)
    _batch_opts(y)
    y.add_argument("--until", default=None, help="sync up to this time, ISO 8601 (default: the newest arrived)")
    _on_job(aws, "status", "each stage's Batch status and chunk counts", cmd_aws_status)
    _on_job(aws, "cancel", "terminate a job's Batch jobs and cancel the job", cmd_aws_cancel, reason=True)

    from tos2ca_batch import cli_slurm

    cli_slurm.add_parser(sub, sys.modules[__name__])

    p = _on_job(sub, "status", "a job: what it found, its outputs, its chunks, what to do next", cmd_status)
    p.add_argument("--json", action="store_true", help="the job's row (spec as JSON), chunk counts and outputs as "
                                                       "one JSON object, for scripts")

    p = sub.add_parser("estimate", help="chunks, arrays, time, memory and bytes of a job, before submitting it "
                                        "(reads no pixel, writes nothing)")
    p.set_defaults(func=cmd_estimate)
    p.add_argument("spec", help=SPEC_HELP)
    _common(p)
    p.add_argument("--containers", type=_workers, nargs="+", default=[100, 1000, 5000],
                   help="concurrent containers to give the wall time for (default: 100 1000 5000)")
    p.add_argument("--platform", choices=["fargate", "ec2"], default="fargate",
                   help="whose job definition (vCPUs, memory) and container start to assume")
    p.add_argument("--components-per-step", type=float, default=None,
                   help="components a step (default: the measured rate per Mpx times the grid)")
    p.add_argument("--max-vcpus", type=_count, default=2000,
                   help="the compute environment's maxvCpus (default 2000, aws register's): containers beyond "
                        "it wait")
    p.add_argument("--block-steps", type=_count, default=None, help="time steps per chunk (default: the planner's)")
    p.add_argument("--tile", type=_tile, default=None, help="tile size H,W in grid cells (default: the planner's)")

    p = sub.add_parser("jobs", help="the running and past jobs, newest first, one line each")
    p.set_defaults(func=cmd_jobs)
    _common(p)
    p.add_argument("--status", choices=["pending", "running", "complete", "failed", "cancelled"], default=None,
                   help="only jobs in this state")
    p.add_argument("--limit", type=_count, default=50, help="at most this many jobs (50)")
    p.add_argument("--json", action="store_true", help="one JSON object a line, for scripts")

    p = sub.add_parser("sync", help="extend complete jobs with the data that arrived since they ended: now "
                                    "(sync J), on a schedule (sync J --every), every due one (sync --due)")
    p.set_defaults(func=cmd_sync)
    p.add_argument("job", type=_job, nargs="?", default=None, help="the complete PhDef job to extend")
    p.add_argument("--until", default=None, help="sync up to this time, ISO 8601 (default: the newest step whose "
                                                 "file has arrived)")
    p.add_argument("--every", default=None, help="store a schedule instead of syncing now: hourly, daily or <N>min "
                                                 "(e.g. 30min); 'sync --due' runs it (cron, a systemd timer, "
                                                 "EventBridge Scheduler)")
    p.add_argument("--unschedule", action="store_true", help="remove the job's schedule")
    p.add_argument("--due", action="store_true", help="run every scheduled sync that is due, each once")
    p.add_argument("--list", action="store_true", help="list the jobs' sync schedules and last outcomes")
    p.add_argument("--workers", type=_workers, default=None, help="parallel processes (default: cores)")
    p.add_argument("--backend", default="local", choices=["local", "mpi"], help=BACKEND_HELP)
    _common(p)

    p = sub.add_parser("replay", help="run a spec's range as if its data arrived N steps at a time (a job, then "
                                      "a sync per batch), then one-shot; print each batch's latency and check "
                                      "that both give the same outputs (exit 1 if not)")
    p.set_defaults(func=cmd_replay)
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--batch-steps", type=_count, required=True, help="time steps that arrive together")
    _common(p)
    _run_opts(p)

    p = sub.add_parser("inject", help="copy a dataset's files over a range with features of known truth added "
                                      "(same layout), plus a catalog entry and a truth file for 'score'")
    p.set_defaults(func=cmd_inject)
    _dataset_range(p, "copy", "inject into")
    p.add_argument("--features", required=True, help="the features, a JSON file (README: Knowing how good a "
                                                     "setting is)")
    p.add_argument("--out", required=True, help="folder for the copy, catalog.json and truth.json")
    p.add_argument("--name", default=None, help="the copy's dataset name (default: <dataset>_injected)")
    _common(p)

    p = sub.add_parser("score", help="score a complete job against a truth file: pixel POD/FAR/CSI, objects, "
                                     "MOTA, IDF1, identity switches, merge and split events (JSON, CSV, PNG)")
    p.set_defaults(func=cmd_score)
    p.add_argument("job", type=_job, help="the complete PhDef job to score")
    p.add_argument("--truth", required=True, help="the truth file (from inject)")
    p.add_argument("--iou", type=float, default=0.5, help="the IoU a detected and a truth object need to match "
                                                         "(0.5)")
    p.add_argument("--out", default=".", help="folder for J-scores.json, .csv and .png (default: here)")
    _common(p)

    p = sub.add_parser("sweep", help="run a spec over a grid of settings as one sweep (combinations with the "
                                     "same binarization share one map), each combination's outputs in its own "
                                     "sub-folder, and a table and heat map of their scores or counts")
    p.set_defaults(func=cmd_sweep)
    _sweep_opts(p)
    _run_opts(p)

    p = sub.add_parser("scan", help="before a big job: check a dataset's files over a range (present, missing, "
                                    "unreadable, other grid, all fill; value ranges) with a progress bar; files "
                                    "scanned before and unchanged are not read again")
    p.set_defaults(func=cmd_scan)
    _dataset_range(p, "scan", "read")
    p.add_argument("--out", default=".", help="folder for <dataset>-scan.csv, -scan.json and the problem plots "
                                              "(default: here)")
    _common(p)

    p = sub.add_parser("operators", help="the operators a job may use (built-in and installed plugins) and "
                                         "their parameters")
    p.set_defaults(func=cmd_operators)
    p.add_argument("--json", action="store_true", help="one JSON object an operator, for scripts")

    p = sub.add_parser("schema", help="print the job spec's JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("synth", help="write synthetic files in a real dataset's layout")
    p.set_defaults(func=cmd_synth)
    p.add_argument("--kind", choices=["imerg", "mergir", "merra2", "mur"], default="imerg",
                   help="whose file layout: IMERG half-hourly HDF5, MERGIR, MERRA-2 hourly, MUR daily (imerg)")
    p.add_argument("--out", required=True, help="folder for the files, catalog-<kind>.json and truth-<kind>.json")
    p.add_argument("--start", required=True, help="first time, ISO 8601 (e.g. 2020-01-04T00:00)")
    p.add_argument("--end", required=True, help="last time, ISO 8601")
    p.add_argument("--res", type=float, default=None, help="grid spacing in degrees (default: the real dataset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the drizzle and missing pixels (0)")
    p.add_argument("--field", choices=["blobs", "fractal"], default="blobs",
                   help="blobs: named features of a ground truth (default); fractal: rain-like, power-law "
                        "spectrum, intermittent, advected (prints each step's coverage and components)")
    return ap


def _config(args, make_workdir: bool = True):
    from tos2ca_batch.config import Config

    cfg = Config.from_env(args.workdir, args.catalog)
    if getattr(args, "share_identifier", None):
        cfg.share_identifier = args.share_identifier
    if make_workdir:
        try:
            cfg.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(json.dumps({"error": f"--workdir: cannot make the folder {cfg.workdir} ({exc.strerror})"}))
            sys.exit(2)
    return cfg


def _on_backend(cfg, args, call, exit_code=None, start_in_job: bool = False) -> int:
    """Run ``call(backend)`` (a job) on the chosen backend with signals handled; print its JSON line.
    Under MPI, ranks > 0 serve rank 0 instead. ``exit_code(res)``: the exit status (default: the
    job's). ``start_in_job``: ``call`` starts the backend itself (``runner.run``)."""
    from tos2ca_batch.backends import make_backend
    from tos2ca_batch.lifecycle import NotResumable
    from tos2ca_batch.runner import Interrupted

    backend = make_backend(args.backend, args.workers)
    if args.backend == "mpi" and backend.rank > 0:
        backend.serve(cfg)
        return 0
    backend.prepare()  # before the job starts threads or opens connections
    if not start_in_job:
        backend.start(cfg)  # (workers are forked now)
    try:
        with _Signals():
            res = call(backend)
        res["peak_rss_mib_per_worker"] = backend.peak_rss_mib()
    except NotResumable as exc:
        print(json.dumps({"job_id": getattr(args, "job", None), "error": str(exc)}))
        return 1
    except Interrupted as exc:  # a signal outside the job's stages (starting, or finishing)
        backend.abort()
        print(json.dumps({"job_id": getattr(args, "job", None), "status": "interrupted", "interrupted": str(exc)}))
        return 128 + exc.signum
    finally:
        backend.close()
    if exit_code is not None:
        print(json.dumps(res))
        return exit_code(res)
    if res.get("job_id") is not None:
        from tos2ca_batch.summary import job_summary

        print(job_summary(cfg, res["job_id"]), file=sys.stderr)
    print(json.dumps(res))
    return _exit_code(res)


def _run_spec(cfg, raw, args) -> int:
    from tos2ca_batch.runner import apply_overrides, run

    raw = apply_overrides(raw, args.block_steps, args.tile, args.products)
    return _on_backend(cfg, args, lambda backend: run(cfg, raw, backend), start_in_job=True)


def _with_job(command, create: bool = True):
    """A command on an existing job: refused with a JSON error line when there is no such job.
    ``create=False`` (what array children run): the jobs database is not made or upgraded."""
    def checked(args) -> int:
        from tos2ca_batch.stores import NoSchema

        cfg = _config(args)
        try:
            found = cfg.db(create).get_job(args.job) is not None
        except NoSchema as exc:
            print(json.dumps({"job_id": args.job, "error": f"no such job: {exc}"}))
            return 1
        if not found:
            print(json.dumps({"job_id": args.job, "error": f"no such job in {cfg.db().describe()}"}))
            return 1
        return command(cfg, args)
    return checked


def cmd_demo(args) -> int:
    from datetime import datetime, timedelta

    from tos2ca_batch.synth import synthesize

    cfg = _config(args)
    data = cfg.workdir / "demo-data"
    start, end = datetime(2020, 1, 4), datetime(2020, 1, 4, 23, 30)
    print(f"synthesizing IMERG-layout files ({args.res} degree, 48 steps) under {data}", file=sys.stderr)
    catalog = synthesize("imerg", data, start, end, res=args.res)
    print("synthesizing MERRA-2-layout T2M (hourly, 0.5 degree) and MUR-layout SST (daily, 0.05 degree)",
          file=sys.stderr)
    merra = synthesize("merra2", data, start, end + timedelta(minutes=30), res=0.5, period=(start, end))
    mur = synthesize("mur", data, start - timedelta(days=1), end, res=0.05, period=(start, end))
    cfg.catalogs += [str(catalog), str(merra), str(mur)]
    spec = {
        "stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
        "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T23:30",
        "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"connectivity": 2, "min_size": 150, "min_overlap": 0.25},
        "chunking": {"block_steps": 12, "tile": [240, 720]},
    }
    (cfg.workdir / "demo-spec.json").write_text(json.dumps(spec, indent=2))
    args.products = None
    rc = _run_spec(cfg, spec, args)
    if rc:
        return rc
    phdef_job = cfg.db().latest_job("phdef")
    for dataset, variable in (("M2T1NXSLV", "T2M"), ("MUR", "analysed_sst")):
        cspec = {"stage": "curation", "phdef_job": phdef_job, "dataset": dataset, "variable": variable}
        (cfg.workdir / f"demo-curation-{dataset}.json").write_text(json.dumps(cspec, indent=2))
        rc = rc or _run_spec(cfg, cspec, args)
    print(f"demo: specs {cfg.workdir}/demo-*.json, data {data}, outputs {cfg.workdir / 'outputs'}/<job>, "
          f"jobs DB {cfg.workdir / 'jobs.sqlite'} (tos2ca-batch status <job> --workdir {cfg.workdir})",
          file=sys.stderr)
    return rc


def cmd_run(args) -> int:
    return _run_spec(_config(args), _load_spec(args.spec), args)


def cmd_submit(args) -> int:
    from tos2ca_batch.runner import apply_overrides, submit

    cfg = _config(args)
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, args.products)
    job_id, error = submit(cfg, raw)
    print(json.dumps({"job_id": job_id, "status": "failed" if error else "pending", "message": error}))
    return 1 if error else 0


@_with_job
def cmd_resume(cfg, args) -> int:
    from tos2ca_batch.runner import resume
    from tos2ca_batch.sweep import resume_sweep

    if cfg.db().get_job(args.job)["stage"] == "sweep":
        return _on_backend(cfg, args, lambda backend: resume_sweep(
            cfg, args.job, backend, report=lambda line: print(line, file=sys.stderr)),
            lambda res: 0 if res.get("status") == "complete" else 1)
    return _on_backend(cfg, args, lambda backend: resume(cfg, args.job, backend))


@_with_job
def cmd_cancel(cfg, args) -> int:
    from tos2ca_batch.lifecycle import cancel
    from tos2ca_batch.sweep import cancel_sweep

    if cfg.db().get_job(args.job)["stage"] == "sweep":
        res = cancel_sweep(cfg, args.job, args.reason)
        print(json.dumps(res))
        return 0 if res["status"] == "cancelled" else 1
    changed = cancel(cfg, args.job, args.reason)
    row = cfg.db().get_job(args.job)
    print(json.dumps({"job_id": args.job, "status": row["status"], "changed": changed}))
    return 0 if row["status"] == "cancelled" else 1


def _in_child(command):
    """:func:`_with_job` for an array child: the client made the tables; a child only reads."""
    return _with_job(command, create=False)


@_in_child
def cmd_task(cfg, args) -> int:
    from tos2ca_batch.context import TaskContext
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.tasks import chunk_index, not_ready, run_task

    if args.stage == "plan":
        from tos2ca_batch.lifecycle import fail
        from tos2ca_batch.runner import plan_job

        try:
            plan_job(cfg, args.job)
        except Exception as exc:
            fail(cfg, args.job, str(exc))
            return 1
        return 0
    try:
        chunk = chunk_index(cfg, args.job, args.stage, args.chunk, args.chunk_offset)
    except SpecError as exc:
        print(json.dumps({"job_id": args.job, "stage": args.stage, "error": str(exc)}))
        return 2
    from tos2ca_batch.runner import Interrupted

    out = {"job_id": args.job, "stage": args.stage, "chunk": chunk}
    try:  # SIGTERM (scancel, a requeue, a reclaimed host): the chunk is released, the job goes on
        with _Signals():
            state = run_task(cfg, args.stage, args.job, chunk)
    except Interrupted as exc:
        print(json.dumps(dict(out, state="interrupted", signal=str(exc))))
        return 128 + exc.signum
    out["state"] = state
    if state == "not-ready":
        out["reason"] = not_ready(TaskContext(cfg, args.job), args.stage)
    elif state == "busy":
        out["reason"] = "another live task holds this chunk"
    print(json.dumps(out))
    return {"not-ready": EXIT_NOT_READY, "busy": EXIT_NOT_READY, "cancelled": EXIT_CANCELLED}.get(state, 0)


@_with_job
def cmd_status(cfg, args) -> int:
    db = cfg.db()
    if not args.json:
        from tos2ca_batch.summary import job_summary

        print(job_summary(cfg, args.job))
        return 0
    row = dict(db.get_job(args.job))
    try:
        row["spec"] = json.loads(row["spec"])
    except (TypeError, ValueError):
        pass
    print(json.dumps({"job": row, "chunks": db.chunk_counts(args.job),
                      "outputs": [o["location"] for o in db.outputs(args.job)]}, default=str))
    return 0


def cmd_worker(args) -> int:
    from tos2ca_batch.backends import make_backend
    from tos2ca_batch.worker import work

    cfg = _config(args)
    backend = make_backend(args.backend, args.workers)
    backend.prepare()
    backend.start(cfg)
    try:
        with _Signals():
            results = work(cfg, backend, once=args.once, poll_seconds=args.poll_seconds)
    finally:
        backend.close()
    for res in results:
        print(json.dumps(res))
    return max([_exit_code(r) for r in results], default=0)


def cmd_aws_register(args) -> int:
    from tos2ca_batch import aws_batch
    from tos2ca_batch.config import Config

    values = {
        "IMAGE": args.image, "SUBNETS": args.subnets.split(","), "SECURITY_GROUPS": args.security_groups.split(","),
        "SERVICE_ROLE_ARN": args.service_role_arn, "EXECUTION_ROLE_ARN": args.execution_role_arn,
        "JOB_ROLE_ARN": args.job_role_arn, "INSTANCE_ROLE_ARN": args.instance_role_arn,
        "SECRET_ID": args.secret_id, "STORE_URL": args.store_url, "NAME_PREFIX": args.name_prefix,
        "MAX_VCPUS": args.max_vcpus, "ASSIGN_PUBLIC_IP": args.assign_public_ip,
    }
    cfg = Config.from_env()
    try:
        out = aws_batch.register(cfg, values, args.platform, policy=args.scheduling_policy)
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    if args.sync_schedule:
        if not args.events_role_arn:
            print(json.dumps({"error": "--sync-schedule needs --events-role-arn"}))
            return 2
        out["syncDue"] = aws_batch.register_sync_schedule(cfg, values, args.platform, args.sync_schedule,
                                                          args.events_role_arn, out["jobQueueArn"])
    print(json.dumps(out))
    return 0


def _batch_opts(p) -> None:
    """Where ``aws submit``, ``aws sweep`` and ``aws sync`` send their Batch jobs."""
    p.add_argument("--queue", required=True, help="the job queue (name or ARN, from aws register)")
    p.add_argument("--job-definition", default=None, help="default: <name-prefix>-<platform>")
    p.add_argument("--platform", choices=["ec2", "fargate"], default="ec2", help="whose job definition (ec2)")
    p.add_argument("--name-prefix", default="tos2ca-batch", help=PREFIX_HELP)
    p.add_argument("--share-identifier", default=None,
                   help="on a fair-share queue: the share the jobs bill to (letters and digits; default "
                        "TOS2CA_SHARE_IDENTIFIER, else user<N> of the job's user)")


def _sweep_opts(p) -> None:
    """What ``sweep`` and ``aws sweep`` take: the spec, the grid, a truth file, the work dir."""
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a setting and its values (repeatable), e.g. value=5,10,20 or tracking.min_size=50,150; "
                        "keys: value, value2, operator, tracking.connectivity, tracking.min_size, "
                        "tracking.min_overlap, tracking.overlap_fraction")
    p.add_argument("--truth", default=None, help="score every combination against this truth file (from inject)")
    _common(p)


def cmd_aws_sweep(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.runner import apply_overrides
    from tos2ca_batch.sweep import parse_grid, submit_aws

    cfg = _config(args)
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, args.products)
    jobdef = args.job_definition or f"{args.name_prefix}-{args.platform}"
    try:
        res = submit_aws(cfg, raw, parse_grid(args.grid), args.queue, jobdef, args.truth,
                         report=lambda line: print(line, file=sys.stderr))
    except SpecError as exc:
        print(json.dumps({"status": "refused", "error": str(exc)}))
        return 2
    print(json.dumps(res))
    return 0 if res["status"] in ("running", "complete") else 1


def cmd_aws_submit(args) -> int:
    from tos2ca_batch import aws_batch
    from tos2ca_batch.runner import apply_overrides

    cfg = _config(args)
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, args.products)
    jobdef = args.job_definition or f"{args.name_prefix}-{args.platform}"
    res = aws_batch.submit(cfg, raw, args.queue, jobdef)
    print(json.dumps(res))
    return 0 if res["status"] != "failed" else 1


@_with_job
def cmd_aws_sync(cfg, args) -> int:
    from tos2ca_batch import aws_batch
    from tos2ca_batch.timeutil import parse_time

    jobdef = args.job_definition or f"{args.name_prefix}-{args.platform}"
    try:
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(json.dumps({"job_id": args.job, "error": f"--until: {exc}"}))
        return 2
    res = aws_batch.submit_sync(cfg, args.job, args.queue, jobdef, until)
    print(json.dumps(res))
    return 0 if res.get("sync") in (None, "noop") and res.get("status") != "failed" else 1


@_with_job
def cmd_aws_status(cfg, args) -> int:
    from tos2ca_batch import aws_batch

    print(json.dumps(aws_batch.status(cfg, args.job), default=str))
    return 0


@_with_job
def cmd_aws_cancel(cfg, args) -> int:
    from tos2ca_batch import aws_batch

    print(json.dumps(aws_batch.cancel(cfg, args.job, args.reason), default=str))
    return 0


def cmd_estimate(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.estimate import describe, estimate
    from tos2ca_batch.runner import apply_overrides

    cfg = _config(args, make_workdir=False)  # an estimate writes nothing
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, None)
    try:
        est = estimate(cfg, raw, args.containers, args.platform, args.components_per_step, args.max_vcpus)
    except SpecError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(describe(est), file=sys.stderr)
    print(json.dumps(est))
    return 0


def cmd_jobs(args) -> int:
    from tos2ca_batch.summary import job_line

    rows = _config(args).db().list_jobs(args.status, args.limit)
    for row in rows:
        print(json.dumps(row, default=str) if args.json else job_line(row))
    if not rows and not args.json:
        print("no jobs" + (f" {args.status}" if args.status else ""), file=sys.stderr)
    return 0


SYNC_OK = ("synced", "noop", "not-due")


def cmd_sync(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.stages.syncplan import NotSyncable
    from tos2ca_batch.summary import sync_line
    from tos2ca_batch.sync import set_schedule, sync_due, sync_job
    from tos2ca_batch.timeutil import parse_time

    cfg = _config(args)
    if sum([args.due, args.list, args.job is not None]) != 1:
        print(json.dumps({"error": "give one of: a job id, --due or --list"}))
        return 2
    if args.list:
        for row in cfg.db().syncs():
            print(sync_line(row))
        return 0
    try:
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(json.dumps({"error": f"--until: {exc}"}))
        return 2
    if args.due:
        return _on_backend(cfg, args, lambda backend: {"syncs": sync_due(cfg, backend)},
                           lambda res: 0 if all(r["sync"] in (*SYNC_OK, "busy") for r in res["syncs"]) else 1)
    if cfg.db().get_job(args.job) is None:
        print(json.dumps({"job_id": args.job, "error": f"no such job in {cfg.db().describe()}"}))
        return 1
    if args.every or args.unschedule:
        try:
            row = set_schedule(cfg, args.job, None if args.unschedule else args.every, until)
        except (SpecError, NotSyncable) as exc:
            print(json.dumps({"job_id": args.job, "error": str(exc)}))
            return 1
        print(sync_line(row), file=sys.stderr)
        print(json.dumps(row, default=str))
        return 0

    def report(res: dict) -> int:
        print(f"job {args.job}: {res['sync']}: {res['message']}", file=sys.stderr)
        return 0 if res["sync"] in SYNC_OK else 1

    return _on_backend(cfg, args, lambda backend: sync_job(cfg, args.job, backend, until), report)


def cmd_replay(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.replay import replay
    from tos2ca_batch.runner import apply_overrides

    cfg = _config(args)
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, args.products)

    def call(backend) -> dict:
        try:
            return replay(cfg, raw, args.batch_steps, backend, report=lambda line: print(line, file=sys.stderr))
        except SpecError as exc:
            return {"same": False, "message": str(exc)}

    return _on_backend(cfg, args, call, lambda res: 0 if res.get("same") else 1)


def cmd_inject(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.inject import inject
    from tos2ca_batch.timeutil import parse_time

    cfg = _config(args)
    try:
        features = json.loads(Path(args.features).read_text())
        res = inject(cfg, args.dataset, parse_time(args.start), parse_time(args.end), features, Path(args.out),
                     args.variable, args.name)
    except (SpecError, ValueError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(f"{res['features']} features injected into {res['steps']} steps of {args.dataset}; run a job on "
          f"dataset {res['dataset']} with --catalog {res['catalog']}, then: tos2ca-batch score J --truth "
          f"{res['truth']}", file=sys.stderr)
    print(json.dumps(res))
    return 0


def cmd_score(args) -> int:
    from tos2ca_batch.score import score_job, write_scores

    cfg = _config(args)
    if not 0 < args.iou <= 1:
        print(json.dumps({"error": f"--iou must be in (0, 1], got {args.iou}"}))
        return 2
    try:
        res = score_job(cfg, args.job, args.truth, args.iou)
    except (ValueError, OSError, KeyError) as exc:
        print(json.dumps({"job_id": args.job, "error": str(exc)}))
        return 1
    paths = write_scores(res, Path(args.out))
    p, t = res["pixels"], res["tracking"]
    ev = res.get("events", {})
    print(f"job {args.job}: pixels POD {p['pod']}, FAR {p['far']}, CSI {p['csi']}; objects {res['objects']}; "
          f"MOTA {t['mota']}, IDF1 {t['idf1']}, {t['id_switches']} id switches, {t['fragmentations']} "
          f"fragmentations; merges {ev.get('merge')}, splits {ev.get('split')}; wrote {', '.join(paths)}",
          file=sys.stderr)
    print(json.dumps({k: v for k, v in res.items() if k != "per_step"}))
    return 0


def cmd_sweep(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.runner import apply_overrides
    from tos2ca_batch.sweep import parse_grid, sweep

    cfg = _config(args)
    raw = apply_overrides(_load_spec(args.spec), args.block_steps, args.tile, args.products)
    try:
        grid = parse_grid(args.grid)
    except SpecError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2

    def call(backend) -> dict:
        try:
            return sweep(cfg, raw, grid, backend, args.truth, report=lambda line: print(line, file=sys.stderr))
        except SpecError as exc:
            return {"status": "refused", "error": str(exc)}

    return _on_backend(cfg, args, call, lambda res: 0 if res.get("status") == "complete" else 1)


def cmd_scan(args) -> int:
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.scan import scan
    from tos2ca_batch.timeutil import parse_time

    cfg = _config(args)
    try:
        log = scan(cfg, args.dataset, parse_time(args.start), parse_time(args.end), Path(args.out), args.variable,
                   progress=sys.stderr.isatty())
    except (SpecError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    counts = ", ".join(f"{n} {s}" for s, n in log["counts"].items() if n)
    print(f"{args.dataset}: {log['steps']} steps {log['start']} to {log['end']}: {counts} ({log['from_cache']} "
          f"from an earlier scan); report {log['report']}" + (f"; plots of {len(log['plots'])} problem files"
                                                              if log["plots"] else ""), file=sys.stderr)
    for r in log["problems"][:10]:
        print(f"  {r['time']} {r['status']}: {r['path']} {r['detail']}", file=sys.stderr)
    print(json.dumps({k: v for k, v in log.items() if k != "problems"} | {"problems": len(log["problems"])}))
    return 1 if log["problems"] else 0


def cmd_operators(args) -> int:
    from tos2ca_batch.operators import plugin_errors, registry

    for op in registry().values():
        doc = {"name": op.name, "summary": op.summary, "parameters": op.parameters, "event_type": op.event_type,
               "component_rule": op.keeps is not None, "source": op.source}
        if args.json:
            print(json.dumps(doc))
        else:
            params = ", ".join(f"{k} ({v})" for k, v in op.parameters.items())
            print(f"{op.name:<22} {op.summary}\n{'':<22} parameters: {params}; from {op.source}")
    for name, error in plugin_errors().items():
        print(f"{name:<22} could not be loaded: {error}", file=sys.stderr)
    return 0


def cmd_schema(args) -> int:
    from tos2ca_batch.schema import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


def cmd_synth(args) -> int:
    from tos2ca_batch.synth import synthesize
    from tos2ca_batch.timeutil import parse_time

    def progress(stamp: str, counts: dict) -> None:
        print(f"{stamp}  wet {counts['wet']:.1%}  > 10: {counts['above']:.2%}  components > 10: "
              f"{counts['components']}", file=sys.stderr, flush=True)

    path = synthesize(args.kind, args.out, parse_time(args.start), parse_time(args.end), args.res, args.seed,
                      field=args.field, progress=progress)
    print(json.dumps({"catalog": str(path)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # -v raises only this package's logger: botocore and friends log credentials and secret
    # responses at DEBUG, so third-party loggers stay at WARNING.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("tos2ca_batch").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    tune_for_tasks()  # this process may run tasks (one worker, an MPI rank, a Batch child)
    return args.func(args)
