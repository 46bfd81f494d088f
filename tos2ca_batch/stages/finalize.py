"""Finalize: the whole-job products (masks file, TOC, hierarchy, tracks, CF ids)."""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime

import numpy as np

from kernels.binarize import EVENT_TYPES
from kernels.fortracc import MERGE, SPLIT, TAGS
from tos2ca_batch import __version__
from tos2ca_batch.config import Config
from tos2ca_batch.outputs import masks as mk
from tos2ca_batch.outputs.cf import write_ids_netcdf
from tos2ca_batch.stages.common import JobPlan, verify_outputs
from tos2ca_batch.stages.publish import grid_edges


def masks_attributes(plan: JobPlan, job_id: int) -> dict:
    m = plan.meta
    x0, y0, x1, y1 = m["bbox"]
    trk = m["tracking"]
    return {
        "event_type": EVENT_TYPES[m["operator"]],
        "latitude_bounds": np.array([y0, y1], np.float64),
        "longitude_bounds": np.array([x0, x1], np.float64),
        "start_date": plan.timestamps[0], "end_date": plan.timestamps[-1],
        "dataset": m["dataset"], "variable": m["variable"], "threshold": float(m["value"]),
        "job_id": np.int32(job_id), "connectivity": np.int32(trk["connectivity"]),
        "min_size": np.int32(trk["min_size"]), "min_overlap": float(trk["min_overlap"]),
        "overlap_fraction": trk.get("overlap_fraction", "exact"), "format": "netCDF-4",
        "production_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software_version": __version__, "units": m["units"], "long_name": m["long_name"],
    }


def ids_attributes(plan: JobPlan, job_id: int) -> dict:
    """Global attributes of the ids dataset (netCDF and Zarr alike), JSON-typed."""
    m = plan.meta
    trk = m["tracking"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = f"{m['dataset']} {m['variable']} {m['operator']} {m['value']} {m['units']}".strip()
    return {
        "title": f"ForTraCC anomaly ids of job {job_id}", "Conventions": "CF-1.8",
        "source": f"tos2ca-batch {__version__}: {m['dataset']} ({m['entry'].get('fullName', m['dataset'])})",
        "history": f"{now} tos2ca-batch {__version__} PhDef job {job_id}: {what}, ForTraCC tracking",
        "date_created": now, "job_id": int(job_id), "dataset": m["dataset"], "variable": m["variable"],
        "source_variable": m["variable"], "source_units": m["units"],
        "event_type": EVENT_TYPES[m["operator"]], "operator": m["operator"], "threshold": float(m["value"]),
        "connectivity": int(trk["connectivity"]), "min_size": int(trk["min_size"]),
        "min_overlap": float(trk["min_overlap"]), "overlap_fraction": trk.get("overlap_fraction", "exact"),
        "time_coverage_start": plan.times()[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "time_coverage_end": plan.times()[-1].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software_version": __version__, "job_uid": m.get("job_uid", ""),
    }


def promised_outputs(plan: JobPlan, job_id: int) -> list[str]:
    """The file names a PhDef plan promises (by its products and time steps)."""
    products, names = plan.meta["products"], []
    fixed = {"masks": ["ForTraCC-Mask-Output.nc4"], "toc": ["ForTraCC-TOC.json"],
             "hierarchy": ["ForTraCC-Mask-Output-Hierarchy.json"], "tracks": ["anomalies.csv", "tracks.png"],
             "ids": ["anomaly-ids.nc4"]}
    for product, files in fixed.items():
        names += [f"{job_id}-{f}" for f in files] if product in products else []
    for product, ext in (("geojson", "json"), ("plots", "png")):
        names += [f"{job_id}-{ts}.{ext}" for ts in plan.timestamps] if product in products else []
    return names


def anomaly_rows(plan: JobPlan, table: dict, n: int) -> tuple[list[dict], dict]:
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


def run(cfg: Config, job_id: int, chunk: int = 0) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    products, ts = plan.meta["products"], plan.timestamps
    table = store.get_table("reduce", 0, "components")
    n = store.get_json("anomalies")["n_anomalies"]
    outputs, db = cfg.outputs(job_id), cfg.db()

    def read_ids(s):
        return store.read_step("anomaly_id", s, plan.layout)

    def read_pixels(s):
        t = store.get_table("publish", s, "pixels")
        return t["rows"], t["cols"], t["ids"], t["values"]

    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        def publish(name: str, kind: str, write) -> None:
            path = f"{tmp}/{name}"
            write(path)
            db.add_output(job_id, outputs.put(path, name), kind, ts[0])

        if "masks" in products:
            publish(f"{job_id}-ForTraCC-Mask-Output.nc4", "masks", lambda p: mk.write_masks(
                p, masks_attributes(plan, job_id), plan.lat, plan.lon, ts, n, read_pixels))
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

            lat_e, lon_e, _ = grid_edges(plan)
            m = plan.meta
            publish(f"{job_id}-tracks.png", "tracks", lambda p: tracks_png(
                p, paths, (lon_e[0], lat_e[0], lon_e[-1], lat_e[-1]),
                f"{n} anomalies of {m['dataset']} {m['variable']} {m['operator']} {m['value']}"))
        ids_attrs = ids_attributes(plan, job_id)
        store.set_ids_attributes(ids_attrs)
        if "ids" in products:
            publish(f"{job_id}-anomaly-ids.nc4", "ids", lambda p: write_ids_netcdf(
                p, plan.lat, plan.lon, plan.times(), plan.meta["entry"]["timeStep"], read_ids, ids_attrs))
    verify_outputs(db, outputs, job_id, promised_outputs(plan, job_id))
