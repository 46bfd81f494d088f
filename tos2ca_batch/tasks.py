"""One array task: claim a chunk, run its stage, record the result. The same call serves a
local process, an MPI rank and an AWS Batch child (``tos2ca-batch task <stage> --job J``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from tos2ca_batch.config import Config
from tos2ca_batch.stages import cfinalize, curate, finalize, map, publish, reduce, relabel, stats

STAGE_FUNCS = {
    "stats": stats.run,
    "map": map.run,
    "reduce": reduce.run,
    "relabel": relabel.run,
    "publish": publish.run,
    "finalize": finalize.run,
    "curate": curate.run,
    "cfinalize": cfinalize.run,
}
log = logging.getLogger("tos2ca_batch")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


def not_ready(cfg: Config, job_id: int, stage: str) -> str | None:
    """Why ``stage`` of the job may not run yet (None when every earlier stage is complete)."""
    from tos2ca_batch.stages.common import stages_of

    store = cfg.store(job_id)
    if not store.has_json("plan"):
        return "the job has not been planned yet"
    stages = stages_of(store.get_json("plan"))
    if stage not in stages:
        raise ValueError(f"job {job_id} has no {stage} stage; its stages are {', '.join(stages)}")
    counts = cfg.db().chunk_counts(job_id)
    for before in stages[: stages.index(stage)]:
        left = {k: v for k, v in counts.get(before, {}).items() if k != "complete"}
        if left:
            return f"{before} is not complete ({', '.join(f'{v} {k}' for k, v in sorted(left.items()))})"
    return None


def run_task(cfg: Config, stage: str, job_id: int, chunk: int, where: str = "") -> str:
    """``done``, ``skipped`` (already complete), ``busy`` (another task holds it) or ``not-ready``
    (an earlier stage is not complete: nothing is changed, the job is not failed).

    A failing task fails the job once, with the message ``<stage> chunk <chunk>[ <where>]: ...``
    (``where`` says e.g. which MPI rank ran it)."""
    if stage not in STAGE_FUNCS:
        raise ValueError(f"stage must be one of {', '.join(STAGE_FUNCS)}; got {stage!r}")
    db = cfg.db()
    worker = worker_name()
    if not_ready(cfg, job_id, stage):
        return "not-ready"
    state = db.claim_chunk(job_id, stage, chunk, worker, cfg.lease_seconds)
    if state != "claimed":
        return "skipped" if state == "complete" else "busy"
    store = cfg.store(job_id)
    if store.is_done(stage, chunk):  # its outputs were all written before the task was lost
        db.finish_chunk(job_id, stage, chunk, "complete", "outputs found complete; not run again")
        return "skipped"
    keeper = _LeaseKeeper(cfg, job_id, stage, chunk, worker)
    keeper.start()
    try:
        STAGE_FUNCS[stage](cfg, job_id, chunk)
        store.mark_done(stage, chunk)
    except BaseException as exc:
        msg = f"{type(exc).__name__}: {exc}"
        log.error("job %s %s chunk %s failed: %s\n%s", job_id, stage, chunk, msg, traceback.format_exc())
        db.finish_chunk(job_id, stage, chunk, "failed", msg[:2000])
        if isinstance(exc, Exception):  # bad data or a bug: the job has failed (a killed host is retried)
            label = f"{stage} chunk {chunk}" + (f" {where}" if where else "")
            if db.fail_running_job(job_id, f"{label}: {msg}"):
                from tos2ca_batch.notify import notify

                notify(cfg, job_id)
        raise
    finally:
        keeper.stop.set()
    db.finish_chunk(job_id, stage, chunk, "complete")
    if stage in ("finalize", "cfinalize"):  # the last stage: the job is complete (once, whoever runs it)
        from tos2ca_batch.runner import complete_job

        complete_job(cfg, job_id)
    return "done"


def chunk_from_env() -> int:
    idx = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    return int(idx) if idx not in (None, "") else 0
