"""A job in a few lines for a person: what it found, where to look, what to do next.

``run``, ``resume`` and ``demo`` print it on stderr when a job ends; ``status J`` prints it
(``status J --json`` the row, chunk counts and outputs for scripts).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from tos2ca_batch.config import Config
from tos2ca_batch.pipeline import STAGES

OPEN_FIRST = (("report.html", "the job on one page: summary, tracks map, anomalies step by step"),
              ("ForTraCC-TOC.json", "each anomaly and its times"), ("tracks.png", "the tracks on one map"),
              ("anomalies.csv", "one row per anomaly"), ("ForTraCC-Mask-Output.nc4", "the masks, TOS2CA's layout"),
              ("ForTraCC-Products.json", "the masks and ids files per period"),
              ("Interpolated-Data.nc4", "the curated variable on the mask grid"))
OPERATORS = {"greaterThan": ">", "greaterThanOrEqualTo": ">=", "lessThan": "<", "lessThanOrEqualTo": "<=",
             "equalTo": "==", "anomalyEvent": "sigma beyond the mean:",
             "percentile": "beyond each pixel's percentile:"}


def _when(ts: str | None) -> str:
    """``YYYYMMDDhhmm`` as ``YYYY-MM-DD hh:mm`` (anything else as it is)."""
    if ts and len(ts) == 12 and ts.isdigit():
        return f"{ts[:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:]}"
    return ts or "?"


def job_line(row: dict) -> str:
    """One job in one line: id, state, what, when, and its message's start."""
    what = f"{row.get('dataset')} {row.get('variable')}"
    if row.get("stage") == "curation":
        what += f" inside job {row.get('phdefJobID')}"
    elif row.get("stage") == "sync":
        what = f"sync of job {row.get('phdefJobID')}: " + what
    elif row.get("stage") == "sweep":
        what = f"sweep of {what}"
    elif row.get("ineqOperator"):
        what += f" {OPERATORS.get(row['ineqOperator'], row['ineqOperator'])} {row.get('ineqValue')}"
    message = (row.get("message") or "").split(";")[0]
    when = f"{_when(row.get('startDate'))} to {_when(row.get('endDate'))}"
    return (f"{row['jobID']:>6}  {row['status']:<9}  {row.get('phase') or '-':<9}  {what}  {when}  "
            f"submitted {row.get('submitTime') or '?'}" + (f"  {message[:80]}" if message else ""))


def _anomalies(cfg: Config, job_id: int) -> int | None:
    try:
        store = cfg.store(job_id)
        return store.get_json("anomalies")["n_anomalies"] if store.has_json("anomalies") else None
    except Exception:  # a store that is gone or another job's: the summary does without
        return None


def job_summary(cfg: Config, job_id: int) -> str:
    db = cfg.db()
    row = db.get_job(job_id)
    if row is None:
        return f"job {job_id}: no such job in {db.describe()}"
    status = row["status"]
    what = f"{row.get('dataset')} {row.get('variable')}"
    if row.get("stage") != "curation" and row.get("ineqOperator"):
        what += f" {OPERATORS.get(row['ineqOperator'], row['ineqOperator'])} {row.get('ineqValue')}"
    span = f"{_when(row.get('startDate'))} to {_when(row.get('endDate'))}"
    n = _anomalies(cfg, job_id) if status == "complete" and row.get("stage") != "curation" else None
    found = f": {n} {'anomaly' if n == 1 else 'anomalies'} (ForTraCC tracks)" if n is not None else ""
    version = f" (version {row['version']}, synced)" if (row.get("version") or 1) > 1 else ""
    lines = [f"job {job_id} {status}{found} - {what}, {span}{version}"]
    outputs = [o["location"] for o in db.outputs(job_id)]
    if outputs:
        where = str(PurePosixPath(outputs[0]).parent)
        names = {PurePosixPath(o).name for o in outputs}
        first = [f"{name} ({why})" for suffix, why in OPEN_FIRST for name in names if name.endswith(suffix)]
        lines.append(f"  {len(outputs)} outputs under {where}")
        if first:
            lines.append("  open first: " + "; ".join(first[:3]))
    counts = db.chunk_counts(job_id)
    if counts:
        parts = []
        for stage, by_status in sorted(counts.items(), key=lambda kv: list(STAGES).index(kv[0])
                                       if kv[0] in STAGES else len(STAGES)):
            total = sum(by_status.values())
            parts.append(f"{stage} {by_status.get('complete', 0)}/{total}")
        lines.append("  chunks complete: " + ", ".join(parts))
    if row.get("message"):
        lines.append(f"  message: {row['message']}")
    sync = db.get_sync(job_id) if row.get("stage") == "phdef" else None
    if sync:
        lines.append(f"  sync: {sync_line(sync).split(': ', 1)[1]}")
    if status in ("failed", "cancelled") or (status == "running" and row.get("phase")):
        lines.append(f"  next: tos2ca-batch resume {job_id}" + (" (after fixing the cause)" if status == "failed"
                                                                 else ""))
    return "\n".join(lines)


def sync_line(row: dict) -> str:
    """One line of ``sync --list``: job, schedule, next due, last outcome."""
    import time

    due = row.get("nextDue")
    when = ("due now" if due <= time.time() else f"next in {int(due - time.time()) // 60} min") if due else "on demand"
    last = f"last {row['status']} at {row['lastRun']}" if row.get("lastRun") else "never run"
    through = f", through {row['lastStep']}" if row.get("lastStep") else ""
    until = f", until {row['untilDate']}" if row.get("untilDate") else ""
    return (f"job {row['jobID']}: {row.get('schedule') or 'no schedule'} ({when}{until}); {last}{through}"
            f"{': ' + row['message'] if row.get('message') else ''}")
