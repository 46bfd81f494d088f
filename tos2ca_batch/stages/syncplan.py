"""Plan of a sync: extend a complete PhDef job with the steps its dataset gained since it ended.

A sync is its own job row (stage ``sync``, ``phdefJobID`` the job it extends) so it has chunk
rows, leases and ``resume`` like any job, and runs on every backend. Its plan is the job's plan
over ``[the job's last step] + the new steps``: step 0 is rebuilt from the job's stored last
step (``sync:0:last``, never read from its file again) so that seams, overlaps and linking
continue from it exactly; the linking starts from the job's last-step rows (``sync:0:start``,
copied here so the job's own state may be replaced by the sync's commit at any moment).

Everything that can refuse a sync happens here (or in :func:`new_times`), before any work.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import numpy as np

from tos2ca_batch.algorithm import Layout
from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.readers import GridMismatch, StepReader
from tos2ca_batch.stores.objectstore import existing
from tos2ca_batch.timeutil import axis, from_ts, to_ts


class NotSyncable(RuntimeError):
    """The job cannot be synced (not complete, not a PhDef job, or its spec forbids it)."""


def syncable_plan(ctx: TaskContext) -> PhDefPlan:
    """The stored plan of a job that may be synced, else :class:`NotSyncable` or a SpecError."""
    row = ctx.db.get_job(ctx.job_id)
    if row is None:
        raise NotSyncable(f"there is no job {ctx.job_id}")
    if row["stage"] != "phdef":
        raise NotSyncable(f"job {ctx.job_id} is a {row['stage']} job; only PhDef jobs are synced")
    if row["status"] != "complete":
        raise NotSyncable(f"job {ctx.job_id} is {row['status']}; only a complete job is synced "
                          f"(finish it first: tos2ca-batch resume {ctx.job_id})")
    plan = ctx.plan
    spec = json.loads(row["spec"]) if row.get("spec") else {}
    if plan.baseline_statistic and not (isinstance(spec, dict) and spec.get("baseline")):
        raise SpecError("baseline", f"an {plan.operator} job without a fixed baseline cannot be synced: its "
                                    f"baseline statistic is of the job's own range, which a sync changes; give the "
                                    'job a "baseline": {"start": ..., "end": ...}')
    return plan


def sync_entry(catalog: dict[str, CatalogEntry], plan: PhDefPlan) -> CatalogEntry:
    """Where a sync looks for new files: the catalog's entry for the job's dataset if it still
    names the job's files (its end date may have moved on), else the entry the job was planned
    with, open-ended (a sync from cron need not be given the job's catalog again)."""
    current = catalog.get(plan.dataset)
    if current is not None and current.location == plan.entry.location:
        return current
    now = datetime.now(UTC).replace(tzinfo=None)
    return dataclasses.replace(plan.entry, end_date=f"{now:%Y-%m-%dT%H:%M}")


def new_times(entry: CatalogEntry, plan: PhDefPlan, until: datetime | None) -> list[datetime]:
    """The dataset's steps after the job's last one, up to ``until`` (or the catalog's end), that
    have their files, in order, stopping at the first step whose file has not arrived."""
    last = from_ts(plan.timestamps[-1])
    hi = min(until, entry.last) if until is not None else entry.last
    times = [t for t in axis(entry.first, entry.time_step, last, hi) if t > last] if hi > last else []
    if not times:
        return []
    present = existing([file_for(entry, t) for t in times])
    for k, t in enumerate(times):
        if file_for(entry, t) not in present:
            return times[:k]
    return times


def make_plan(ctx: TaskContext, job_id: int, until: datetime | None) -> PhDefPlan:
    """Plan sync ``ctx.job_id`` of job ``job_id`` and save it (raises before writing anything)."""
    parent = ctx.other(job_id)
    base = syncable_plan(parent)
    entry = sync_entry(ctx.cfg.catalog(), base)
    times = new_times(entry, base, until)
    if not times:
        raise SpecError("until", f"{base.dataset} has no steps after the job's end {base.timestamps[-1]}"
                                 f"{f' up to {until:%Y-%m-%dT%H:%M}' if until else ''}: nothing to sync")
    try:  # the new files must be on the job's grid (the reader checks every file it opens)
        with StepReader(entry, base.variable, base.grid.source) as reader:
            reader.grid(times[0])
            reader.grid(times[-1])
    except GridMismatch as exc:
        raise SpecError("dataset", f"the new files are on another grid than the job's: {exc}") from None
    stamps = [base.timestamps[-1], *(to_ts(t) for t in times)]
    lay = base.layout
    layout = Layout(len(stamps), lay.height, lay.width, min(lay.block_steps, len(stamps)), lay.tile_h, lay.tile_w)
    store = ctx.store
    plan = dataclasses.replace(
        base, job_id=ctx.job_id, job_uid=store.identity, entry=entry, layout=layout, timestamps=stamps,
        periods=None, version=base.version + 1, sync_of=job_id, step_offset=len(base.timestamps) - 1,
    )
    table = parent.store.reduce_table("components", (plan.step_offset, plan.step_offset + 1))
    last = np.flatnonzero(table["step"] == plan.step_offset)
    start = {k: v[last] for k, v in table.items()}
    start["n_anomalies"] = np.array([parent.store.get_json("anomalies")["n_anomalies"]], np.int64)
    store.put_table("sync", 0, "start", start)
    store.put_table("sync", 0, "last", parent.store.get_table("sync", 0, "last"))
    plan.save(store)  # the ids dataset is made by the first map task (stages.common.create_ids_dataset)
    ctx.db.add_stage_chunks(ctx.job_id, plan.chunk_ranges())
    ctx.db.update_job(ctx.job_id, nChunks=layout.n_chunks, startDate=stamps[1], endDate=stamps[-1])
    return plan
