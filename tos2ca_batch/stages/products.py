"""The products several stages write: one step's GeoJSON features (publish; a sync's commit
rewrites the job's last step), the whole-job products (finalize, a sync's commit) and one
period's masks and ids files (the periods stage, a sync's commit)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.fortracc import MERGE, SPLIT, TAGS
from tos2ca_batch.outputs import masks as mk
from tos2ca_batch.outputs.masks import per_anomaly_stats
from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stages.common import chunk_step_ids, ids_attributes, masks_attributes, period_files
from tos2ca_batch.stores.chunkstore import ChunkStore


def step_stats(plan: PhDefPlan, s: int, pixels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per anomaly present at step ``s`` (whole step: the same for every chunking): pixels, km2 and
    the value's min, max, mean and std, as a table (the tidy tables' rows of the step)."""
    from tos2ca_batch.outputs.geometry import pixel_area_km2  # shapely: only jobs that make these products

    lat_e, lon_e, _ = plan.grid.edges()
    rows, cols, aid = pixels["rows"], pixels["cols"], pixels["ids"]
    stats = per_anomaly_stats(aid, pixels["values"])
    ids = np.array(list(stats), np.int32)
    return {
        "step": np.full(ids.size, s, np.int64), "anomaly_id": ids,
        "area_px": np.array([st["count"] for st in stats.values()], np.int64),
        "area_km2": np.array([pixel_area_km2(rows[aid == a], cols[aid == a], lat_e, lon_e) for a in stats], np.float64),
        **{k: np.array([st[k] for st in stats.values()], np.float64) for k in ("min", "max", "mean", "std")},
    }


def step_features(plan: PhDefPlan, table: dict, s: int, pixels: dict[str, np.ndarray],
                  stats: dict[str, np.ndarray] | None = None):
    """One GeoJSON Feature (and its plotting geometry) per anomaly present at step ``s``;
    ``stats``: the step's :func:`step_stats`, if the caller has it already."""
    import shapely

    from tos2ca_batch.outputs.geometry import pixel_geometry, rfc7946, split_antimeridian

    lat_e, lon_e, _ = plan.grid.edges()
    rows, cols, aid = pixels["rows"], pixels["cols"], pixels["ids"]
    stats = step_stats(plan, s, pixels) if stats is None else stats
    at_step = np.flatnonzero(table["step"] == s)
    ts = plan.timestamps[s]
    features, shapes = [], []
    for j, a in enumerate(stats["anomaly_id"].tolist()):
        sel = aid == a
        geom = pixel_geometry(rows[sel], cols[sel], lat_e, lon_e)
        k = at_step[table["anomaly_id"][at_step] == a][0]
        clat, clon = plan.centroids(table, k)
        centroid = (float(clon), float(clat))
        props = {
            "anomaly": a, "dateTime": ts, "tag": TAGS[int(table["tag"][k])], "area_pixels": int(stats["area_px"][j]),
            "area_km2": round(float(stats["area_km2"][j]), 3),
            "centroid_lat": centroid[1], "centroid_lon": (centroid[0] + 180.0) % 360.0 - 180.0,
            **{key: float(stats[key][j]) for key in ("min", "max", "mean", "std")},
            "units": plan.units,
        }
        features.append({"type": "Feature", "properties": props,
                         "geometry": shapely.geometry.mapping(rfc7946(split_antimeridian(geom)))})
        shapes.append({"id": a, "geometry": geom, "centroid": centroid})
    return features, shapes


def write_features(path: str, features: list[dict]) -> None:
    """One step's GeoJSON file."""
    with open(path, "w") as f:
        json.dump({"type": "FeatureCollection", "features": features}, f)


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


