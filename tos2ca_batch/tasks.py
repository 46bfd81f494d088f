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


def run_task(cfg: Config, stage: str, job_id: int, chunk: int) -> str:
    """``done``, ``skipped`` (already complete) or ``busy`` (another task holds it)."""
    if stage not in STAGE_FUNCS:
        raise ValueError(f"stage must be one of {', '.join(STAGE_FUNCS)}; got {stage!r}")
    db = cfg.db()
    worker = worker_name()
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
            n = db.execute("UPDATE jobs SET status = 'failed', message = ? WHERE jobID = ? AND status = 'running'",
                           (f"{stage} chunk {chunk}: {msg}"[:4000], job_id))
            if n == 1:
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
