"""``tos2ca-batch slurm submit | status | cancel | resume | settle``: the job as Slurm job arrays
(:mod:`tos2ca_batch.slurm`), from a cluster's login node."""

from __future__ import annotations

import argparse
import json


def add_parser(sub, cli) -> None:
    """The ``slurm`` subcommands, built with the main parser's helpers (``cli``: that module)."""
    p = sub.add_parser("slurm", help="Slurm job arrays: submit a job as chained sbatch --array jobs, status, cancel")
    slurm = p.add_subparsers(dest="slurm_command", required=True)
    s = slurm.add_parser("submit", help="plan here, then submit each stage as an sbatch --array chained afterok")
    s.set_defaults(func=lambda args: cmd_submit(args, cli))
    s.add_argument("spec", help=cli.SPEC_HELP)
    cli._common(s)
    _options(s)
    cli._chunking_opts(s)
    r = cli._on_job(slurm, "resume", "submit again what a cancelled or failed job has left", cli._with_job(cmd_resume))
    _options(r)
    cli._on_job(slurm, "status", "each stage's Slurm ids and states, and its chunk counts", cli._with_job(cmd_status))
    cli._on_job(slurm, "cancel", "scancel the job's Slurm jobs and cancel the job (resumable)",
                cli._with_job(cmd_cancel), reason=True)
    cli._on_job(slurm, "settle", "end a job whose Slurm jobs all ended without completing it (the chain's last job "
                                 "runs this)", cli._in_child(cmd_settle))


def _whole(name: str):
    def parse(text: str) -> int:
        if not text.strip().isdigit() or len(text.strip()) > 6:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}")
        return int(text)
    return parse


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partition", default=None, help="the partition (queue) the children run in")
    p.add_argument("--account", default=None, help="the account charged")
    p.add_argument("--time", default=None, help="each child's time limit, e.g. 30, 02:00:00 or 1-00:00:00")
    p.add_argument("--mem", default=None, help="each child's memory, e.g. 4G (estimate gives a task's peak)")
    p.add_argument("--cpus-per-task", type=_whole("--cpus-per-task"), default=1, help="each child's CPUs (1)")
    p.add_argument("--max-running", type=_whole("--max-running"), default=None,
                   help="most children of one array running at once (sbatch --array=...%%N)")
    p.add_argument("--retries", type=_whole("--retries"), default=2,
                   help="reruns of a child's task killed outright (exit 137), in its allocation (2)")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="OPTION",
                   help="another sbatch option for every child, e.g. --sbatch-arg=--qos=long (repeatable)")


def _opts(args):
    from tos2ca_batch.slurm import SlurmOptions

    return SlurmOptions(partition=args.partition, account=args.account, time=args.time, mem=args.mem,
                        cpus_per_task=args.cpus_per_task, max_running=args.max_running, retries=args.retries,
                        extra=tuple(args.sbatch_arg))


def _refused(exc, job_id=None) -> int:
    print(json.dumps({"job_id": job_id, "status": "refused", "error": str(exc)}))
    return 2


def cmd_submit(args, cli) -> int:
    from tos2ca_batch import slurm
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.runner import apply_overrides

    cfg = cli._config(args)
    raw = apply_overrides(cli._load_spec(args.spec), args.block_steps, args.tile, args.products)
    try:
        res = slurm.submit(cfg, raw, _opts(args))
    except (SpecError, slurm.SlurmError) as exc:
        return _refused(exc)
    print(json.dumps(res))
    return 0 if res["status"] != "failed" else 1


def cmd_resume(cfg, args) -> int:
    from tos2ca_batch import slurm
    from tos2ca_batch.errors import SpecError

    try:
        res = slurm.resume(cfg, args.job, _opts(args))
    except (SpecError, slurm.SlurmError) as exc:
        return _refused(exc, args.job)
    print(json.dumps(res))
    return 0 if res["status"] in ("running", "complete") else 1


def cmd_status(cfg, args) -> int:
    from tos2ca_batch import slurm

    print(json.dumps(slurm.status(cfg, args.job), default=str))
    return 0


def cmd_cancel(cfg, args) -> int:
    from tos2ca_batch import slurm

    print(json.dumps(slurm.cancel(cfg, args.job, args.reason), default=str))
    return 0


def cmd_settle(cfg, args) -> int:
    from tos2ca_batch import slurm

    print(json.dumps(slurm.settle(cfg, args.job)))
    return 0
