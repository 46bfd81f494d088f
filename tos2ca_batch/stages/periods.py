"""Periods (jobs over ``TOS2CA_PERIOD_STEPS`` steps): one period's masks and ids files.

A multi-year job's single masks file would hold hundreds of thousands of groups and its ids file
terabytes, written by one task at the end. Instead each period (a month, or a day) is a chunk of
this stage, run in parallel: ``J-ForTraCC-Mask-Output-<period>.nc4`` and
``J-anomaly-ids-<period>.nc4`` hold the period's steps exactly as the one-file products would
(ids are the job's, global). Finalize lists them in ``J-ForTraCC-Products.json``.
"""

from __future__ import annotations

import tempfile

from tos2ca_batch.context import TaskContext
from tos2ca_batch.stages.common import ids_attributes, masks_attributes, period_files


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store, job_id = ctx.plan, ctx.store, ctx.job_id
    t0, t1, label = plan.periods[chunk]
    stamps, times = plan.timestamps[t0:t1], plan.times()[t0:t1]
    n = store.get_json("anomalies")["n_anomalies"]
    lat, lon = plan.grid.lat, plan.grid.lon
    names = period_files(job_id, label)
    from tos2ca_batch.outputs import masks as mk
    from tos2ca_batch.outputs.cf import write_ids_netcdf

    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        def publish(name: str, kind: str, write) -> None:
            path = f"{tmp}/{name}"
            write(path)
            ctx.db.add_output(job_id, ctx.outputs.put(path, name), kind, stamps[0])

        if "masks" in plan.products:
            attrs = dict(masks_attributes(plan, job_id), start_date=stamps[0], end_date=stamps[-1], period=label)
            publish(names["masks"], "masks", lambda p: mk.write_masks(
                p, attrs, lat, lon, stamps, n, lambda k: store.get_table("publish", t0 + k, "masks")))
        if "ids" in plan.products:
            attrs = dict(ids_attributes(plan, job_id), period=label,
                         time_coverage_start=times[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                         time_coverage_end=times[-1].strftime("%Y-%m-%dT%H:%M:%SZ"))
            publish(names["ids"], "ids", lambda p: write_ids_netcdf(
                p, lat, lon, times, plan.entry.time_step, lambda k: store.read_ids(t0 + k), attrs))
