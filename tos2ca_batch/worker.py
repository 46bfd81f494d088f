"""The worker loop (TOS2CA's EC2 poller): claim a pending job, run it, repeat.

A job claim is a conditional UPDATE with a lease that the worker renews while it runs the job;
a job whose worker died is taken over once its lease expires, and picks up where it stopped
(its plan and completed chunks are kept).
"""

from __future__ import annotations

import logging
import threading
import time

from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.runner import execute
from tos2ca_batch.tasks import worker_name

log = logging.getLogger("tos2ca_batch")


def _keep_lease(cfg: Config, job_id: int, worker: str, stop: threading.Event) -> None:
    while not stop.wait(cfg.lease_seconds / 3):
        try:
            cfg.db().execute("UPDATE jobs SET leaseUntil = ? WHERE jobID = ? AND worker = ?",
                             (time.time() + cfg.lease_seconds, job_id, worker))
        except Exception:
            log.warning("could not renew the lease of job %s", job_id)


def work(cfg: Config, backend: Backend, once: bool = False, poll_seconds: float = 10.0) -> list[dict]:
    """Run claimed jobs; with ``once`` stop when no job is pending, else poll forever."""
    name = worker_name()
    done = []
    while True:
        job_id = cfg.db().claim_job(name, cfg.lease_seconds)
        if job_id is None:
            if once:
                return done
            time.sleep(poll_seconds)
            continue
        log.info("worker %s runs job %s", name, job_id)
        stop = threading.Event()
        keeper = threading.Thread(target=_keep_lease, args=(cfg, job_id, name, stop), daemon=True)
        keeper.start()
        try:
            done.append(execute(cfg, job_id, backend))
        finally:
            stop.set()
