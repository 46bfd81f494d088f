"""The worker loop (TOS2CA's EC2 poller): claim a pending job, run it, repeat.

A job claim is a conditional UPDATE with a lease that the worker renews while it runs the job
(:func:`~tos2ca_batch.lifecycle.job_lease`); a job whose holder died (a worker, or ``run``) is
taken over once its lease expires, and picks up where it stopped (its plan and completed chunks
are kept).
"""

from __future__ import annotations

import logging
import time

from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.lifecycle import worker_name
from tos2ca_batch.runner import execute

log = logging.getLogger("tos2ca_batch")


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
        if cfg.db().get_job(job_id)["stage"] == "sweep":  # its holder died: finish it
            from tos2ca_batch.sweep import continue_sweep

            done.append(continue_sweep(cfg, job_id, backend, report=log.info))
        else:
            done.append(execute(cfg, job_id, backend))
        if done[-1].get("interrupted"):  # SIGINT/SIGTERM: the job is cancelled, the worker stops
            return done
