"""Curation products: curated and interpolated netCDF-4 files, their hierarchies, a stats CSV."""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import UTC, datetime, timedelta

import netCDF4
import numpy as np

from tos2ca_batch.catalog import file_for
from tos2ca_batch.context import TaskContext
from tos2ca_batch.plans import CurationPlan
from tos2ca_batch.stages.common import CURATION_FILL as FILL
from tos2ca_batch.stages.common import CURATION_STATISTICS as STAT_NAMES
from tos2ca_batch.stages.common import verify_outputs
from tos2ca_batch.stages.products import publisher
from tos2ca_batch.timeutil import from_ts

PROJECT = "Thematic Observation Search, Segmentation, Collation and Analysis (TOS2CA)"
CURATED_DESCRIPTION = "Each row is (lat,lon,{v}); the lat and lon represent the centroid point of the grid cell"
INTERPOLATED_DESCRIPTION = "Each row is (lat,lon,{v}); the lat and lon represent the coordinates of the anomaly"
TIME_INDEXING = "index 0 = t-1; index 1 = t; index 2 = t+1"


def _root(ds, plan: CurationPlan, job_id: int, kind: str, institution: str) -> None:
    """TOS2CA's root attributes, and ``/navigation`` with the mask grid (cell centres)."""
    ds.setncatts({
        "Variable": plan.variable, "Dataset": plan.dataset, "Units": plan.units, "LongName": plan.long_name,
        "PhDefJobID": np.int32(plan.phdef_job), "CurationJobID": np.int32(job_id),
        "ProductionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "FileFormat": "netCDF-4",
        "Project": PROJECT, "Institution": institution, "ProductInfo": plan.product_info,
        "FullName": plan.full_name, "Content": kind,
        "MissingTimes": ",".join(plan.missing_times) or "none",
        "TimeMatching": f"nearest {plan.dataset} step within {plan.time_step_minutes} minutes; ties take the "
                        "earlier step",
    })
    nav = ds.createGroup("navigation")
    nav.Description = ("The lat and lon of the grid the masks were made on; they represent the centroid of "
                       "the grid cell.")
    lat, lon = plan.grid.lat, plan.grid.lon
    nav.createDimension("lat", lat.size)
    nav.createDimension("lon", lon.size)
    for name, values, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
        v = nav.createVariable(name, "f4", (name,), zlib=True)
        v[:] = values
        v.units = units
        v.standard_name = {"lat": "latitude", "lon": "longitude"}[name]


def _variable_attributes(v, plan: CurationPlan, description: str) -> None:
    v.Description = description.format(v=plan.variable)
    v.LongName = plan.long_name
    v.Units = plan.units
    v.FillValue = f"{FILL}"


def _matched_steps(plan: CurationPlan):
    """``(step, mask timestamp, curation timestamp)`` of every mask step with curation data."""
    return ((s, ts, plan.matches[s]) for s, ts in enumerate(plan.timestamps) if plan.matches[s] is not None)


def _three_times(plan: CurationPlan, s: int) -> list[datetime]:
    t = from_ts(plan.matches[s])
    step = timedelta(minutes=plan.time_step_minutes)
    return [t - step, t, t + step]


def write_curated(path: str, plan: CurationPlan, job_id: int, results: dict, masks_file: str, institution: str) -> dict:
    """``J-Curated-Data.nc4``: a group ``<curation time YYYYMMDDhhmmss>-<n>`` per matched mask time,
    a subgroup per anomaly with ``VAR(time_step=3, observation, data_point=3)``: the footprint
    cells' ``(lat, lon, value)`` at t-1, t and t+1. Returns the hierarchy."""
    var = plan.variable
    hierarchy: dict = {}
    seen: dict[str, int] = {}
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _root(ds, plan, job_id, "curated", institution)
        for s, ts, match in _matched_steps(plan):
            three = _three_times(plan, s)
            seen[match] = n = seen.get(match, 0) + 1
            name = f"{three[1]:%Y%m%d%H%M%S}-{n}"
            g = ds.createGroup(name)
            g.MaskTime = ts
            g.MaskFileName = f"Anomaly masks from {masks_file}"
            present = [x for x in (plan.neighbours[s][0], match, plan.neighbours[s][1]) if x]
            g.InputFiles = ",".join(file_for(plan.entry, from_ts(x)) for x in present)
            hierarchy[name] = {}
            res = results[s]
            for k, a in enumerate(res["aid"]):
                rows = res["foot"][res["foot_off"][k]: res["foot_off"][k + 1]]
                cube = np.empty((3, rows.shape[0], 3), np.float64)
                cube[:, :, 0], cube[:, :, 1] = rows[:, 0], rows[:, 1]
                cube[:, :, 2] = rows[:, 2:5].T
                sub = g.createGroup(str(int(a)))
                sub.createDimension("time_step", 3)
                sub.createDimension("observation", rows.shape[0])
                sub.createDimension("data_point", 3)
                v = sub.createVariable(var, "f4", ("time_step", "observation", "data_point"), zlib=True,
                                       fill_value=np.float32(FILL))
                v[:] = np.where(np.isnan(cube), FILL, cube).astype(np.float32)
                _variable_attributes(v, plan, CURATED_DESCRIPTION)
                v.Times = ",".join(f"{t:%Y%m%d%H%M%S}" for t in three)
                v.TimeIndexing = TIME_INDEXING
                hierarchy[name][str(int(a))] = [var]
    hierarchy["navigation"] = ["lat", "lon"]
    return hierarchy


