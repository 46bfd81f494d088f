"""Curation: another variable inside every anomaly of a complete PhDef job.

plan: match each mask time to the nearest curation step within one curation time step (ties go
to the earlier step), find which of its neighbouring steps (t-1, t+1) have files; refuse jobs
with nothing to curate. curate (per block of mask steps): for each anomaly read only the
curation cells its footprint needs (bounding rows and a contiguous arc of columns) at t-1, t and
t+1, record the footprint cells with their three values, the values interpolated onto every mask
pixel at t, and statistics. cfinalize: the curation products (TOS2CA's layouts, SPEC 7).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from kernels import regrid
from tos2ca_batch.algorithm import Layout, lon180, spans_globe
from tos2ca_batch.catalog import file_for
from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.outputs.masks import step_pixels
from tos2ca_batch.readers import StepReader
from tos2ca_batch.spec import JobSpec
from tos2ca_batch.stages.common import CURATION_DEFAULT, CURATION_PRODUCTS, JobPlan
from tos2ca_batch.stores.objectstore import claim_output_prefix, existing
from tos2ca_batch.timeutil import axis, from_ts, parse_time, step_minutes, to_ts

STAT_NAMES = ("count", "valid_count", "Min", "Max", "Mean", "Std_dev", "percentile_10", "percentile_25",
              "percentile_50", "percentile_75", "percentile_90")
FILL = -9999.0


def match_times(mask_times, available, step_min: int):
    """Nearest available time to each mask time within one step; ties go to the earlier time."""
    out = []
    avail = sorted(available)
    for m in mask_times:
        best = None
        for t in avail:
            d = abs((t - m).total_seconds())
            if d <= step_min * 60 and (best is None or d < best[0]):
                best = (d, t)
        out.append(None if best is None else best[1])
    return out


def make_plan(cfg: Config, job_id: int, spec: JobSpec, catalog: dict, products: list[str] | None = None) -> JobPlan:
    products = list(products or CURATION_DEFAULT)
    bad = [p for p in products if p not in CURATION_PRODUCTS]
    if bad:
        raise SpecError("products", f"unknown {bad} for a curation job; allowed: {', '.join(CURATION_PRODUCTS)}")
    db = cfg.db()
    parent = db.get_job(spec.phdef_job)
    if parent is None or parent["stage"] != "phdef":
        raise SpecError("phdef_job", f"there is no PhDef job {spec.phdef_job}")
    if parent["status"] != "complete":
        raise SpecError("phdef_job", f"PhDef job {spec.phdef_job} is {parent['status']}; curation needs a "
                                     "complete job")
    pplan = JobPlan.load(cfg.store(spec.phdef_job))
    entry = catalog[spec.dataset]
    step = step_minutes(entry["timeStep"])
    if not isinstance(step, int):
        raise SpecError("dataset", f"{spec.dataset} has a monthly time step; curation needs minutes or daily")
    mask_times = pplan.times()
    first, last = parse_time(entry["startDate"]), parse_time(entry["endDate"])
    window = timedelta(minutes=step)
    cand = [t for t in axis(first, step, mask_times[0] - window, mask_times[-1] + window) if t <= last]
    present = existing([file_for(entry, t) for t in cand])
    available = [t for t in cand if file_for(entry, t) in present]
    matches = match_times(mask_times, available, step)
    if not any(matches):
        raise SpecError("dataset", f"{spec.dataset} has no data within one time step ({step} min) of the anomaly "
                                   f"times {to_ts(mask_times[0])}..{to_ts(mask_times[-1])}")
    neighbours = _neighbours(entry, matches, available, window, first, last)
    used = next(t for t in matches if t is not None)
    with StepReader(entry, spec.variable) as reader:
        src_lat, src_lon = reader.grid(used)
        attrs = reader.attributes(used)
    row_order = np.argsort(src_lat, kind="stable")
    col_order = np.argsort(lon180(src_lon), kind="stable")
    clat, clon = src_lat[row_order], lon180(src_lon)[col_order]
    is_global = spans_globe(src_lon)
    half = regrid.spacing(clat) / 2
    lat_ok = pplan.lat.max() >= clat[0] - half and pplan.lat.min() <= clat[-1] + half
    lon_ok = is_global or bool(np.any((pplan.lon >= clon[0] - regrid.spacing(clon) / 2)
                                      & (pplan.lon <= clon[-1] + regrid.spacing(clon) / 2)))
    if not (lat_ok and lon_ok):
        raise SpecError("dataset", f"{spec.dataset} covers none of PhDef job {spec.phdef_job}'s box "
                                   f"{pplan.meta['bbox']}")
    n = len(mask_times)
    block = min(spec.block_steps or 24, n)
    layout = Layout(n, 1, 1, block, 1, 1)
    missing = [to_ts(m) for m, t in zip(mask_times, matches) if t is None]
    meta = {
        "kind": "curation", "job_id": job_id, "phdef_job": spec.phdef_job, "dataset": spec.dataset,
        "variable": spec.variable, "entry": entry, "operator": None, "layout": layout.__dict__,
        "timestamps": pplan.timestamps, "stats_timestamps": None,
        "matches": [None if t is None else to_ts(t) for t in matches], "missing_times": missing,
        "neighbours": neighbours, "product_info": str(entry.get("productInfo", "")),
        "full_name": str(entry.get("fullName", spec.dataset)),
        "global_curation_grid": is_global, "products": products,
        "units": entry.get("units", {}).get(spec.variable) or str(attrs.get("units", "")),
        "long_name": str(attrs.get("long_name", spec.variable)),
        "categorical": spec.variable in entry.get("categorical", []), "time_step_minutes": step,
    }
    store = cfg.store(job_id)
    meta["job_uid"] = store.identity
    meta["output_prefix"] = claim_output_prefix(cfg.output_base(job_id), store.identity)
    store.put_table("plan", 0, "grid",
                    {"lat": pplan.lat, "lon": pplan.lon, "src_rows": row_order, "src_cols": col_order})
    store.put_table("plan", 0, "curation_grid", {"lat": clat, "lon": clon, "src_lat": src_lat, "src_lon": src_lon})
    store.put_json("plan", meta)
    plan = JobPlan.load(store)
    db.add_chunks(job_id, "curate", [(plan.timestamps[a], plan.timestamps[b - 1])
                                     for a, b in (layout.chunk(c)[:2] for c in range(layout.n_chunks))])
    db.add_chunks(job_id, "cfinalize", [(plan.timestamps[0], plan.timestamps[-1])])
    db.update_job(job_id, nChunks=layout.n_chunks)
    return plan


def _neighbours(entry: dict, matches, available, window: timedelta, first, last) -> list:
    """Per mask step, the curation steps before and after its match that have a file (else None)."""
    have = set(available)
    around = {t + d for t in matches if t is not None for d in (-window, window)} - have
    around = sorted(t for t in around if first <= t <= last)
    present = existing([file_for(entry, t) for t in around])
    have |= {t for t in around if file_for(entry, t) in present}
    return [None if t is None else [to_ts(n) if n in have else None for n in (t - window, t + window)]
            for t in matches]


def _arc(cols: np.ndarray, n: int, wrap: bool) -> tuple[int, int]:
    """Smallest contiguous (circular if ``wrap``) run of columns holding ``cols``: (start, length)."""
    u = np.unique(cols % n if wrap else np.clip(cols, 0, n - 1))
    if not wrap or u.size == 1:
        return int(u[0]), int(u[-1] - u[0] + 1)
    gaps = np.diff(np.r_[u, u[0] + n])
    k = int(np.argmax(gaps))
    start = int(u[(k + 1) % u.size])
    return start, int(n - gaps[k] + 1)


def curate_anomaly(reader, times, plan: JobPlan, cgrid: dict, plat, plon, half_lat, half_lon):
    """Footprint cells of one anomaly with their values at ``times`` (t-1, t, t+1; None = no
    step there: NaN), the values interpolated onto its pixels at t, and the bytes read.

    Returns ``foot`` rows ``(lat, lon, v[t-1], v[t], v[t+1])``."""
    t = times[1]
    clat, clon = cgrid["lat"], cgrid["lon"]
    wrap = plan.meta["global_curation_grid"]
    r0, r1 = regrid.cover_ranges(plat, half_lat, clat, False)
    c0, c1 = regrid.cover_ranges(plon, half_lon, clon, wrap)
    rlo, rhi = max(int(r0.min()) - 1, 0), min(int(r1.max()) + 1, clat.size - 1)
    start, length = _arc(np.r_[c0 - 1, c1 + 1], clon.size, wrap)
    length = min(length, clon.size)
    rows = np.arange(rlo, rhi + 1)
    cols = (start + np.arange(length)) % clon.size if wrap else np.arange(start, start + length)
    field = reader.read(t, plan.src_rows[rows], plan.src_cols[cols]).astype(np.float64)
    wlat = clat[rows]
    wlon = clon[start] + regrid.spacing(clon) * np.arange(length)
    plon_w = wlon[0] + np.mod(plon - wlon[0], 360.0) if wrap else plon
    if plan.meta["categorical"]:
        interp = regrid.nearest(field, wlat, wlon, plat, plon_w, False)
    elif regrid.spacing(clat) < 2 * half_lat * (1 - 1e-9):
        interp = regrid.area_mean(field, wlat, wlon, plat, plon_w, half_lat, half_lon, False)
    else:
        interp = regrid.bilinear(field, wlat, wlon, plat, plon_w, False)
    cells = regrid.footprint_cells(plat, plon_w, half_lat, half_lon, wlat, wlon, False)
    values = []
    for k, tk in enumerate(times):
        if k == 1:
            f = field
        elif tk is None:
            values.append(np.full(cells.shape[0], np.nan))
            continue
        else:
            f = reader.read(tk, plan.src_rows[rows], plan.src_cols[cols]).astype(np.float64)
        values.append(f[cells[:, 0], cells[:, 1]])
    n_read = 1 + sum(tk is not None for k, tk in enumerate(times) if k != 1)
    foot = np.column_stack([wlat[cells[:, 0]], lon180(wlon[cells[:, 1]]), *values])
    return foot, interp, field.size * 4 * n_read


def run(cfg: Config, job_id: int, chunk: int) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    meta = plan.meta
    parent = cfg.store(meta["phdef_job"])
    pplan = JobPlan.load(parent)
    cgrid = store.get_table("plan", 0, "curation_grid")
    half_lat = abs(regrid.spacing(pplan.lat)) / 2
    half_lon = abs(regrid.spacing(np.unwrap(pplan.lon, period=360.0))) / 2
    t0, t1 = plan.layout.chunk(chunk)[:2]
    bytes_read = 0
    source = (cgrid["src_lat"], cgrid["src_lon"])
    with StepReader(meta["entry"], meta["variable"], source) as reader:
        for s in range(t0, t1):
            out = {"aid": np.zeros(0, np.int32)}
            if meta["matches"][s] is not None:
                rows, cols, aid, _ = step_pixels(parent.read_step("anomaly_id", s, pplan.layout))
                plat, plon = pplan.lat[rows], pplan.lon[cols]
                ids = np.unique(aid)
                before, after = meta["neighbours"][s] if "curated" in meta["products"] else (None, None)
                times = [None if x is None else from_ts(x) for x in (before, meta["matches"][s], after)]
                foot_parts, int_parts, stats = [], [], []
                for a in ids:
                    sel = aid == a
                    foot, interp, nbytes = curate_anomaly(reader, times, plan, cgrid, plat[sel], plon[sel],
                                                          half_lat, half_lon)
                    bytes_read += nbytes
                    foot_parts.append(foot)
                    int_parts.append(np.column_stack([plat[sel], plon[sel], interp]))
                    st = regrid.statistics(interp)
                    stats.append([st[k] for k in STAT_NAMES])
                out = {
                    "aid": ids.astype(np.int32),
                    "foot_off": np.r_[0, np.cumsum([len(f) for f in foot_parts])].astype(np.int64),
                    "foot": np.concatenate(foot_parts) if foot_parts else np.zeros((0, 5)),
                    "int_off": np.r_[0, np.cumsum([len(f) for f in int_parts])].astype(np.int64),
                    "interp": np.concatenate(int_parts) if int_parts else np.zeros((0, 3)),
                    "stats": np.array(stats, np.float64).reshape(-1, len(STAT_NAMES)),
                }
            store.put_table("curate", s, "result", out)
    # What reading whole fields would have cost: every curation step a matched mask step uses.
    field_bytes = len(cgrid["lat"]) * len(cgrid["lon"]) * 4
    n_fields = sum(1 + sum(n is not None for n in meta["neighbours"][s]) * ("curated" in meta["products"])
                   for s in range(t0, t1) if meta["matches"][s] is not None)
    store.put_table("curate", chunk, "io", {"bytes_read": np.array([bytes_read], np.int64),
                                            "field_bytes": np.array([field_bytes * n_fields], np.int64)})
