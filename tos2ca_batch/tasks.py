"""One array task: claim a chunk, run its stage, record the result. The same call serves a
local process, an MPI rank, an AWS Batch child and a Slurm array child
(``tos2ca-batch task <stage> --job J``)."""

from __future__ import annotations

import logging
import threading
import traceback

from tos2ca_batch import lifecycle
from tos2ca_batch.config import Config
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.pipeline import STAGES, predecessors, stage_function

log = logging.getLogger("tos2ca_batch")
worker_name = lifecycle.worker_name


class _LeaseKeeper(threading.Thread):
    """Renews the chunk's lease while the stage runs, so only a dead task loses it."""

    def __init__(self, cfg: Config, job_id: int, stage: str, chunk: int, worker: str):
        super().__init__(daemon=True)
        self.args_ = (job_id, stage, chunk, worker)
        self.cfg = cfg
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.cfg.lease_seconds / 3):
            try:
                self.cfg.db().renew_lease(*self.args_, self.cfg.lease_seconds)
            except Exception:  # a missed renewal only shortens the lease
                log.warning("could not renew the lease of %s", self.args_)


class LostState(RuntimeError):
    """The chunk store no longer holds state the job wrote (Redis emptied or expired)."""


def not_ready(ctx: TaskContext, stage: str) -> str | None:
    """Why ``stage`` of the job may not run yet (None when every earlier stage is complete).

    Raises :class:`LostState` when the job was planned but its plan is gone from the store:
    waiting would never help, ``resume`` does."""
    job_id = ctx.job_id
    if not ctx.store.has_json("plan"):
        if ctx.db.chunks(job_id):
            raise LostState(f"the chunk store lost job {job_id}'s plan (Redis emptied or expired?); "
                            f"finish it with: tos2ca-batch resume {job_id}")
        return "the job has not been planned yet"
    counts = ctx.db.chunk_counts(job_id)
    lead = getattr(ctx.plan, "map_of", None)
    if lead is not None and stage == ctx.plan.stages()[0]:  # a sweep's job starting from another's map
        if not ctx.db.stage_complete(lead, "share"):
            return f"job {lead} has not shared its map yet"
    for before in predecessors(ctx.plan.stages(), stage):
        left = {k: v for k, v in counts.get(before, {}).items() if k != "complete"}
        if left:
            return f"{before} is not complete ({', '.join(f'{v} {k}' for k, v in sorted(left.items()))})"
    return None


def _take_from_dead_run(cfg: Config, job_id: int, stage: str, chunk: int) -> bool:
    """The chunk's holder is gone (an earlier run of this array child, or a process of this host
    that no longer runs, e.g. killed and rerun by the batch script): its chunks go back to
    pending now instead of after its lease. True when it released any."""
    holder = cfg.db().chunk_holder(job_id, stage, chunk)
    if not (lifecycle.holder_superseded(holder, cfg.task_identity) or lifecycle.holder_is_dead(holder)):
        return False
    log.warning("job %s %s chunk %s: its holder %s is gone; taking it over", job_id, stage, chunk, holder)
    return cfg.db().release_chunks(job_id, [holder]) > 0


def run_task(cfg: Config, stage: str, job_id: int, chunk: int, where: str = "") -> str:
    """``done``, ``skipped`` (already complete), ``busy`` (another task holds it), ``not-ready``
    (an earlier stage is not complete) or ``cancelled`` (the job was cancelled): in the last two
    nothing is changed.

    A failing task fails the job once, with the message ``<stage> chunk <chunk>[ <where>]: ...``
    (``where`` says e.g. which MPI rank ran it)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
    ctx = TaskContext(cfg, job_id)
    db = ctx.db
    if lifecycle.is_cancelled(cfg, job_id):
        return "cancelled"
    try:
        if not_ready(ctx, stage):
            return "not-ready"
    except LostState as exc:
        lifecycle.fail(cfg, job_id, f"{stage} chunk {chunk}: {exc}")
        raise
    worker = worker_name(cfg.task_identity)
    state = db.claim_chunk(job_id, stage, chunk, worker, cfg.lease_seconds)
    if state == "busy" and _take_from_dead_run(cfg, job_id, stage, chunk):
        state = db.claim_chunk(job_id, stage, chunk, worker, cfg.lease_seconds)
    if state != "claimed":
        return "skipped" if state == "complete" else "busy"
    store = ctx.store
    if store.is_done(stage, chunk):  # its outputs were all written before the task was lost
        db.finish_chunk(job_id, stage, chunk, "complete", "outputs found complete; not run again")
        return "skipped"
    keeper = _LeaseKeeper(cfg, job_id, stage, chunk, worker)
    keeper.start()
    store.begin_task()
    try:
        stage_function(stage)(ctx, chunk)
        store.mark_done(stage, chunk)
    except BaseException as exc:
        msg = f"{type(exc).__name__}: {exc}"
        log.error("job %s %s chunk %s failed: %s\n%s", job_id, stage, chunk, msg, traceback.format_exc())
        db.finish_chunk(job_id, stage, chunk, "failed", msg[:2000])
        if isinstance(exc, Exception):  # bad data or a bug: the job has failed (a killed host is retried)
            label = f"{stage} chunk {chunk}" + (f" {where}" if where else "")
            lifecycle.fail(cfg, job_id, f"{label}: {msg}")
        raise
    finally:
        keeper.stop.set()
    db.finish_chunk(job_id, stage, chunk, "complete")
    if STAGES[stage].completes_job:  # the last stage: the job is complete (once, whoever runs it)
        lifecycle.complete(cfg, job_id, ctx.plan)
    return "done"


def chunk_index(cfg: Config, job_id: int, stage: str, given: int | None, offset: int = 0) -> int:
    """The chunk a task runs: ``--chunk`` or ``offset`` + the array index
    (``cfg.array_index``: ``AWS_BATCH_JOB_ARRAY_INDEX`` or ``SLURM_ARRAY_TASK_ID``; 0 when neither
    is set; ``offset`` is the first chunk of a stage's array part when a stage needs several
    arrays), checked against the stage's chunk count."""
    raw = given if given is not None else cfg.array_index or "0"
    field = "--chunk" if given is not None else cfg.array_index_source
    if isinstance(raw, str) and not raw.strip().isdigit():
        raise SpecError(field, f"must be a chunk index (a whole number >= 0), got {raw!r}")
    index = int(raw) + (offset if given is None else 0)
    n = len(cfg.db().chunks(job_id, stage))
    if not 0 <= index < max(n, 1):
        raise SpecError(field, f"job {job_id} has {n} {stage} chunks (0..{n - 1}); got {index}")
    return index
