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

from tos2ca_batch.algorithm import Layout, lon180, spans_globe
from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.kernels import regrid
from tos2ca_batch.outputs.masks import step_pixels
from tos2ca_batch.plans import CurationGrid, CurationPlan, JobGrid, PhDefPlan
from tos2ca_batch.readers import StepReader
from tos2ca_batch.spec import JobSpec
from tos2ca_batch.stages.common import CURATION_DEFAULT, CURATION_PRODUCTS, CURATION_STATISTICS
from tos2ca_batch.stores.objectstore import claim_output_prefix, existing
from tos2ca_batch.timeutil import axis, from_ts, step_minutes, to_ts


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


def make_plan(ctx: TaskContext, spec: JobSpec, catalog: dict[str, CatalogEntry],
              products: list[str] | None = None) -> CurationPlan:
    """Validate a curation job against its PhDef job and the curation data; save its plan."""
    products = list(products or CURATION_DEFAULT)
    bad = [p for p in products if p not in CURATION_PRODUCTS]
    if bad:
        raise SpecError("products", f"unknown {bad} for a curation job; allowed: {', '.join(CURATION_PRODUCTS)}")
    db, job_id = ctx.db, ctx.job_id
    parent = db.get_job(spec.phdef_job)
    if parent is None or parent["stage"] != "phdef":
        raise SpecError("phdef_job", f"there is no PhDef job {spec.phdef_job}")
    if parent["status"] != "complete":
        raise SpecError("phdef_job", f"PhDef job {spec.phdef_job} is {parent['status']}; curation needs a "
                                     "complete job")
    pplan = ctx.other(spec.phdef_job).plan
    entry = catalog[spec.dataset]
    step = step_minutes(entry.time_step)
    if not isinstance(step, int):
        raise SpecError("dataset", f"{spec.dataset} has a monthly time step; curation needs minutes or daily")
    mask_times = pplan.times()
    first, last = entry.first, entry.last
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
    plat, plon = pplan.grid.lat, pplan.grid.lon
    lat_ok = plat.max() >= clat[0] - half and plat.min() <= clat[-1] + half
    lon_ok = is_global or bool(np.any((plon >= clon[0] - regrid.spacing(clon) / 2)
                                      & (plon <= clon[-1] + regrid.spacing(clon) / 2)))
    if not (lat_ok and lon_ok):
        raise SpecError("dataset", f"{spec.dataset} covers none of PhDef job {spec.phdef_job}'s box {pplan.bbox}")
    n = len(mask_times)
    layout = Layout(n, 1, 1, min(spec.block_steps or 24, n), 1, 1)
    store = ctx.store
    plan = CurationPlan(
        job_id=job_id, job_uid=store.identity, dataset=spec.dataset, variable=spec.variable, entry=entry,
        layout=layout, timestamps=pplan.timestamps, products=products,
        units=entry.units_of(spec.variable) or str(attrs.get("units", "")),
        long_name=str(attrs.get("long_name", spec.variable)),
        output_prefix=claim_output_prefix(ctx.cfg.output_base(job_id), store.identity),
        grid=JobGrid(plat, plon, row_order, col_order),
        phdef_job=spec.phdef_job, curation_grid=CurationGrid(clat, clon, src_lat, src_lon),
        global_curation_grid=is_global, matches=[None if t is None else to_ts(t) for t in matches],
        neighbours=neighbours, missing_times=[to_ts(m) for m, t in zip(mask_times, matches) if t is None],
        time_step_minutes=step, categorical=spec.variable in entry.categorical,
    )
    plan.save(store)
    db.add_stage_chunks(job_id, plan.chunk_ranges())
    db.update_job(job_id, nChunks=layout.n_chunks)
    return plan


def _neighbours(entry: CatalogEntry, matches, available, window: timedelta, first, last) -> list:
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


