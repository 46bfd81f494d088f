"""Publish (per block of whole time steps): GeoJSON and PNG of every step."""

from __future__ import annotations

import tempfile

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.outputs.masks import MASKS_CHUNKS, block_chunks, step_chunks
from tos2ca_batch.readers import StepReader
from tos2ca_batch.stages.common import last_step_records
from tos2ca_batch.stages.products import (
    MASKS_LAYOUT,
    block_tables,
    masks_layout,
    parquet_available,
    polygon_table,
    step_features,
    step_stats,
    write_features,
    writes_masks_file,
)
from tos2ca_batch.timeutil import from_ts


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store, job_id = ctx.plan, ctx.store, ctx.plan.output_job
    products = plan.products
    t0, t1 = plan.stage_layout("publish").chunk(chunk)[:2]
    if t1 == len(plan.timestamps) and not plan.sync_of:  # what a later sync starts from, here, not at
        store.put_table("sync", 0, "last", last_step_records(store, plan))  # finalize (serial work)
    if not {"masks", "geojson", "plots", "tables", "animation"} & set(products):
        return
    whole = chunk == 0 and writes_masks_file(plan)  # the masks file's layout counts every step's pixels
    table = store.reduce_table("components", None if whole else (t0, t1))
    outputs, db = ctx.outputs, ctx.db
    lat_e, lon_e, _ = plan.grid.edges()
    reader = StepReader(plan.entry, plan.variable, plan.grid.source)
    scale = tuple(plan.plot_range) if plan.plot_range else None
    masks = []  # each step's chunks, compressed here, in parallel; finalize writes the file
    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp, reader as rd:
        if whole:  # while the other tasks publish their steps
            n_anomalies = store.get_json("anomalies")["n_anomalies"]
            store.put_table(*MASKS_LAYOUT, masks_layout(plan, table, n_anomalies, tmp))
        for s, pixels in zip(range(t0, t1), block_tables(store, plan, chunk)):
            ts = plan.timestamps[s]
            if "masks" in products:
                masks.append(step_chunks(pixels["rows"], pixels["cols"], pixels["ids"], pixels["values"]))
            stats = step_stats(plan, s, pixels) if {"tables", "geojson", "plots"} & set(products) else None
            if "tables" in products:  # each anomaly's statistics at this step (finalize makes the tables)
                store.put_table("publish", s, "stats", stats)
            if not {"geojson", "plots", "animation"} & set(products) or (plan.sync_of and s == 0):
                continue  # a sync's step 0 is the job's: its commit rewrites its GeoJSON (tags may change)
            features, shapes = step_features(plan, table, s, pixels, stats)
            if "geojson" in products:
                path = f"{tmp}/{job_id}-{ts}.json"
                write_features(path, features)
                db.add_output(ctx.job_id, outputs.put(path, f"{job_id}-{ts}.json", move=True), "geojson", ts)
                if parquet_available():  # finalize joins the steps into J-polygons.parquet
                    store.put_table("publish", s, "polygons", polygon_table(features))
            if not {"plots", "animation"} & set(products):
                continue
            from tos2ca_batch.outputs.plots import step_frame, step_png

            field = rd.read(from_ts(ts), plan.grid.src_rows, plan.grid.src_cols)
            title = (f"{plan.dataset} {plan.variable} {plan.operator} {plan.threshold} "
                     f"{plan.units}  {ts[:8]} {ts[8:]} UTC  ({len(shapes)} anomalies)")
            if "plots" in products:
                path = f"{tmp}/{job_id}-{ts}.png"
                step_png(path, field, lat_e, lon_e, shapes, title, plan.units, scale)
                db.add_output(ctx.job_id, outputs.put(path, f"{job_id}-{ts}.png", move=True), "plot", ts)
            if "animation" in products:  # its frame, kept for finalize (or a sync's commit) to join
                when = f"{ts[:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:]} UTC"
                png = step_frame(field, lat_e, lon_e, shapes, f"{plan.variable} {plan.operator} {plan.threshold}  "
                                 f"{when}  ({len(shapes)} anomalies)", plan.units, scale, tmp)
                store.put_table("publish", s, "frame", {"png": np.frombuffer(png, np.uint8)})
    if masks:  # one table for the block (a chunk-store object a block, not a step)
        store.put_table("publish", chunk, "masks", block_chunks(masks), compressed=MASKS_CHUNKS)
