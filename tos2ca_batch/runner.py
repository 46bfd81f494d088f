"""Submitting and running whole jobs: validate, plan, run each stage on a backend, finish."""

from __future__ import annotations

import json
import logging
import time

from tos2ca_batch import lifecycle
from tos2ca_batch.backends import Backend, StageFailed
from tos2ca_batch.config import Config
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.pipeline import waves
from tos2ca_batch.plans import Plan
from tos2ca_batch.spec import JobSpec, validate
from tos2ca_batch.timeutil import parse_time

log = logging.getLogger("tos2ca_batch")


def apply_overrides(raw: dict, block_steps: int | None = None, tile: tuple[int, int] | None = None,
                    products: list[str] | None = None) -> dict:
    """CLI flags folded into the spec document, so a stored job describes itself fully."""
    raw = dict(raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        return raw
    if block_steps is not None or tile is not None:
        chunking = dict(raw.get("chunking") or {})
        if block_steps is not None:
            chunking["block_steps"] = block_steps
        if tile is not None:
            chunking["tile"] = list(tile)
        raw["chunking"] = chunking
    if products is not None:
        raw["products"] = list(products)
    return raw


def _spec_from_row(cfg: Config, row: dict) -> tuple[JobSpec, dict, dict]:
    raw = json.loads(row["spec"])
    catalog = cfg.catalog()
    spec_doc = {k: v for k, v in raw.items() if k != "products"} if isinstance(raw, dict) else raw
    return validate(spec_doc, catalog), catalog, raw


def result(cfg: Config, job_id: int) -> dict:
    db = cfg.db()
    row = db.get_job(job_id)
    return {"job_id": job_id, "status": row["status"], "outputs": [o["location"] for o in db.outputs(job_id)],
            "message": row["message"]}


def submit(cfg: Config, raw: dict, status: str = "pending") -> tuple[int, str | None]:
    """Store a job as ``pending`` (or ``failed`` with the reason if its spec is refused).

    ``run`` stores it as ``running`` so that no worker claims a job it is about to run itself.
    """
    job_id, error, _ = _submit(cfg, raw, status)
    return job_id, error


Validated = tuple[JobSpec, dict, dict]  # the spec, the catalog it was checked against, the document


def _submit(cfg: Config, raw: dict, status: str) -> tuple[int, str | None, Validated | None]:
    db = cfg.db()
    job_id = db.create_job(raw, status=status)
    try:
        spec_doc = {k: v for k, v in raw.items() if k != "products"} if isinstance(raw, dict) else raw
        catalog = cfg.catalog()
        spec = validate(spec_doc, catalog)
    except (SpecError, ValueError) as exc:
        lifecycle.fail(cfg, job_id, str(exc))
        return job_id, str(exc), None
    return job_id, None, (spec, catalog, raw)


def plan_job(cfg: Config, job_id: int, validated: Validated | None = None) -> Plan:
    """Validate against catalog and data and store the plan (raises SpecError). ``validated``:
    the job's spec as :func:`run` just checked it in this process (else it is read and checked
    again from the job's row)."""
    ctx = TaskContext(cfg, job_id)
    row = ctx.db.get_job(job_id)
    if ctx.store.has_json("plan") and ctx.db.chunks(job_id):  # picked up again after a lost worker
        return ctx.plan
    if row["stage"] == "sweep":  # a sweep is not a job's plan: ``sweep``, ``resume`` or a worker drives it
        raise SpecError("stage", f"{job_id} is a sweep, not a job: finish it with tos2ca-batch resume {job_id}")
    if row["stage"] == "sync":  # a sync of job phdefJobID (``tos2ca_batch.sync``)
        from tos2ca_batch.stages.syncplan import make_plan as make_sync_plan

        lifecycle.begin(cfg, job_id)
        until = json.loads(row["spec"]).get("until")
        return make_sync_plan(ctx, int(row["phdefJobID"]), parse_time(until) if until else None)
    spec, catalog, raw = validated or _spec_from_row(cfg, row)
    lifecycle.begin(cfg, job_id)
    if spec.stage == "curation":
        from tos2ca_batch.stages.curate import make_plan
    else:
        from tos2ca_batch.stages.plan import make_plan
    return make_plan(ctx, spec, catalog, products=raw.get("products"))


NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")
ACCESS_CODES = ("AccessDenied", "InvalidAccessKeyId", "ExpiredToken", "SignatureDoesNotMatch", "AllAccessDisabled")


def access_hint(exc: BaseException) -> str:
    """What to set when an ``s3://`` dataset could not be read for want of credentials or rights."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if type(exc).__name__ not in NO_CREDENTIALS and code not in ACCESS_CODES:
        return ""
    return ("; the dataset's files are on S3: give this process AWS credentials that may read them "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or task role). NASA's "
            "archives (GES DISC, PO.DAAC) give Earthdata users temporary S3 credentials for reads in us-west-2 "
            "(e.g. earthaccess.get_s3_credentials); elsewhere, download the files and point a --catalog entry "
            "at them")


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the process running a job (raised by the CLI's handlers)."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Cancelled(Exception):
    """The job was cancelled from outside (``tos2ca-batch cancel``) while it ran."""


def run_to_end(cfg: Config, job_id: int, stages: list[str], backend: Backend) -> None:
    """Run the chunks of ``stages`` (one wave: they need nothing of each other) together; chunks
    leased by another (maybe dead) worker are retried until their owner finishes them or the
    lease expires and this worker takes them over. Stops at a chunk boundary when the job is
    cancelled."""
    db = cfg.db()

    def unfinished(after_run: bool) -> list[tuple[str, int]]:
        """Chunks not complete; after a run, a failed one fails the wave (before the first run,
        failed chunks are run again: a resumed job)."""
        todo = []
        for stage in stages:
            rows = db.chunks(job_id, stage)
            failed = [r for r in rows if r["status"] == "failed"]
            if failed and after_run:
                raise StageFailed(stage, failed[0]["chunkID"], failed[0]["message"] or "failed")
            todo += [(stage, r["chunkID"]) for r in rows if r["status"] != "complete"]
        return todo

    todo = unfinished(after_run=False)
    while todo:
        backend.run_tasks(cfg, job_id, todo)
        if lifecycle.is_cancelled(cfg, job_id):
            raise Cancelled(db.get_job(job_id)["message"] or "cancelled")
        todo = unfinished(after_run=True)
        if todo and not lifecycle.release_dead_holders(cfg, job_id):
            time.sleep(min(5.0, max(0.2, cfg.lease_seconds / 4)))


def forks_after_plan(cfg: Config, validated: Validated | None) -> bool:
    """Whether the workers may be forked after the plan: planning then leaves no thread, network
    connection or client in this process (SQLite and folders; a PhDef job on local HDF5 or
    netCDF-4 files; zarr's reads start a thread, obstore's a runtime a fork would break).

    Why: pages a forked process shares with its workers cost a copy at their first write, and
    the plan wrote ~2,000 of them (3 ms of a 12-step job's 7.5 ms plan), one core working."""
    if validated is None or not cfg.all_local():
        return False
    spec, catalog, _ = validated
    entry = catalog.get(spec.dataset) if spec.stage == "phdef" else None
    return entry is not None and entry.format != "zarr" and "://" not in entry.location


def execute(cfg: Config, job_id: int, backend: Backend, validated: Validated | None = None) -> dict:
    """Plan and run every stage of a job this process holds; the job ends complete, failed or
    cancelled (never left running by an error: any exception fails it with the reason).

    The backend starts (a local pool forks) before the plan, or after it when
    :func:`forks_after_plan` allows; the job's lease is then renewed from the fork on."""
    late = forks_after_plan(cfg, validated)
    if not late:
        backend.start(cfg)  # a no-op when already started
    with lifecycle.job_lease(cfg, job_id, lifecycle.worker_name(), renew=not late) as lease:
        return _execute(cfg, job_id, backend, validated, lease)


def _execute(cfg: Config, job_id: int, backend: Backend, validated: Validated | None,
             lease: lifecycle.Lease) -> dict:
    db = cfg.db()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        try:
            plan = plan_job(cfg, job_id, validated)
        except SpecError as exc:
            lifecycle.fail(cfg, job_id, str(exc))
            return result(cfg, job_id)
        except Exception as exc:
            lifecycle.fail(cfg, job_id, f"plan: {type(exc).__name__}: {exc}{access_hint(exc)}")
            return result(cfg, job_id)
        timings["plan"] = time.perf_counter() - t0
        backend.start(cfg)
        lease.renew_from_now()
        lifecycle.forget_lost_outputs(cfg, job_id)
        for wave in waves(plan.stages()):
            name = "+".join(wave)  # e.g. relabel+publish
            db.update_job(job_id, phase=name)
            t0 = time.perf_counter()
            run_to_end(cfg, job_id, wave, backend)
            timings[name] = time.perf_counter() - t0
    except Interrupted as exc:
        backend.abort()
        lifecycle.cancel(cfg, job_id, f"interrupted by {exc} during {db.get_job(job_id)['phase']}; "
                                      f"continue with: tos2ca-batch resume {job_id}")
        return dict(result(cfg, job_id), interrupted=str(exc))
    except Cancelled:
        backend.abort()
        return result(cfg, job_id)
    except StageFailed as exc:
        lifecycle.fail(cfg, job_id, str(exc))
        return result(cfg, job_id)
    except Exception as exc:  # a store or service error outside any chunk
        lifecycle.fail(cfg, job_id, f"{db.get_job(job_id)['phase']}: {type(exc).__name__}: {exc}")
        return result(cfg, job_id)
    if db.get_job(job_id)["status"] == "running":  # else the task that ran the last stage completed it
        lifecycle.complete(cfg, job_id)
    return dict(result(cfg, job_id), timings={k: round(v, 4) for k, v in timings.items()})


def run(cfg: Config, raw: dict, backend: Backend) -> dict:
    """Store and run a job in this process (holding its lease, so it can be resumed if we die).
    A prepared backend starts here, before the jobs DB opens a connection, unless ``cfg`` opens
    none (then :func:`execute` starts it, maybe after the plan)."""
    if not cfg.all_local():
        backend.start(cfg)
    job_id, error, validated = _submit(cfg, raw, "running")
    if error:
        return result(cfg, job_id)
    return execute(cfg, job_id, backend, validated)


def resume(cfg: Config, job_id: int, backend: Backend) -> dict:
    """Take over a job that stopped (killed, interrupted, failed, cancelled) and finish it: chunks
    whose outputs are in the store are kept, the rest run again."""
    lifecycle.take_over(cfg, job_id, lifecycle.worker_name())
    return execute(cfg, job_id, backend)
