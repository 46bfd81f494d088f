"""Finalize: the whole-job products (masks file, TOC, hierarchy, tracks, CF ids)."""

from __future__ import annotations

import csv
import tempfile

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.fortracc import MERGE, SPLIT, TAGS
from tos2ca_batch.outputs import masks as mk
from tos2ca_batch.outputs.cf import write_ids_netcdf
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stages.common import ids_attributes, masks_attributes, period_files, verify_outputs


def promised_outputs(plan: PhDefPlan, job_id: int) -> list[str]:
    """The file names a PhDef plan promises (by its products and time steps)."""
    products, names = plan.products, []
    fixed = {"masks": ["ForTraCC-Mask-Output.nc4"], "toc": ["ForTraCC-TOC.json"],
             "hierarchy": ["ForTraCC-Mask-Output-Hierarchy.json"], "tracks": ["anomalies.csv", "tracks.png"],
             "ids": ["anomaly-ids.nc4"]}
    if plan.periods:  # masks and ids per period instead of one file each, and their list
        fixed = {k: v for k, v in fixed.items() if k not in ("masks", "ids")}
        names.append(f"{job_id}-ForTraCC-Products.json")
        for _, _, label in plan.periods:
            names += [period_files(job_id, label)[k] for k in ("masks", "ids") if k in products]
    for product, files in fixed.items():
        names += [f"{job_id}-{f}" for f in files] if product in products else []
    for product, ext in (("geojson", "json"), ("plots", "png")):
        names += [f"{job_id}-{ts}.{ext}" for ts in plan.timestamps] if product in products else []
    return names


def _when(ts: str) -> str:
    return f"{ts[:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:]}"


def products_catalog(plan: PhDefPlan, job_id: int) -> dict:
    """What ``J-ForTraCC-Products.json`` lists: each period's steps and files."""
    return {"job_id": job_id, "period": "month" if len(plan.periods[0][2]) == 6 else "day",
            "start_date": plan.timestamps[0], "end_date": plan.timestamps[-1],
            "periods": [{"period": label, "start_date": plan.timestamps[a], "end_date": plan.timestamps[b - 1],
                         "steps": b - a, **{k: v for k, v in period_files(job_id, label).items()
                                            if k in plan.products}}
                        for a, b, label in plan.periods]}


def anomaly_rows(plan: PhDefPlan, table: dict, n: int) -> tuple[list[dict], dict]:
    """One summary row per anomaly and its centroid path (unwrapped lon, lat)."""
    rows, paths = [], {}
    order = np.lexsort((table["step"], table["anomaly_id"]))
    aid = table["anomaly_id"][order]
    for a in range(1, n + 1):
        idx = order[aid == a]
        steps = table["step"][idx]
        clat, clon = plan.centroids(table, idx)
        paths[a] = list(zip(clon.tolist(), clat.tolist()))
        tags = [TAGS[int(t)] for t in table["tag"][idx]]
        rows.append({
            "anomaly_id": a, "start_date": plan.timestamps[int(steps[0])],
            "end_date": plan.timestamps[int(steps[-1])], "n_steps": int(steps.size),
            "max_area_pixels": int(table["area"][idx].max()), "merges": tags.count(MERGE),
            "splits": tags.count(SPLIT), "first_tag": tags[0], "last_tag": tags[-1],
            "centroid_path": ";".join(
                f"{plan.timestamps[int(s)]}:{la:.4f}:{(lo + 180) % 360 - 180:.4f}"
                for s, la, lo in zip(steps, clat, clon)
            ),
        })
    return rows, paths


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store, job_id = ctx.plan, ctx.store, ctx.job_id
    products, ts = plan.products, plan.timestamps
    table = store.get_table("reduce", 0, "components")
    n = store.get_json("anomalies")["n_anomalies"]
    outputs, db = ctx.outputs, ctx.db
    lat, lon = plan.grid.lat, plan.grid.lon

    def step_chunks(s):  # each step's masks chunks, compressed by publish
        return store.get_table("publish", s, "masks")

    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        def publish(name: str, kind: str, write) -> None:
            path = f"{tmp}/{name}"
            write(path)
            db.add_output(job_id, outputs.put(path, name), kind, ts[0])

        if plan.periods:
            publish(f"{job_id}-ForTraCC-Products.json", "products", lambda p: mk.dump_json(p, products_catalog(
                plan, job_id)))
        elif "masks" in products:
            publish(f"{job_id}-ForTraCC-Mask-Output.nc4", "masks", lambda p: mk.write_masks(
                p, masks_attributes(plan, job_id), lat, lon, ts, n, step_chunks))
        if "toc" in products:
            publish(f"{job_id}-ForTraCC-TOC.json", "toc",
                    lambda p: mk.dump_json(p, mk.toc(table["anomaly_id"], table["step"], ts, n)))
        if "hierarchy" in products:
            publish(f"{job_id}-ForTraCC-Mask-Output-Hierarchy.json", "hierarchy",
                    lambda p: mk.dump_json(p, mk.hierarchy(ts)))
        if "tracks" in products:
            rows, paths = anomaly_rows(plan, table, n)

            def write_csv(p):
                with open(p, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["anomaly_id"])
                    w.writeheader()
                    w.writerows(rows)

            publish(f"{job_id}-anomalies.csv", "anomalies", write_csv)
            from tos2ca_batch.outputs.plots import tracks_png

            lat_e, lon_e, _ = plan.grid.edges()
            spans = {r["anomaly_id"]: f"{_when(r['start_date'])} to {_when(r['end_date'])}" for r in rows}
            publish(f"{job_id}-tracks.png", "tracks", lambda p: tracks_png(
                p, paths, (lon_e[0], lat_e[0], lon_e[-1], lat_e[-1]),
                f"{n} anomalies of {plan.dataset} {plan.variable} {plan.operator} {plan.threshold}", spans))
        ids_attrs = ids_attributes(plan, job_id)
        store.set_ids_attributes(ids_attrs)
        if "ids" in products and not plan.periods:
            publish(f"{job_id}-anomaly-ids.nc4", "ids", lambda p: write_ids_netcdf(
                p, lat, lon, plan.times(), plan.entry.time_step, store.read_ids,
                ids_attrs))
    verify_outputs(db, outputs, job_id, promised_outputs(plan, job_id))