def curate_anomaly(reader, times, plan: CurationPlan, plat, plon, half_lat, half_lon):
    """Footprint cells of one anomaly with their values at ``times`` (t-1, t, t+1; None = no
    step there: NaN), the values interpolated onto its pixels at t, and the bytes read.

    Returns ``foot`` rows ``(lat, lon, v[t-1], v[t], v[t+1])``."""
    t = times[1]
    clat, clon = plan.curation_grid.lat, plan.curation_grid.lon
    wrap = plan.global_curation_grid
    r0, r1 = regrid.cover_ranges(plat, half_lat, clat, False)
    c0, c1 = regrid.cover_ranges(plon, half_lon, clon, wrap)
    rlo, rhi = max(int(r0.min()) - 1, 0), min(int(r1.max()) + 1, clat.size - 1)
    start, length = _arc(np.r_[c0 - 1, c1 + 1], clon.size, wrap)
    length = min(length, clon.size)
    rows = np.arange(rlo, rhi + 1)
    cols = (start + np.arange(length)) % clon.size if wrap else np.arange(start, start + length)
    src_rows, src_cols = plan.grid.src_rows[rows], plan.grid.src_cols[cols]
    field = reader.read(t, src_rows, src_cols).astype(np.float64)
    wlat = clat[rows]
    wlon = clon[start] + regrid.spacing(clon) * np.arange(length)
    plon_w = wlon[0] + np.mod(plon - wlon[0], 360.0) if wrap else plon
    if plan.categorical:
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
            f = reader.read(tk, src_rows, src_cols).astype(np.float64)
        values.append(f[cells[:, 0], cells[:, 1]])
    n_read = 1 + sum(tk is not None for k, tk in enumerate(times) if k != 1)
    foot = np.column_stack([wlat[cells[:, 0]], lon180(wlon[cells[:, 1]]), *values])
    return foot, interp, field.size * 4 * n_read


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store = ctx.plan, ctx.store
    parent = ctx.other(plan.phdef_job)
    pplan: PhDefPlan = parent.plan
    cgrid = plan.curation_grid
    half_lat = abs(regrid.spacing(pplan.grid.lat)) / 2
    half_lon = abs(regrid.spacing(np.unwrap(pplan.grid.lon, period=360.0))) / 2
    t0, t1 = plan.layout.chunk(chunk)[:2]
    bytes_read = 0
    curated = "curated" in plan.products
    with StepReader(plan.entry, plan.variable, (cgrid.src_lat, cgrid.src_lon)) as reader:
        for s in range(t0, t1):
            out = {"aid": np.zeros(0, np.int32)}
            if plan.matches[s] is not None:
                rows, cols, aid, _ = step_pixels(parent.store.read_ids(s))
                plat, plon = pplan.grid.lat[rows], pplan.grid.lon[cols]
                ids = np.unique(aid)
                before, after = plan.neighbours[s] if curated else (None, None)
                times = [None if x is None else from_ts(x) for x in (before, plan.matches[s], after)]
                foot_parts, int_parts, stats = [], [], []
                for a in ids:
                    sel = aid == a
                    foot, interp, nbytes = curate_anomaly(reader, times, plan, plat[sel], plon[sel],
                                                          half_lat, half_lon)
                    bytes_read += nbytes
                    foot_parts.append(foot)
                    int_parts.append(np.column_stack([plat[sel], plon[sel], interp]))
                    st = regrid.statistics(interp)
                    stats.append([st[k] for k in CURATION_STATISTICS])
                out = {
                    "aid": ids.astype(np.int32),
                    "foot_off": np.r_[0, np.cumsum([len(f) for f in foot_parts])].astype(np.int64),
                    "foot": np.concatenate(foot_parts) if foot_parts else np.zeros((0, 5)),
                    "int_off": np.r_[0, np.cumsum([len(f) for f in int_parts])].astype(np.int64),
                    "interp": np.concatenate(int_parts) if int_parts else np.zeros((0, 3)),
                    "stats": np.array(stats, np.float64).reshape(-1, len(CURATION_STATISTICS)),
                }
            store.put_table("curate", s, "result", out)
    # What reading whole fields would have cost: every curation step a matched mask step uses.
    field_bytes = len(cgrid.lat) * len(cgrid.lon) * 4
    n_fields = sum(1 + sum(n is not None for n in plan.neighbours[s]) * curated
                   for s in range(t0, t1) if plan.matches[s] is not None)
    store.put_table("curate", chunk, "io", {"bytes_read": np.array([bytes_read], np.int64),
                                            "field_bytes": np.array([field_bytes * n_fields], np.int64)})