def promised_outputs(plan: PhDefPlan, job_id: int) -> list[str]:
    """The file names a PhDef plan promises (by its products and time steps)."""
    products, names = plan.products, []
    fixed = {"masks": ["ForTraCC-Mask-Output.nc4"], "toc": ["ForTraCC-TOC.json"],
             "hierarchy": ["ForTraCC-Mask-Output-Hierarchy.json"], "tracks": ["anomalies.csv", "tracks.png"],
             "ids": ["anomaly-ids.nc4"], "report": ["report.html"], "animation": ["animation.gif"]}
    if plan.periods:  # masks and ids per period instead of one file each, and their list
        fixed = {k: v for k, v in fixed.items() if k not in ("masks", "ids")}
        names.append(f"{job_id}-ForTraCC-Products.json")
        for _, _, label in plan.periods:
            names += [period_files(job_id, label)[k] for k in ("masks", "ids") if k in products]
    for product, files in fixed.items():
        names += [f"{job_id}-{f}" for f in files] if product in products else []
    if "tables" in products:
        names += [f"{job_id}-{t}.{ext}" for t in ("steps", "tracks")
                  for ext in (("csv", "parquet") if parquet_available() else ("csv",))]
    for product, ext in (("geojson", "json"), ("plots", "png")):
        names += [f"{job_id}-{ts}.{ext}" for ts in plan.timestamps] if product in products else []
    if "geojson" in products and parquet_available():
        names.append(f"{job_id}-polygons.parquet")
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


MASKS_LAYOUT = ("publish", 0, "masks_layout")  # the chunk-store table :func:`masks_layout` makes


def writes_masks_file(plan: PhDefPlan) -> bool:
    """Whether the job's finalize writes one masks file (not per period, not a sync's commit)."""
    return "masks" in plan.products and not plan.periods and not plan.sync_of


def masks_layout(plan: PhDefPlan, table: dict, n: int, tmp: str) -> dict[str, np.ndarray]:
    """The masks file laid out (:func:`~tos2ca_batch.outputs.masks.write_layout`: groups,
    dimensions, variables, attributes; no data) as a chunk-store table: the file's bytes and each
    step's pixel count. The counts are the reduce's (areas of the components given an anomaly
    id), so publish's first task makes it while the other tasks compress the steps, and finalize
    only puts their chunks in: the layout was most of finalize's serial time (netCDF-C creating
    a group a step)."""
    kept = table["anomaly_id"] > 0
    counts = np.zeros(len(plan.timestamps), np.int64)
    np.add.at(counts, table["step"][kept].astype(np.int64), table["area"][kept].astype(np.int64))
    path = f"{tmp}/{plan.output_job}-masks-layout.nc4"
    mk.write_layout(path, masks_attributes(plan, plan.output_job), plan.grid.lat, plan.grid.lon, plan.timestamps,
                    n, counts.tolist())
    return {"file": np.fromfile(path, np.uint8), "num_pixels": counts}


class NetCDFFiles:
    """How the masks and ids files are made: whole, from every step (a job's finalize and
    periods). A sync's commit grows the job's earlier files instead (``synccommit``).

    ``masks_layout``: the masks file already laid out (:func:`masks_layout`), used when its pixel
    counts are the steps' (else, e.g. a job published by an earlier version, the file is written
    whole)."""

    def __init__(self, masks_layout: dict[str, np.ndarray] | None = None):
        self.masks_layout = masks_layout

    def masks(self, path: str, name: str, attrs: dict, lat, lon, stamps: list[str], n: int, read_step) -> None:
        layout = self.masks_layout
        if layout is not None:
            steps = [read_step(s) for s in range(len(stamps))]
            if [int(step["num_pixels"][0]) for step in steps] == layout["num_pixels"].tolist():
                layout["file"].tofile(path)
                mk.put_step_chunks(path, stamps, steps)
                return
        mk.write_masks(path, attrs, lat, lon, stamps, n, read_step)

    def ids(self, path: str, name: str, lat, lon, times, time_step, read_step, attrs: dict) -> None:
        from tos2ca_batch.outputs.cf import write_ids_netcdf

        write_ids_netcdf(path, lat, lon, times, time_step, read_step, attrs)

    def animation(self, path: str, name: str, frames: list[bytes]) -> None:
        from tos2ca_batch.outputs.plots import write_gif

        write_gif(path, frames)


