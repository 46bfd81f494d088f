"""Standing jobs: sync the data that arrived since a job ended into it, now or on a schedule.

A sync of job J is a job of its own (stage ``sync``; see ``stages/syncplan.py``) run by the
usual runner on any backend. This module holds a job's **sync row** (``syncs`` table: its
schedule, its last outcome, the sync job under way) with a lease, so that two callers (two
``sync --due`` from cron, a user's ``sync J`` beside them) never sync one job at once; a sync
whose caller died is finished by the next caller, from its chunks, as ``resume`` would.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from tos2ca_batch import lifecycle
from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.stages.syncplan import NotSyncable, new_times, sync_entry, syncable_plan
from tos2ca_batch.stores.jobsdb import now_iso
from tos2ca_batch.timeutil import to_ts

SCHEDULES = {"hourly": 3600, "daily": 86400}
SCHEDULE_RE = re.compile(r"^(\d+)min$")


def schedule_seconds(text: str) -> int:
    """Seconds between syncs of a schedule: ``hourly``, ``daily`` or ``<N>min`` (N >= 1)."""
    if text in SCHEDULES:
        return SCHEDULES[text]
    m = SCHEDULE_RE.match(text or "")
    if not m or int(m.group(1)) < 1:
        raise SpecError("every", f"must be hourly, daily or <N>min (e.g. 30min), got {text!r}")
    return int(m.group(1)) * 60


def set_schedule(cfg: Config, job_id: int, every: str | None, until: datetime | None) -> dict:
    """Store (or, with ``every`` None, clear) job J's sync schedule; due at once."""
    db = cfg.db()
    seconds = schedule_seconds(every) if every else None
    syncable_plan(TaskContext(cfg, job_id))  # refuse a job that could never be synced
    db.ensure_sync(job_id)
    db.update_sync(job_id, schedule=every, untilDate=to_ts(until) if until else None,
                   nextDue=time.time() if seconds else None)
    return db.get_sync(job_id)


def _result(job_id: int, status: str, message: str, **extra) -> dict:
    return {"job_id": job_id, "sync": status, "message": message, **extra}


def sync_job(cfg: Config, job_id: int, backend: Backend, until: datetime | None = None, due_by: float | None = None,
             worker: str | None = None) -> dict:
    """Sync job J once now (``due_by``: only if its schedule is due by then). Returns what
    happened: ``sync`` is ``synced``, ``noop`` (no new steps), ``busy`` (another caller holds
    it), ``not-due``, ``refused`` or ``failed`` (the job's previous version stands)."""
    db = cfg.db()
    worker = worker or lifecycle.worker_name()
    db.ensure_sync(job_id)
    row = db.get_sync(job_id)
    dead = row.get("worker") if lifecycle.holder_is_dead(row.get("worker")) else None
    if not db.claim_sync(job_id, worker, cfg.lease_seconds, due_by, dead):
        if due_by is not None and (db.get_sync(job_id).get("nextDue") or 0) > due_by:
            return _result(job_id, "not-due", "another caller synced it")
        return _result(job_id, "busy", f"job {job_id} is being synced by {db.get_sync(job_id).get('worker')}")
    row = db.get_sync(job_id)
    if until is None and row.get("untilDate"):
        until = datetime.strptime(row["untilDate"], "%Y%m%d%H%M")
    outcome: dict = {}
    try:
        with lifecycle.Lease(cfg.lease_seconds, lambda: db.hold_sync(job_id, worker, cfg.lease_seconds),
                             f"the sync of job {job_id}"):
            outcome = _sync_held(cfg, job_id, backend, until, row.get("syncJob"))
    except BaseException as exc:  # interrupted: the row is released, the sync job is left to resume
        outcome = _result(job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        fields = {"lastRun": now_iso(), "status": outcome.get("sync", "failed"),
                  "message": str(outcome.get("message", ""))[:4000]}
        if outcome.get("sync_job") is not None:
            fields["syncJob"] = outcome["sync_job"]
        if outcome.get("through"):
            fields["lastStep"] = outcome["through"]
        if row.get("schedule"):
            fields["nextDue"] = time.time() + schedule_seconds(row["schedule"])
        db.release_sync(job_id, worker, **fields)
    return outcome


def _sync_held(cfg: Config, job_id: int, backend: Backend, until: datetime | None, previous: int | None) -> dict:
    from tos2ca_batch.runner import execute, resume

    db = cfg.db()
    if previous is not None:  # a sync that did not finish (killed, failed): finish it first
        prow = db.get_job(previous)
        if prow is not None and prow["status"] != "complete":
            res = resume(cfg, previous, backend)
            return _outcome(cfg, job_id, previous, res)
    try:
        plan = syncable_plan(TaskContext(cfg, job_id))
    except (NotSyncable, SpecError) as exc:
        return _result(job_id, "refused", str(exc))
    try:
        times = new_times(sync_entry(cfg.catalog(), plan), plan, until)
    except Exception as exc:  # e.g. no credentials for the dataset's bucket
        from tos2ca_batch.runner import access_hint

        return _result(job_id, "failed", f"looking for new files: {type(exc).__name__}: {exc}{access_hint(exc)}")
    if not times:
        return _result(job_id, "noop", f"no new steps of {plan.dataset} after {plan.timestamps[-1]}"
                                       f"{f' up to {until:%Y-%m-%dT%H:%M}' if until else ''}; nothing to do")
    spec = json.loads(db.get_job(job_id)["spec"])
    spec = dict(spec, end=f"{times[-1]:%Y-%m-%dT%H:%M}", until=f"{times[-1]:%Y-%m-%dT%H:%M}")
    child = db.create_job(spec, status="running", sync_of=job_id)
    db.update_sync(job_id, syncJob=child)
    return _outcome(cfg, job_id, child, execute(cfg, child, backend))


def _outcome(cfg: Config, job_id: int, child: int, res: dict) -> dict:
    row = cfg.db().get_job(child)
    if row["status"] != "complete":
        return _result(job_id, "failed", row["message"] or row["status"], sync_job=child)
    done = cfg.store(child).get_json("sync")
    return _result(job_id, "synced", row["message"], sync_job=child, **{
        k: done[k] for k in ("version", "new_steps", "through", "added", "ended", "n_anomalies")})


def sync_due(cfg: Config, backend: Backend) -> list[dict]:
    """Every scheduled sync that is due, each at most once (what cron or a scheduler runs)."""
    now = time.time()
    return [sync_job(cfg, job, backend, due_by=now) for job in cfg.db().due_syncs(now)]