def write_interpolated(path: str, plan: CurationPlan, job_id: int, results: dict, institution: str) -> dict:
    """``J-Interpolated-Data.nc4``: a group per matched mask time ``YYYYMMDDhhmm``, a subgroup per
    anomaly with float64 ``VAR(observation, data_point=3)``: ``(lat, lon, value)`` of every mask
    pixel, and the statistics as numeric attributes. Returns the hierarchy."""
    var = plan.variable
    hierarchy: dict = {}
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _root(ds, plan, job_id, "interpolated", institution)
        for s, ts, match in _matched_steps(plan):
            g = ds.createGroup(ts)
            g.CurationTime = match
            g.TimeOffsetMinutes = np.int32(round((from_ts(match) - from_ts(ts)).total_seconds() / 60))
            hierarchy[ts] = {}
            res = results[s]
            for k, a in enumerate(res["aid"]):
                rows = res["interp"][res["int_off"][k]: res["int_off"][k + 1]]
                sub = g.createGroup(str(int(a)))
                sub.createDimension("observation", rows.shape[0])
                sub.createDimension("data_point", 3)
                v = sub.createVariable(var, "f8", ("observation", "data_point"), zlib=True, fill_value=FILL)
                v[:] = np.where(np.isnan(rows), FILL, rows)
                _variable_attributes(v, plan, INTERPOLATED_DESCRIPTION)
                v.Time = ts
                for stat, x in zip(STAT_NAMES, res["stats"][k]):
                    v.setncattr(stat, np.int64(x) if stat in ("count", "valid_count") else np.float64(x))
                hierarchy[ts][str(int(a))] = [var]
    hierarchy["navigation"] = ["lat", "lon"]
    return hierarchy


def promised_outputs(plan: CurationPlan, job_id: int, results: dict) -> list[str]:
    """The file names a curation job promises (by its products, and its anomalies for the plots)."""
    products, names = plan.products, []
    fixed = {"curated": ["Curated-Data.nc4"], "interpolated": ["Interpolated-Data.nc4"],
             "hierarchy": ["Curation-Hierarchy.json", "Interpolation-Hierarchy.json"], "stats": ["curation-stats.csv"]}
    for product, files in fixed.items():
        names += [f"{job_id}-{f}" for f in files] if product in products else []
    if "anomaly-plots" in products:
        names += [f"{job_id}-{ts}-anomaly-{int(a)}.png" for s, ts in enumerate(plan.timestamps)
                  if plan.matches[s] for a in results[s]["aid"]]
    return names


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store, job_id, cfg = ctx.plan, ctx.store, ctx.job_id, ctx.cfg
    results = {s: store.get_table("curate", s, "result") for s in range(len(plan.timestamps))}
    outputs, db = ctx.outputs, ctx.db
    ts0 = plan.timestamps[0]
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        publish = publisher(ctx, tmp, job_id, ts0)

        products = plan.products
        masks = [o["location"] for o in db.outputs(plan.phdef_job) if o["type"] == "masks"]
        writers = {
            "curated": lambda p: write_curated(p, plan, job_id, results, masks[0] if masks else "(not written)",
                                               cfg.institution),
            "interpolated": lambda p: write_interpolated(p, plan, job_id, results, cfg.institution),
        }
        hier = {}
        for kind, stem in (("curated", "Curated-Data"), ("interpolated", "Interpolated-Data")):
            if kind not in products and "hierarchy" not in products:
                continue

            def write(p, k=kind):
                hier[k] = writers[k](p)

            if kind in products:
                publish(f"{job_id}-{stem}.nc4", kind, write)
            else:
                write(f"{tmp}/unused.nc4")
        if "hierarchy" in products:
            publish(f"{job_id}-Curation-Hierarchy.json", "hierarchy",
                    lambda p: open(p, "w").write(json.dumps(hier["curated"], indent=1)))
            publish(f"{job_id}-Interpolation-Hierarchy.json", "hierarchy",
                    lambda p: open(p, "w").write(json.dumps(hier["interpolated"], indent=1)))
        if "anomaly-plots" in products:
            from tos2ca_batch.outputs.plots import anomaly_png

            for s, ts in enumerate(plan.timestamps):
                res = results[s]
                for k, a in enumerate(res["aid"] if plan.matches[s] else []):
                    rows = res["interp"][res["int_off"][k]: res["int_off"][k + 1]]
                    title = (f"anomaly {int(a)}  {ts}  {plan.dataset} {plan.variable} "
                             f"at {plan.matches[s]}")
                    publish(f"{job_id}-{ts}-anomaly-{int(a)}.png", "anomaly-plot",
                            lambda p, r=rows, t=title: anomaly_png(p, r, t, plan.units))

        def write_csv(p):
            with open(p, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["anomaly_id", "timestamp", "curation_time", "offset_minutes",
                            *[n.lower() for n in STAT_NAMES]])
                for s, ts in enumerate(plan.timestamps):
                    res = results[s]
                    cur = plan.matches[s]
                    if cur is None or res["aid"].size == 0:
                        continue
                    off = round((from_ts(cur) - from_ts(ts)).total_seconds() / 60)
                    for k, a in enumerate(res["aid"]):
                        st = res["stats"][k]
                        w.writerow([int(a), ts, cur, off, int(st[0]), int(st[1]), *[repr(float(x)) for x in st[2:]]])
        if "stats" in products:
            publish(f"{job_id}-curation-stats.csv", "stats", write_csv)
    verify_outputs(db, outputs, job_id, promised_outputs(plan, job_id, results))
    missing = plan.missing_times
    io = [store.get_table("curate", c, "io") for c in range(plan.layout.n_chunks)]
    read = sum(int(t["bytes_read"][0]) for t in io)
    whole = sum(int(t["field_bytes"][0]) for t in io)
    store.put_json("summary", {"missing_times": missing, "bytes_read": read, "field_bytes": whole})