def write_job_products(plan: PhDefPlan, table: dict, n: int, step_chunks, read_ids, ids_attrs: dict, publish,
                       files: NetCDFFiles) -> None:
    """The whole-job products of ``plan`` (masks and ids files unless per period, products list,
    TOC, hierarchy, tracks) from its components ``table``; ``step_chunks(s)`` gives step s's
    masks chunks, ``read_ids(s)`` its ids; ``publish(name, kind, write)`` puts a file."""
    products, ts, job_id = plan.products, plan.timestamps, plan.output_job
    lat, lon = plan.grid.lat, plan.grid.lon
    if plan.periods:
        publish(f"{job_id}-ForTraCC-Products.json", "products", lambda p: mk.dump_json(p, products_catalog(
            plan, job_id)))
    elif "masks" in products:
        masks_name = f"{job_id}-ForTraCC-Mask-Output.nc4"
        publish(masks_name, "masks", lambda p: files.masks(p, masks_name, masks_attributes(plan, job_id), lat, lon,
                                                           ts, n, step_chunks))
    if "ids" in products and not plan.periods:
        ids_name = f"{job_id}-anomaly-ids.nc4"
        publish(ids_name, "ids", lambda p: files.ids(p, ids_name, lat, lon, plan.times(), plan.entry.time_step,
                                                     read_ids, ids_attrs))
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


def publisher(ctx: TaskContext, tmp: str, job_id: int, start: str):
    """``publish(name, kind, write[, first])``: ``write`` a file in ``tmp``, put it with the
    job's outputs and record its row under ``job_id``."""
    def publish(name: str, kind: str, write, first: str | None = None) -> None:
        path = f"{tmp}/{name}"
        write(path)
        ctx.db.add_output(job_id, ctx.outputs.put(path, name, move=True), kind, first or start)
    return publish


