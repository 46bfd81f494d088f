"""The one owner of a job's state: every change of a job's status goes through here.

Each change is a conditional update (:meth:`JobsDB.transition`) from the states it expects, so
two processes racing for it (a task and a rank, a worker and ``cancel``) cannot both make it,
and the user is notified exactly once per final state (``complete``, ``failed``, ``cancelled``).

Leases: whoever runs a job (``run``, ``resume``, ``worker``) holds a lease on it and renews it
(:func:`job_lease`); ``resume`` or a worker takes over a job whose lease lapsed, or at once when
its holder was a process of this host that no longer exists.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

from tos2ca_batch.config import Config
from tos2ca_batch.notify import notify
from tos2ca_batch.pipeline import KEPT_AFTER_COMPLETION
from tos2ca_batch.plans import Plan, load_plan
from tos2ca_batch.redact import redact

log = logging.getLogger("tos2ca_batch")
FINAL_STATES = ("complete", "failed", "cancelled")


def worker_name(identity: str | None = None) -> str:
    """``host:pid``, after ``identity@`` in an array child (``Config.task_identity``)."""
    here = f"{socket.gethostname()}:{os.getpid()}"
    return f"{identity}@{here}" if identity else here


def _run_of(identity: str) -> tuple[str, tuple[int, ...]] | None:
    child, _, run = identity.rpartition("#")
    parts = run.split(".")
    return (child, tuple(int(p) for p in parts)) if child and all(p.isdigit() for p in parts) else None


def holder_superseded(worker: str | None, identity: str | None) -> bool:
    """True when ``worker`` was an earlier run of the array child this process is a later run of
    (same Slurm array element or AWS Batch job, a lower restart or attempt count): the scheduler
    runs one run of a child at a time, so that holder is dead, on whatever host it ran."""
    if not worker or not identity or "@" not in worker:
        return False
    theirs, mine = _run_of(worker.rpartition("@")[0]), _run_of(identity)
    return theirs is not None and mine is not None and theirs[0] == mine[0] and theirs[1] < mine[1]


def holder_is_dead(worker: str | None) -> bool:
    """True when ``worker`` (``[identity@]host:pid``) was a process of this host that no longer runs."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # an exited child nobody reaped (PID 1 of a container may not) is a zombie: dead too
        state = open(f"/proc/{int(pid)}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _retry(what: str, change, attempts: int = 3) -> bool:
    """Run a state change; on an error (a full disk, a dropped connection) retry, then log.

    A job's final state is the last thing that must not be lost, and the one thing a broken
    store may refuse: the error is logged, never raised over the job's own error."""
    for k in range(attempts):
        try:
            return change()
        except Exception as exc:  # noqa: PERF203 - a retry loop
            log.error("%s: %s: %s (attempt %d of %d)", what, type(exc).__name__, redact(str(exc)), k + 1, attempts)
            time.sleep(0.5 * (k + 1))
    return False


def begin(cfg: Config, job_id: int) -> bool:
    """A stored job starts planning: ``pending`` -> ``running`` (a running one just changes phase)."""
    db = cfg.db()
    return db.transition(job_id, "running", ("pending", "running"), phase="plan")


def fail(cfg: Config, job_id: int, message: str) -> bool:
    """``pending``/``running`` -> ``failed`` once; the first failure's message stays and is mailed."""
    message = redact(message)[:4000]
    db = cfg.db()
    changed = _retry(f"failing job {job_id}",
                     lambda: db.transition(job_id, "failed", ("pending", "running"), message=message, leaseUntil=None))
    if changed:
        log.error("job %s failed: %s", job_id, message)
        notify(cfg, job_id)
        _tell_sweep(cfg, job_id)
    else:
        log.error("job %s: %s (not recorded: the job had already ended)", job_id, message)
    return changed


def cancel(cfg: Config, job_id: int, reason: str) -> bool:
    """``pending``/``running`` -> ``cancelled`` once, its chunk leases released. Tasks that see it
    stop at their next chunk boundary; ``resume`` continues it later."""
    db = cfg.db()
    changed = _retry(f"cancelling job {job_id}",
                     lambda: db.transition(job_id, "cancelled", ("pending", "running"), message=reason,
                                           leaseUntil=None))
    _retry(f"releasing the chunks of job {job_id}", lambda: db.release_chunks(job_id) >= 0)
    if changed:
        log.warning("job %s cancelled: %s", job_id, reason)
        notify(cfg, job_id)
    return changed


def complete(cfg: Config, job_id: int, plan: Plan | None = None) -> bool:
    """``running`` -> ``complete`` once every chunk is complete (finalize has verified the outputs);
    then the scratch is released and the user told. False if it was not running or not done.
    ``plan``: the job's plan, when the caller has it loaded already."""
    db = cfg.db()
    if any(c["status"] != "complete" for c in db.chunks(job_id)):
        return False
    store = cfg.store(job_id)
    plan = plan or load_plan(store)
    prefix = cfg.outputs(job_id, plan.output_prefix).prefix
    message = f"complete at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}; outputs under {prefix}"
    if store.has_json("summary"):  # curation: say which mask times had no curation data
        missing = store.get_json("summary")["missing_times"]
        message += f"; mask times without curation data: {', '.join(missing) if missing else 'none'}"
    synced = store.get_json("sync") if store.has_json("sync") else None
    if synced:
        message = (f"synced job {synced['job']} through {synced['through']} ({synced['new_steps']} new steps): "
                   f"version {synced['version']}, {synced['added']} anomalies added, {synced['ended']} ended, "
                   f"{synced['n_anomalies']} in all; outputs under {prefix}")
    if not db.transition(job_id, "complete", ("running",), phase="done", message=message, leaseUntil=None):
        return False
    if synced:
        def record() -> bool:
            db.update_job(synced["job"], message=f"complete; version {synced['version']} through "
                                                 f"{synced['through']} (sync {job_id}); outputs under {prefix}")
            db.ensure_sync(synced["job"])
            db.update_sync(synced["job"], status="synced", lastStep=synced["through"], message=message,
                           lastRun=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            return True

        _retry(f"recording job {synced['job']}'s new version", record)
    try:  # scratch is only space now; failing to free it does not undo the result
        gone = store.release(KEPT_AFTER_COMPLETION)
        log.info("job %s: released %d scratch keys", job_id, len(gone))
    except Exception as exc:
        log.warning("job %s: could not release its scratch (%s: %s)", job_id, type(exc).__name__, exc)
    if not synced or synced["added"]:  # a sync mails only when it found new anomalies (once per sync)
        notify(cfg, job_id, prefix)
    _tell_sweep(cfg, job_id, plan)
    return True


def fail_unshared(cfg: Config, job_id: int, lead: int) -> bool:
    """A sweep's job whose lead (the job whose map it shares) ended without sharing it fails."""
    return fail(cfg, job_id, f"the map it shares, job {lead}'s, did not complete: {cfg.db().get_job(lead)['message']}")


def _tell_sweep(cfg: Config, job_id: int, plan=None) -> None:
    """A sweep's combination ended: if it failed before sharing its map, the jobs that share it
    fail too (on AWS Batch their chains would never start); the last of the sweep's
    combinations to end writes its table (``sweep_table.finish``). Never raised over the job's end."""
    try:
        plan = plan or load_plan(cfg.store(job_id))
    except Exception:  # no plan (refused at plan): the sweep handles that job itself
        return
    sweep_id = getattr(plan, "sweep_of", None)
    if sweep_id is None:
        return
    try:
        db = cfg.db()
        if plan.map_for and db.get_job(job_id)["status"] == "failed" and not db.stage_complete(job_id, "share"):
            for job in plan.map_for:
                fail_unshared(cfg, job, job_id)
        from tos2ca_batch import sweep_table

        sweep_table.finish(cfg, sweep_id)
    except Exception as exc:
        log.error("job %s ended, but sweep %s could not be told: %s: %s", job_id, sweep_id, type(exc).__name__,
                  redact(str(exc)))


def is_cancelled(cfg: Config, job_id: int) -> bool:
    row = cfg.db().get_job(job_id)
    return row is not None and row["status"] == "cancelled"


class NotResumable(RuntimeError):
    """The job cannot be taken over (it is complete, or another live process holds it)."""


def take_over(cfg: Config, job_id: int, worker: str) -> None:
    """Make ``worker`` the holder of a job that stopped: failed, cancelled, or running under a lease
    that lapsed or a holder process that is gone. Chunks held by dead local processes are released
    and failed ones retried; chunks whose outputs vanished from the store (Redis flushed or
    expired) run again."""
    db = cfg.db()
    row = db.get_job(job_id)
    if row is None:
        raise NotResumable(f"there is no job {job_id}")
    if row["status"] == "complete":
        raise NotResumable(f"job {job_id} is complete; nothing to resume")
    dead = row.get("worker") if holder_is_dead(row.get("worker")) else None
    if row["status"] == "pending":
        db.transition(job_id, "running", ("pending",), worker=worker, leaseUntil=time.time() + cfg.lease_seconds)
    elif not db.take_over_job(job_id, worker, cfg.lease_seconds, dead):
        lease = row.get("leaseUntil") or 0
        raise NotResumable(f"job {job_id} is running on {row.get('worker')} (lease for another "
                           f"{max(0, lease - time.time()):.0f} s); cancel it first or wait")
    release_dead_holders(cfg, job_id)
    log.info("job %s taken over by %s (was %s, %s)", job_id, worker, row["status"], row.get("worker"))


def reopen(cfg: Config, job_id: int) -> bool:
    """A failed or cancelled job becomes ``running`` held by nobody, to be taken over later (a
    sweep's combinations on resume, so that none counts as ended before it runs again); no worker
    claims a running job without a lease."""
    return cfg.db().transition(job_id, "running", ("failed", "cancelled"), worker=None, leaseUntil=None)


def release_dead_holders(cfg: Config, job_id: int) -> int:
    """Running chunks whose holder was a process of this host that is gone: back to pending now,
    instead of waiting out their lease."""
    db = cfg.db()
    dead = sorted({c["worker"] for c in db.chunks(job_id) if c["status"] == "running" and holder_is_dead(c["worker"])})
    return db.release_chunks(job_id, dead) if dead else 0


def forget_lost_outputs(cfg: Config, job_id: int) -> int:
    """Complete chunks whose done marker is gone from the store (so are their outputs): pending.
    Returns how many."""
    db, store = cfg.db(), cfg.store(job_id)
    lost = 0
    by_stage: dict[str, list[int]] = {}
    for c in db.chunks(job_id):
        if c["status"] == "complete" and not store.is_done(c["stage"], c["chunkID"]):
            by_stage.setdefault(c["stage"], []).append(c["chunkID"])
    for stage, ids in by_stage.items():
        db.reset_chunks(job_id, stage, ids)
        lost += len(ids)
    if lost:
        log.warning("job %s: %d chunks lost their outputs and run again", job_id, lost)
    return lost


class Lease:
    """Hold a lease while inside ``with``: ``hold()`` takes it on entry and renews it every third
    of ``lease_seconds`` (a job's lease here, a job's sync in ``sync``). With ``renew=False`` no
    thread renews it until :meth:`renew_from_now` (``run`` forks its workers after the plan, and
    a process with a thread of its own must not fork)."""

    def __init__(self, lease_seconds: float, hold, what: str, renew: bool = True):
        self.lease_seconds, self.hold, self.what, self.renew = lease_seconds, hold, what, renew
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name=f"lease of {what}")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.hold()
            except Exception:  # a missed renewal only shortens the lease
                log.warning("could not renew the lease of %s", self.what)

    def __enter__(self) -> Lease:
        self.hold()
        if self.renew:
            self._thread.start()
        return self

    def renew_from_now(self) -> None:
        """Take the lease afresh and start renewing it (a lease entered with ``renew=False``)."""
        if self._thread.ident is None:  # never started
            self.hold()
            self._thread.start()

    def __exit__(self, *exc) -> None:
        self._stop.set()


def job_lease(cfg: Config, job_id: int, worker: str, renew: bool = True) -> Lease:
    """Hold (and, unless ``renew`` is False, renew) a running job's lease while inside ``with``."""
    return Lease(cfg.lease_seconds, lambda: cfg.db().hold_job(job_id, worker, cfg.lease_seconds), f"job {job_id}",
                 renew)
