"""Tell the user a job ended: a log line always, and the job row's message."""

from __future__ import annotations

import logging

from tos2ca_batch.config import Config

log = logging.getLogger("tos2ca_batch")


def compose(cfg: Config, job_id: int) -> tuple[str, str]:
    db = cfg.db()
    row = db.get_job(job_id)
    subject = f"TOS2CA job {job_id} {row['status']}"
    if row["status"] == "complete":
        body = (f"Job {job_id} ({row['dataset']} {row['variable']}) is complete.\n"
                f"Outputs: {cfg.outputs(job_id).prefix}/\n"
                + "".join(f"  {o['location']}\n" for o in db.outputs(job_id)))
    else:
        body = f"Job {job_id} ({row['dataset']} {row['variable']}) failed.\nReason: {row['message']}\n"
    return subject, body


def notify(cfg: Config, job_id: int) -> None:
    subject, _ = compose(cfg, job_id)
    row = cfg.db().get_job(job_id)
    log.info("%s (notify %s): %s", subject, row.get("userID") or "no address", row["message"])