def write_period(plan: PhDefPlan, k: int, n_anomalies: int, step_chunks, read_ids, publish, files: NetCDFFiles,
                 products: tuple[str, ...] = ("masks", "ids")) -> None:
    """Period ``k``'s files (those of ``products`` the plan makes): ``step_chunks(s)`` and
    ``read_ids(s)`` give the job's step ``s``; ``publish(name, kind, write, start)`` puts a file."""
    t0, t1, label = plan.periods[k]
    stamps, times = plan.timestamps[t0:t1], plan.times()[t0:t1]
    lat, lon = plan.grid.lat, plan.grid.lon
    names = period_files(plan.output_job, label)
    if "masks" in plan.products and "masks" in products:
        attrs = dict(masks_attributes(plan, plan.output_job), start_date=stamps[0], end_date=stamps[-1], period=label)
        publish(names["masks"], "masks", lambda p: files.masks(
            p, names["masks"], attrs, lat, lon, stamps, n_anomalies, lambda j: step_chunks(t0 + j)), stamps[0])
    if "ids" in plan.products and "ids" in products:
        attrs = dict(ids_attributes(plan, plan.output_job), period=label,
                     time_coverage_start=times[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                     time_coverage_end=times[-1].strftime("%Y-%m-%dT%H:%M:%SZ"))
        publish(names["ids"], "ids", lambda p: files.ids(
            p, names["ids"], lat, lon, times, plan.entry.time_step, lambda j: read_ids(t0 + j), attrs), stamps[0])


def _iso(ts: str) -> str:
    return f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T{ts[8:10]}:{ts[10:12]}:00Z"


def tidy_tables(plan: PhDefPlan, table: dict, stats: dict, events: dict):
    """The tidy tables (pandas): one row per anomaly per step, one row per track.

    ``table``: the components (reduce), ``stats``: :func:`step_stats` of every step, ``events``:
    the reduce's merges and splits with their partners."""
    import pandas as pd

    order = np.lexsort((table["anomaly_id"], table["step"]))
    comp = {k: v[order] for k, v in table.items()}
    s_order = np.lexsort((stats["anomaly_id"], stats["step"]))
    st = {k: v[s_order] for k, v in stats.items()}
    if not (np.array_equal(st["step"], comp["step"]) and np.array_equal(st["anomaly_id"], comp["anomaly_id"])):
        raise ValueError("the step statistics do not cover the components (tables of another version?)")
    clat, clon = plan.centroids(comp, np.arange(comp["step"].size))
    key = list(zip(comp["step"].tolist(), comp["anomaly_id"].tolist()))
    partners: dict[str, dict[tuple[int, int], list[int]]] = {k: {} for k in ("merged_from", "merged_into",
                                                                               "split_off", "split_from")}
    for s, kind, a, b in zip(events["step"].tolist(), events["kind"].tolist(), events["anomaly_id"].tolist(),
                             events["partner_id"].tolist()):
        if kind == 0:  # b merged into a at s: b's last step is s - 1
            partners["merged_from"].setdefault((s, a), []).append(b)
            partners["merged_into"].setdefault((s - 1, b), []).append(a)
        else:  # b split off a at s
            partners["split_off"].setdefault((s, a), []).append(b)
            partners["split_from"].setdefault((s, b), []).append(a)
    stamps = np.array(plan.timestamps)
    steps = pd.DataFrame({
        "time": pd.to_datetime(stamps[comp["step"]], format="%Y%m%d%H%M", utc=True),
        "anomaly_id": comp["anomaly_id"].astype(np.int64),
        "tag": [TAGS[int(t)] for t in comp["tag"]],
        "centroid_lat": np.round(clat, 4), "centroid_lon": np.round((clon + 180.0) % 360.0 - 180.0, 4),
        "area_px": st["area_px"], "area_km2": np.round(st["area_km2"], 3),
        "min": st["min"], "max": st["max"], "mean": st["mean"], "std": st["std"],
        **{name: [sorted(found.get(k, [])) for k in key] for name, found in partners.items()},
    })
    tracks = []
    for aid, g in steps.groupby("anomaly_id", sort=True):
        merged_into = sorted({b for v in g["merged_into"] for b in v})
        split_from = sorted({b for v in g["split_from"] for b in v})
        tracks.append({
            "anomaly_id": int(aid), "start": g["time"].iloc[0], "end": g["time"].iloc[-1], "steps": len(g),
            "lifetime_hours": (g["time"].iloc[-1] - g["time"].iloc[0]).total_seconds() / 3600,
            "max_area_px": int(g["area_px"].max()), "max_area_km2": float(g["area_km2"].max()),
            "merged_into": merged_into[0] if merged_into else None,
            "split_from": split_from[0] if split_from else None,
            "path": [[t.strftime("%Y-%m-%dT%H:%M:%SZ"), la, lo] for t, la, lo in
                     zip(g["time"], g["centroid_lat"], g["centroid_lon"])],
        })
    columns = ["anomaly_id", "start", "end", "steps", "lifetime_hours", "max_area_px", "max_area_km2",
               "merged_into", "split_from", "path"]
    tracks_df = pd.DataFrame(tracks, columns=columns)
    for c in ("start", "end"):  # typed even when there is no track
        tracks_df[c] = pd.to_datetime(tracks_df[c], utc=True)
    tracks_df["merged_into"] = tracks_df["merged_into"].astype("Int64")
    tracks_df["split_from"] = tracks_df["split_from"].astype("Int64")
    return steps, tracks_df


def write_tables(plan: PhDefPlan, table: dict, stats: dict, events: dict, publish) -> None:
    """``J-steps.csv``/``.parquet`` and ``J-tracks.csv``/``.parquet`` (Parquet with pyarrow only).

    In CSV, times are ISO 8601 (UTC, ``Z``), partner ids space-separated, a track's path JSON;
    in Parquet they are timestamps, lists of ids and a list of ``[time, lat, lon]``."""
    import pandas as pd

    steps, tracks = tidy_tables(plan, table, stats, events)
    job = plan.output_job
    partner_columns = ["merged_from", "merged_into", "split_off", "split_from"]

    def csv_of(df, lists, as_json=()):
        out = df.copy()
        for c in ("time", "start", "end"):
            if c in out:
                out[c] = pd.to_datetime(out[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        for c in lists:
            out[c] = [" ".join(map(str, v)) for v in out[c]]
        for c in as_json:
            out[c] = [json.dumps(v) for v in out[c]]
        return out

    publish(f"{job}-steps.csv", "steps", lambda p: csv_of(steps, partner_columns).to_csv(p, index=False))
    publish(f"{job}-tracks.csv", "tracks-table", lambda p: csv_of(tracks, [], ["path"]).to_csv(p, index=False))
    if not parquet_available():  # pip install pyarrow (the "parquet" extra)
        return
    publish(f"{job}-steps.parquet", "steps", lambda p: steps.to_parquet(p, index=False))
    publish(f"{job}-tracks.parquet", "tracks-table", lambda p: tracks.assign(
        path=[[{"time": t, "lat": la, "lon": lo} for t, la, lo in path] for path in tracks["path"]]).to_parquet(
        p, index=False))


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def polygon_table(features: list[dict]) -> dict[str, np.ndarray]:
    """One step's GeoJSON features as a table (kept by publish for ``J-polygons.parquet``): the
    properties in the tidy tables' names and each geometry as WKB (``wkb`` bytes, ``offsets``)."""
    import shapely

    geoms = [shapely.to_wkb(shapely.geometry.shape(f["geometry"])) for f in features]
    props = [f["properties"] for f in features]
    return {
        "anomaly_id": np.array([p["anomaly"] for p in props], np.int64),
        "tag": np.array([TAGS.index(p["tag"]) for p in props], np.int8),
        "area_px": np.array([p["area_pixels"] for p in props], np.int64),
        **{k: np.array([p[k] for p in props], np.float64)
           for k in ("area_km2", "centroid_lat", "centroid_lon", "min", "max", "mean", "std")},
        "wkb": np.frombuffer(b"".join(geoms), np.uint8),
        "offsets": np.r_[0, np.cumsum([len(g) for g in geoms])].astype(np.int64),
    }


def write_polygons(path: str, plan: PhDefPlan, steps: list[tuple[int, dict]], earlier: str | None = None) -> None:
    """``J-polygons.parquet``: every anomaly's polygon at every step as GeoParquet 1.0 (WKB
    ``geometry``, lon/lat in OGC:CRS84, the tidy tables' columns), read by ``geopandas.read_parquet``
    and QGIS. ``earlier``: the job's file, whose steps before the first of ``steps`` are kept (a sync)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    columns: dict[str, list] = {k: [] for k in ("time", "anomaly_id", "tag", "area_px", "area_km2", "centroid_lat",
                                                 "centroid_lon", "min", "max", "mean", "std", "geometry")}
    for s, t in steps:
        n = t["anomaly_id"].size
        columns["time"] += [datetime.strptime(plan.timestamps[s], "%Y%m%d%H%M").replace(tzinfo=UTC)] * n
        columns["tag"] += [TAGS[int(k)] for k in t["tag"]]
        columns["geometry"] += [t["wkb"][a:b].tobytes() for a, b in zip(t["offsets"][:-1], t["offsets"][1:])]
        for k in ("anomaly_id", "area_px", "area_km2", "centroid_lat", "centroid_lon", "min", "max", "mean", "std"):
            columns[k] += t[k].tolist()
    # Every column typed, so a file without anomalies has the same schema as any other (and a
    # sync can append to it); these are the types pyarrow infers from rows.
    types = {"time": pa.timestamp("ms", tz="UTC"), "anomaly_id": pa.int64(), "tag": pa.string(),
             "area_px": pa.int64(), "geometry": pa.binary()}
    table = pa.table({k: pa.array(v, types.get(k, pa.float64())) for k, v in columns.items()})
    if earlier is not None:
        old = pq.read_table(earlier).select(table.column_names)
        first = datetime.strptime(plan.timestamps[steps[0][0]], "%Y%m%d%H%M").replace(tzinfo=UTC)
        import pyarrow.compute as pc

        old = old.filter(pc.less(old["time"], pa.scalar(first, pa.timestamp("ms", tz="UTC"))))
        table = pa.concat_tables([old.cast(table.schema), table]).combine_chunks()
    bounds = shapely.bounds(shapely.from_wkb(table["geometry"].to_pylist())) if table.num_rows else np.zeros((0, 4))
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {
        "encoding": "WKB", "geometry_types": ["MultiPolygon", "Polygon"],
        "bbox": [float(bounds[:, 0].min()), float(bounds[:, 1].min()), float(bounds[:, 2].max()),
                 float(bounds[:, 3].max())] if len(bounds) else [-180.0, -90.0, 180.0, 90.0]}}}
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path, compression="zstd")
