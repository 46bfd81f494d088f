"""A sync's finalize: join the sync's new steps to the job it extends, rewrite the job's
whole-job products, then commit the job's new state.

Old steps are never read again: the masks and ids files are the job's earlier ones grown by the
new steps (``GrownFiles``), the job's Zarr is lengthened. The commit writes the job's stored state last
(its plan after its tables), and every part of it is computed from the sync's own state and the
job's steps before the sync's step 0, which no commit changes: a commit interrupted anywhere is
redone whole by running this task again, and until its plan is written the job reads as its
previous version.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tos2ca_batch.algorithm import Layout, period_ranges
from tos2ca_batch.context import TaskContext
from tos2ca_batch.outputs import masks as mk
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stages.common import StepChunks, ids_attributes, last_step_records, verify_outputs
from tos2ca_batch.stages.products import (
    NetCDFFiles,
    block_tables,
    parquet_available,
    polygon_table,
    promised_outputs,
    publisher,
    step_features,
    write_features,
    write_job_products,
    write_period,
    write_polygons,
    write_tables,
)
from tos2ca_batch.stages.report import job_log, write_report


class GrownFiles(NetCDFFiles):
    """The job's masks and ids files as a sync makes them: each the job's earlier file, copied
    (or downloaded) next to the new one and grown by the steps it lacks; only a file the job did
    not have yet (a new period's) is written whole, from the sync's new steps."""

    def __init__(self, outputs):
        self.outputs = outputs

    def _earlier(self, path: str, name: str) -> bool:
        """Copy the job's file ``name`` to ``path``; False if the job has none."""
        if not self.outputs.exists(name):
            return False
        location = self.outputs.location(name)
        if location.startswith("s3://"):
            from tos2ca_batch.stores.objectstore import read_bytes

            Path(path).write_bytes(read_bytes(location))
        else:
            shutil.copyfile(location, path)
        return True

    def masks(self, path, name, attrs, lat, lon, stamps, n, read_step) -> None:
        if self._earlier(path, name):
            mk.append_masks(path, attrs, stamps, n, read_step)
        else:
            mk.write_masks(path, attrs, lat, lon, stamps, n, read_step)

    def animation(self, path, name, frames) -> None:
        from tos2ca_batch.outputs.plots import write_gif

        if self._earlier(path + ".earlier.gif", name):
            write_gif(path, frames, earlier=path + ".earlier.gif")
        else:
            write_gif(path, frames)

    def ids(self, path, name, lat, lon, times, time_step, read_step, attrs) -> None:
        from tos2ca_batch.outputs.cf import append_ids_netcdf

        if not (self._earlier(path, name) and append_ids_netcdf(path, lat, lon, times, time_step, read_step, attrs)):
            super().ids(path, name, lat, lon, times, time_step, read_step, attrs)


def merged_table(earlier: dict, sync: dict, offset: int, before: int | None = None) -> dict[str, np.ndarray]:
    """The job's rows before step ``before`` (default ``offset``, the sync's step 0), then the
    sync's rows with their steps shifted by ``offset``."""
    keep = earlier["step"] < (offset if before is None else before)
    return {k: np.concatenate([earlier[k][keep], sync[k] + (offset if k == "step" else 0)]).astype(earlier[k].dtype)
            for k in earlier}


def _rows(table: dict[str, np.ndarray], first: int, end: int) -> dict[str, np.ndarray]:
    keep = (table["step"] >= first) & (table["step"] < end)
    return {k: v[keep] for k, v in table.items()}


def run(ctx: TaskContext, chunk: int = 0) -> None:
    sync_plan, store = ctx.plan, ctx.store
    job = ctx.other(sync_plan.sync_of)
    base = job.plan  # the job's plan before this sync (or after it, if a commit was interrupted)
    if len(base.timestamps) > sync_plan.step_offset + 1:
        base = _before(base, sync_plan.step_offset + 1)
    full = extended_plan(base, sync_plan)
    off = sync_plan.step_offset
    table = merged_table(job.store.reduce_table("components"), store.reduce_table("components"), off)
    events = store.reduce_table("events")  # the sync's own: at its steps 1.. (the job's off + 1..)
    if job.store.has_table("reduce", 0, "events"):
        events = merged_table(job.store.reduce_table("events"), events, off, before=off + 1)
    else:  # a job made before events were kept: its own merges and splits are not known
        events = {k: v + (off if k == "step" else 0) for k, v in events.items()}
    n = store.get_json("anomalies")["n_anomalies"]
    n_before = int(store.get_table("sync", 0, "start")["n_anomalies"][0])
    job_id, ts = full.output_job, full.timestamps

    # The ids: the job's Zarr lengthened, the sync's new steps copied in (steps before it unchanged).
    job.store.extend_arrays(full.times(), full.entry.time_step)
    lay = full.layout
    for k in range(1, sync_plan.layout.n_steps):
        job.store.write_ids(off + k, (0, lay.height, 0, lay.width), store.read_ids(k))
    ids_attrs = ids_attributes(full, job_id)
    job.store.set_ids_attributes(ids_attrs)

    own_steps = StepChunks(store, sync_plan)

    def step_chunks(s: int) -> dict[str, np.ndarray]:
        if s < off:  # GrownFiles keeps earlier steps' groups; only a lost masks file would ask
            raise FileNotFoundError(f"job {job_id}'s masks file holding {ts[s]} is missing from "
                                    f"{ctx.outputs.prefix}; a sync cannot rebuild earlier steps")
        return own_steps(s - off)

    files = GrownFiles(ctx.outputs)
    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        publish = publisher(ctx, tmp, job_id, ts[0])
        write_job_products(full, table, n, step_chunks, job.store.read_ids, ids_attrs, publish, files)
        if "geojson" in full.products:  # the job's last step again: its tags may have changed
            step0 = _step0_geojson(ctx, tmp, publish)
            if parquet_available():
                name = f"{job_id}-polygons.parquet"
                steps = [(off, step0)] + [(off + k, store.get_table("publish", k, "polygons"))
                                          for k in range(1, sync_plan.layout.n_steps)]
                earlier = f"{tmp}/earlier-{name}"
                publish(name, "polygons", lambda p: write_polygons(
                    p, full, steps, earlier if files._earlier(earlier, name) else None))
        for k, (_, b, _) in enumerate(full.periods or []):  # every masks file holds the job's anomaly count
            write_period(full, k, n, step_chunks, job.store.read_ids, publish, files,
                         ("masks", "ids") if b - 1 > off else ("masks",))
        stats = None
        if "tables" in full.products:
            parts = [store.get_table("publish", s, "stats") for s in range(sync_plan.layout.n_steps)]
            stats = merged_table(job.store.get_table("tables", 0, "steps"),
                                 {k: np.concatenate([t[k] for t in parts]) for k in parts[0]}, off)
            write_tables(full, table, stats, events, publish)
        if "animation" in full.products:  # the sync's new steps' frames after the job's
            frames = [store.get_table("publish", k, "frame")["png"].tobytes()
                      for k in range(1, sync_plan.layout.n_steps)]
            publish(f"{job_id}-animation.gif", "animation",
                    lambda p: files.animation(p, f"{job_id}-animation.gif", frames))
        if "report" in full.products:  # last: it links to every other file
            write_report(full, json.loads(ctx.db.get_job(job_id)["spec"]), table, n, job.store.read_ids,
                         promised_outputs(full, job_id), job_log(ctx.db, job_id), publish)
    ctx.db.move_outputs(ctx.job_id, job_id)
    verify_outputs(ctx.db, ctx.outputs, job_id, promised_outputs(full, job_id))

    ends = np.full(n + 1, -1, np.int64)  # each anomaly's last step
    np.maximum.at(ends, table["anomaly_id"].astype(np.int64), table["step"].astype(np.int64))
    ended = int(np.count_nonzero((ends >= off) & (ends < len(ts) - 1)))
    store.put_json("sync", {"job": job_id, "version": full.version, "new_steps": sync_plan.layout.n_steps - 1,
                            "through": ts[-1], "added": n - n_before, "ended": ended, "n_anomalies": n})
    # The commit: tables first, the plan (which says which version the job is) last.
    blocks = job.store.reduce_blocks() or [(0, off + 1)]
    blocks[-1] = (blocks[-1][0], len(ts))  # the job's last block grows by the sync's steps
    for k, (a, b) in enumerate(blocks):  # rewritten whole: an interrupted commit runs again the same
        job.store.put_table("reduce", k, "components", _rows(table, a, b))
        job.store.put_table("reduce", k, "events", _rows(events, a, b))
    if stats is not None:
        job.store.put_table("tables", 0, "steps", stats)
    job.store.put_reduce_blocks(blocks, n)
    job.store.put_table("sync", 0, "last", last_step_records(store, sync_plan))
    full.save(job.store)
    ctx.db.update_job(job_id, endDate=ts[-1], version=full.version)


def _step0_geojson(ctx: TaskContext, tmp: str, publish) -> dict[str, np.ndarray]:
    """The job's last step's GeoJSON rewritten (the sync's step 0); its polygons as a table."""
    plan = ctx.plan
    features, _ = step_features(plan, ctx.store.reduce_table("components", (0, 1)), 0,
                                block_tables(ctx.store, plan, 0)[0])
    publish(f"{plan.output_job}-{plan.timestamps[0]}.json", "geojson", lambda p: write_features(p, features),
            plan.timestamps[0])
    return polygon_table(features)


def extended_plan(base: PhDefPlan, sync: PhDefPlan) -> PhDefPlan:
    """The job's plan after the sync: its steps and the sync's new ones (periods recut)."""
    return _with_steps(base, base.timestamps + sync.timestamps[1:], sync.version, sync.entry)


def _before(plan: PhDefPlan, n_steps: int) -> PhDefPlan:
    """``plan`` cut back to its first ``n_steps`` steps (the job as it was before this sync)."""
    return _with_steps(plan, plan.timestamps[:n_steps], plan.version - 1, plan.entry)


def _with_steps(plan: PhDefPlan, stamps: list[str], version: int, entry) -> PhDefPlan:
    lay = plan.layout
    periods = period_ranges(stamps, "month" if len(plan.periods[0][2]) == 6 else "day") if plan.periods else None
    return dataclasses.replace(plan, timestamps=stamps, periods=periods, version=version, entry=entry,
                               layout=Layout(len(stamps), lay.height, lay.width, lay.block_steps, lay.tile_h,
                                             lay.tile_w))
