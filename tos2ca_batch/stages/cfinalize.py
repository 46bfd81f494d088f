"""Curation products: curated and interpolated netCDF-4 files, their hierarchies, a stats CSV."""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import UTC, datetime

import netCDF4
import numpy as np

from tos2ca_batch.config import Config
from tos2ca_batch.stages.common import JobPlan
from tos2ca_batch.stages.curate import FILL, STAT_NAMES
from tos2ca_batch.timeutil import from_ts


def _root(ds, plan: JobPlan, job_id: int, kind: str) -> None:
    m = plan.meta
    ds.setncatts({
        "Variable": m["variable"], "Dataset": m["dataset"], "Units": m["units"], "LongName": m["long_name"],
        "PhDefJobID": np.int32(m["phdef_job"]), "CurationJobID": np.int32(job_id),
        "ProductionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "FileFormat": "netCDF-4",
        "Content": kind, "MissingTimes": ",".join(m["missing_times"]) or "none",
        "TimeMatching": f"nearest {m['dataset']} step within {m['time_step_minutes']} minutes; ties take the "
                        "earlier step",
    })
    nav = ds.createGroup("navigation")
    nav.createDimension("lat", plan.lat.size)
    nav.createDimension("lon", plan.lon.size)
    nav.createVariable("lat", "f4", ("lat",))[:] = plan.lat
    nav.createVariable("lon", "f4", ("lon",))[:] = plan.lon


def _write(path: str, plan: JobPlan, job_id: int, results: dict, kind: str) -> dict:
    """One group per matched mask time, one subgroup per anomaly with ``values(observation, 3)``."""
    hierarchy: dict = {}
    m = plan.meta
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _root(ds, plan, job_id, kind)
        for s, ts in enumerate(plan.timestamps):
            res = results[s]
            if m["matches"][s] is None or res["aid"].size == 0:
                continue
            g = ds.createGroup(ts)
            g.CurationTime = m["matches"][s]
            g.TimeOffsetMinutes = np.int32(round((from_ts(m["matches"][s]) - from_ts(ts)).total_seconds() / 60))
            hierarchy[ts] = {}
            key, off = ("foot", "foot_off") if kind == "curated" else ("interp", "int_off")
            for k, a in enumerate(res["aid"]):
                rows = res[key][res[off][k]: res[off][k + 1]]
                sub = g.createGroup(str(int(a)))
                sub.createDimension("observation", rows.shape[0])
                sub.createDimension("ncol", 3)
                v = sub.createVariable("values", "f4", ("observation", "ncol"), zlib=True, fill_value=np.float32(FILL))
                v.columns = "lat, lon, value"
                v.units = m["units"]
                v[:] = np.where(np.isnan(rows), FILL, rows).astype(np.float32)
                sub.LongName = m["long_name"]
                sub.Units = m["units"]
                if kind == "interpolated":
                    for name, x in zip(STAT_NAMES, res["stats"][k]):
                        sub.setncattr(name, np.int64(x) if name in ("count", "valid_count") else np.float64(x))
                hierarchy[ts][str(int(a))] = ["values"]
    hierarchy["navigation"] = ["lat", "lon"]
    return hierarchy


def run(cfg: Config, job_id: int, chunk: int = 0) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    results = {s: store.get_table("curate", s, "result") for s in range(len(plan.timestamps))}
    outputs, db = cfg.outputs(job_id), cfg.db()
    ts0 = plan.timestamps[0]
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        def publish(name, kind, write):
            path = f"{tmp}/{name}"
            write(path)
            db.add_output(job_id, outputs.put(path, name), kind, ts0)

        products = plan.meta["products"]
        hier = {}
        for kind, stem in (("curated", "Curated-Data"), ("interpolated", "Interpolated-Data")):
            if kind not in products and "hierarchy" not in products:
                continue
            def write(p, k=kind):
                hier[k] = _write(p, plan, job_id, results, k)

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
                for k, a in enumerate(res["aid"] if plan.meta["matches"][s] else []):
                    rows = res["interp"][res["int_off"][k]: res["int_off"][k + 1]]
                    title = (f"anomaly {int(a)}  {ts}  {plan.meta['dataset']} {plan.meta['variable']} "
                             f"at {plan.meta['matches'][s]}")
                    publish(f"{job_id}-{ts}-anomaly-{int(a)}.png", "anomaly-plot",
                            lambda p, r=rows, t=title: anomaly_png(p, r, t, plan.meta["units"]))

        def write_csv(p):
            with open(p, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["anomaly_id", "timestamp", "curation_time", "offset_minutes",
                            *[n.lower() for n in STAT_NAMES]])
                for s, ts in enumerate(plan.timestamps):
                    res = results[s]
                    cur = plan.meta["matches"][s]
                    if cur is None or res["aid"].size == 0:
                        continue
                    off = round((from_ts(cur) - from_ts(ts)).total_seconds() / 60)
                    for k, a in enumerate(res["aid"]):
                        st = res["stats"][k]
                        w.writerow([int(a), ts, cur, off, int(st[0]), int(st[1]), *[repr(float(x)) for x in st[2:]]])
        if "stats" in products:
            publish(f"{job_id}-curation-stats.csv", "stats", write_csv)
    missing = plan.meta["missing_times"]
    io = [store.get_table("curate", c, "io") for c in range(plan.layout.n_chunks)]
    read = sum(int(t["bytes_read"][0]) for t in io)
    whole = sum(int(t["field_bytes"][0]) for t in io)
    store.put_json("summary", {"missing_times": missing, "bytes_read": read, "field_bytes": whole})
