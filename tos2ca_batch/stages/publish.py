"""Publish (per block of whole time steps): GeoJSON and PNG of every step."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import shapely

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.fortracc import TAGS
from tos2ca_batch.outputs.geometry import pixel_area_km2, pixel_geometry, rfc7946, split_antimeridian
from tos2ca_batch.outputs.masks import per_anomaly_stats, step_chunks
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.readers import StepReader
from tos2ca_batch.stages.common import chunk_step_ids
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.timeutil import from_ts


def step_features(plan: PhDefPlan, table: dict, s: int, pixels: dict[str, np.ndarray]):
    """One GeoJSON Feature (and its plotting geometry) per anomaly present at step ``s``."""
    lat_e, lon_e, _ = plan.grid.edges()
    rows, cols, aid = pixels["rows"], pixels["cols"], pixels["ids"]
    stats = per_anomaly_stats(aid, pixels["values"])
    at_step = np.flatnonzero(table["step"] == s)
    ts = plan.timestamps[s]
    features, shapes = [], []
    for a, st in stats.items():
        sel = aid == a
        geom = pixel_geometry(rows[sel], cols[sel], lat_e, lon_e)
        k = at_step[table["anomaly_id"][at_step] == a][0]
        clat, clon = plan.centroids(table, k)
        centroid = (float(clon), float(clat))
        props = {
            "anomaly": a, "dateTime": ts, "tag": TAGS[int(table["tag"][k])], "area_pixels": st["count"],
            "area_km2": round(pixel_area_km2(rows[sel], cols[sel], lat_e, lon_e), 3),
            "centroid_lat": centroid[1], "centroid_lon": (centroid[0] + 180.0) % 360.0 - 180.0,
            "min": st["min"], "max": st["max"], "mean": st["mean"], "std": st["std"],
            "units": plan.units,
        }
        features.append({"type": "Feature", "properties": props,
                         "geometry": shapely.geometry.mapping(rfc7946(split_antimeridian(geom)))})
        shapes.append({"id": a, "geometry": geom, "centroid": centroid})
    return features, shapes


def colour_scale(plan: PhDefPlan, table: dict, reader: StepReader) -> tuple[float, float]:
    """One colour range for every step's plot: the job's first step's values and every anomaly's
    (from the reduce table), the same for every publish task whatever the chunking."""
    first = reader.read(plan.times()[0], plan.grid.src_rows, plan.grid.src_cols)
    finite = first[np.isfinite(first)]
    lo = [float(finite.min())] if finite.size else []
    hi = [float(finite.max())] if finite.size else []
    if table["value_min"].size:
        lo.append(float(table["value_min"].min()))
        hi.append(float(table["value_max"].max()))
    if not lo:
        return 0.0, 1.0
    return min(lo), max(max(hi), min(lo) + 1e-6)


def block_tables(store: ChunkStore, plan: PhDefPlan, block: int) -> list[dict[str, np.ndarray]]:
    """Each step of a time block: its anomaly pixels in masks-file order (by id, then row-major)
    with their values, from every tile's pixel records (no dense array is read)."""
    lay = plan.layout
    per_tile = []
    for tile, (r0, _, c0, c1) in enumerate(lay.tiles()):
        per_tile.append(((r0, c1 - c0, c0), chunk_step_ids(store, plan, block * lay.n_tiles + tile)))
    out = []
    for k in range(len(per_tile[0][1])):
        rows, cols, ids, values = [], [], [], []
        for (r0, tile_w, c0), steps in per_tile:
            index, aid, value = steps[k]
            kept = aid > 0
            rows.append(index[kept] // tile_w + r0)
            cols.append(index[kept] % tile_w + c0)
            ids.append(aid[kept])
            values.append(value[kept])
        rows, cols, ids, values = (np.concatenate(x) for x in (rows, cols, ids, values))
        order = np.lexsort((rows.astype(np.int64) * lay.width + cols, ids))
        out.append({"rows": rows[order].astype(np.int32), "cols": cols[order].astype(np.int32),
                    "ids": ids[order].astype(np.int32), "values": values[order].astype(np.float32)})
    return out


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store, job_id = ctx.plan, ctx.store, ctx.job_id
    products = plan.products
    t0, t1 = plan.stage_layout("publish").chunk(chunk)[:2]
    if not {"masks", "geojson", "plots"} & set(products):
        return
    table = store.get_table("reduce", 0, "components")
    outputs, db = ctx.outputs, ctx.db
    lat_e, lon_e, _ = plan.grid.edges()
    reader = StepReader(plan.entry, plan.variable, plan.grid.source)
    scale = None
    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp, reader as rd:
        for s, pixels in zip(range(t0, t1), block_tables(store, plan, chunk)):
            ts = plan.timestamps[s]
            if "masks" in products:  # compressed here, in parallel; finalize writes the file
                store.put_table("publish", s, "masks", step_chunks(
                    pixels["rows"], pixels["cols"], pixels["ids"], pixels["values"]))
            if "geojson" not in products and "plots" not in products:
                continue
            features, shapes = step_features(plan, table, s, pixels)
            if "geojson" in products:
                path = f"{tmp}/{job_id}-{ts}.json"
                with open(path, "w") as f:
                    json.dump({"type": "FeatureCollection", "features": features}, f)
                db.add_output(job_id, outputs.put(path, f"{job_id}-{ts}.json"), "geojson", ts)
            if "plots" in products:
                from tos2ca_batch.outputs.plots import step_png

                field = rd.read(from_ts(ts), plan.grid.src_rows, plan.grid.src_cols)
                path = f"{tmp}/{job_id}-{ts}.png"
                title = (f"{plan.dataset} {plan.variable} {plan.operator} {plan.threshold} "
                         f"{plan.units}  {ts[:8]} {ts[8:]} UTC  ({len(shapes)} anomalies)")
                if scale is None:
                    scale = colour_scale(plan, table, rd)
                step_png(path, field, lat_e, lon_e, shapes, title, plan.units, scale)
                db.add_output(job_id, outputs.put(path, f"{job_id}-{ts}.png"), "plot", ts)
