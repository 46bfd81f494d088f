"""A sync's finalize: join the sync's new steps to the job it extends, rewrite the job's
whole-job products, then commit the job's new state.

Old steps are never decoded again: their masks chunks are copied raw from the job's existing
masks files, their ids stay in the job's Zarr. The commit writes the job's stored state last
(its plan after its tables), and every part of it is computed from the sync's own state and the
job's steps before the sync's step 0, which no commit changes: a commit interrupted anywhere is
redone whole by running this task again, and until its plan is written the job reads as its
previous version.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from tos2ca_batch.algorithm import Layout, period_ranges
from tos2ca_batch.context import TaskContext
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stages.common import ids_attributes, last_step_records, period_files, verify_outputs
from tos2ca_batch.stages.products import (
    block_tables,
    promised_outputs,
    publisher,
    step_features,
    write_features,
    write_job_products,
    write_period,
)


class EarlierMasks:
    """The precompressed chunks of earlier steps, read back from the job's masks files."""

    def __init__(self, outputs, tmp: str):
        self.outputs, self.tmp = outputs, tmp
        self._files: dict[str, object] = {}

    def _file(self, name: str):
        import h5py

        if name not in self._files:
            location = self.outputs.location(name)
            if location.startswith("s3://"):
                from tos2ca_batch.stores.objectstore import read_bytes

                path = Path(self.tmp) / f"earlier-{name}"
                path.write_bytes(read_bytes(location))
                location = str(path)
            self._files[name] = h5py.File(location, "r")
        return self._files[name]

    def chunks(self, name: str, ts: str) -> dict[str, np.ndarray]:
        """Step ``ts``'s ``mask_indices`` and ``data_values`` chunks, as ``masks.step_chunks``."""
        group = self._file(name)[f"masks/{ts}"]
        n = group["mask_indices"].shape[0]
        out = {"num_pixels": np.array([n], np.int64)}
        for var in ("mask_indices", "data_values"):
            data = group[var].id.read_direct_chunk((0,) * group[var].ndim)[1] if n else b""
            out[var] = np.frombuffer(data, np.uint8)
        return out

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def masks_file_of(plan: PhDefPlan, step: int) -> str:
    """The masks file that holds ``step`` of the job as ``plan`` describes it."""
    if not plan.periods:
        return f"{plan.output_job}-ForTraCC-Mask-Output.nc4"
    label = next(label for a, b, label in plan.periods if a <= step < b)
    return period_files(plan.output_job, label)["masks"]


def merged_table(earlier: dict, sync: dict, offset: int) -> dict[str, np.ndarray]:
    """The job's components: its rows before the sync's step 0, then the sync's (steps shifted)."""
    before = earlier["step"] < offset
    return {k: np.concatenate([earlier[k][before], sync[k] + (offset if k == "step" else 0)]).astype(earlier[k].dtype)
            for k in earlier}


def run(ctx: TaskContext, chunk: int = 0) -> None:
    sync_plan, store = ctx.plan, ctx.store
    job = ctx.other(sync_plan.sync_of)
    base = job.plan  # the job's plan before this sync (or after it, if a commit was interrupted)
    if len(base.timestamps) > sync_plan.step_offset + 1:
        base = _before(base, sync_plan.step_offset + 1)
    full = extended_plan(base, sync_plan)
    off = sync_plan.step_offset
    table = merged_table(job.store.get_table("reduce", 0, "components"), store.get_table("reduce", 0, "components"),
                         off)
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

    def step_chunks(s: int) -> dict[str, np.ndarray]:
        return store.get_table("publish", s - off, "masks") if s >= off else earlier.chunks(masks_file_of(base, s),
                                                                                            ts[s])

    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        earlier = EarlierMasks(ctx.outputs, tmp)
        try:
            publish = publisher(ctx, tmp, job_id, ts[0])
            write_job_products(ctx, full, table, n, step_chunks, publish)
            if "geojson" in full.products:  # the job's last step again: its tags may have changed
                _step0_geojson(ctx, tmp, publish)
            if full.periods:  # every masks file holds the job's anomaly count; ids files change where steps are new
                for k, (_, b, _) in enumerate(full.periods):
                    write_period(full, k, n, step_chunks, job.store.read_ids, publish,
                                 ("masks", "ids") if b - 1 > off else ("masks",))
            elif "ids" in full.products:
                from tos2ca_batch.outputs.cf import write_ids_netcdf

                publish(f"{job_id}-anomaly-ids.nc4", "ids", lambda p: write_ids_netcdf(
                    p, full.grid.lat, full.grid.lon, full.times(), full.entry.time_step, job.store.read_ids,
                    ids_attrs))
        finally:
            earlier.close()
    ctx.db.move_outputs(ctx.job_id, job_id)
    verify_outputs(ctx.db, ctx.outputs, job_id, promised_outputs(full, job_id))

    last_step = len(ts) - 1
    ends = {}
    for a, s in zip(table["anomaly_id"].tolist(), table["step"].tolist()):
        ends[a] = max(ends.get(a, -1), s)
    ended = sum(1 for s in ends.values() if off <= s < last_step)
    store.put_json("sync", {"job": job_id, "version": full.version, "new_steps": sync_plan.layout.n_steps - 1,
                            "through": ts[-1], "added": n - n_before, "ended": ended, "n_anomalies": n})
    # The commit: tables first, the plan (which says which version the job is) last.
    job.store.put_table("reduce", 0, "components", table)
    job.store.put_json("anomalies", {"n_anomalies": n})
    job.store.put_table("sync", 0, "last", last_step_records(store, sync_plan))
    full.save(job.store)
    ctx.db.update_job(job_id, endDate=ts[-1], version=full.version)


def _step0_geojson(ctx: TaskContext, tmp: str, publish) -> None:
    plan = ctx.plan
    features, _ = step_features(plan, ctx.store.get_table("reduce", 0, "components"), 0,
                                block_tables(ctx.store, plan, 0)[0])
    publish(f"{plan.output_job}-{plan.timestamps[0]}.json", "geojson", lambda p: write_features(p, features),
            plan.timestamps[0])


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
