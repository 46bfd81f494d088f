"""Finalize: the whole-job products (masks file, TOC, hierarchy, tracks, CF ids, tables, report)."""

from __future__ import annotations

import json
import tempfile

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.stages.common import StepChunks, job_ids_attributes, last_step_records, verify_outputs
from tos2ca_batch.stages.products import (
    MASKS_LAYOUT,
    NetCDFFiles,
    parquet_available,
    promised_outputs,
    publisher,
    write_job_products,
    write_polygons,
    write_tables,
)
from tos2ca_batch.stages.report import job_log, write_report


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store = ctx.plan, ctx.store
    job_id = plan.output_job
    table = store.reduce_table("components")
    n = store.get_json("anomalies")["n_anomalies"]
    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        ids_attrs = job_ids_attributes(store, plan)
        publish = publisher(ctx, tmp, job_id, plan.timestamps[0])
        layout = store.get_table(*MASKS_LAYOUT) if store.has_table(*MASKS_LAYOUT) else None
        write_job_products(plan, table, n, StepChunks(store, plan), store.read_ids,
                           ids_attrs, publish, NetCDFFiles(masks_layout=layout))
        if "tables" in plan.products:
            parts = [store.get_table("publish", s, "stats") for s in range(len(plan.timestamps))]
            stats = {k: np.concatenate([t[k] for t in parts]) for k in parts[0]}
            store.put_table("tables", 0, "steps", stats)  # kept: a sync adds its steps' rows
            write_tables(plan, table, stats, store.reduce_table("events"), publish)
        if "geojson" in plan.products and parquet_available():
            steps = [(s, store.get_table("publish", s, "polygons")) for s in range(len(plan.timestamps))]
            publish(f"{job_id}-polygons.parquet", "polygons", lambda p: write_polygons(p, plan, steps))
        if "animation" in plan.products:
            frames = [store.get_table("publish", s, "frame")["png"].tobytes() for s in range(len(plan.timestamps))]
            publish(f"{job_id}-animation.gif", "animation",
                    lambda p: NetCDFFiles().animation(p, f"{job_id}-animation.gif", frames))
        if "report" in plan.products:  # last: it links to every other file
            write_report(plan, json.loads(ctx.db.get_job(ctx.job_id)["spec"]), table, n, store.read_ids,
                         promised_outputs(plan, job_id), job_log(ctx.db, ctx.job_id), publish)
    if not store.has_table("sync", 0, "last"):  # publish writes it; not a job published by an earlier version
        store.put_table("sync", 0, "last", last_step_records(store, plan))  # what a later sync starts from
    verify_outputs(ctx.db, ctx.outputs, job_id, promised_outputs(plan, job_id))
