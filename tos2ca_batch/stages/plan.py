"""Plan: check the spec against the catalog and the data, then store the plan and chunk rows.

Everything that can refuse a job happens here, before anything is written.
"""

from __future__ import annotations

import numpy as np

from tos2ca_batch import __version__, operators
from tos2ca_batch.algorithm import (
    Layout,
    check_limits,
    default_chunking,
    percentile_layout,
    period_ranges,
    publish_layout,
    select_grid,
    stats_layout,
)
from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.plans import JobGrid, PhDefPlan, Tracking
from tos2ca_batch.readers import StepReader
from tos2ca_batch.spec import JobSpec
from tos2ca_batch.stages.common import PHDEF_OPTIONAL, PHDEF_PRODUCTS, value_range
from tos2ca_batch.stores.objectstore import claim_output_prefix, existing
from tos2ca_batch.timeutil import axis, step_minutes, to_ts

MAX_STEPS = 10_000_000  # a time axis longer than this is refused before it is built


def _timestamps(entry: CatalogEntry, dataset: str, start, end, field: str) -> list:
    first, last = entry.first, entry.last
    lo, hi = max(start, first), min(end, last)  # clamp to the catalog's range before building anything
    step = step_minutes(entry.time_step)
    if hi >= lo and isinstance(step, int) and (hi - lo).total_seconds() / 60 / step > MAX_STEPS:
        raise SpecError(field, f"{start:%Y-%m-%dT%H:%M}..{end:%Y-%m-%dT%H:%M} holds over {MAX_STEPS:,} time steps "
                               f"of {dataset}; split the job")
    times = axis(first, entry.time_step, lo, hi) if hi >= lo else []
    if not times:
        raise SpecError(field, f"no time steps of {dataset} between {start:%Y-%m-%dT%H:%M} and "
                               f"{end:%Y-%m-%dT%H:%M}; the dataset covers {entry.start_date} to {entry.end_date}")
    if not existing([file_for(entry, times[0])]):  # the grid is read from the first file
        _check_files(entry, dataset, times, field)
    return times


def _check_files(entry: CatalogEntry, dataset: str, times: list, field: str) -> None:
    """Every time step has its file (one listing per S3 prefix), else a SpecError naming some."""
    paths = [file_for(entry, t) for t in times]
    present = existing(paths)
    missing = [t for t, path in zip(times, paths) if path not in present]
    if len(missing) == len(times):
        raise SpecError(field, f"no files of {dataset} in range (looked for e.g. {paths[0]})")
    if missing:
        shown = ", ".join(f"{t:%Y-%m-%dT%H:%M}" for t in missing[:5])
        raise SpecError(field, f"{len(missing)} of {len(times)} time steps of {dataset} have no file ({shown}...)")


def make_plan(ctx: TaskContext, spec: JobSpec, catalog: dict[str, CatalogEntry], products: list[str] | None = None,
              block_steps: int | None = None, tile: tuple[int, int] | None = None,
              output_base: str | None = None) -> PhDefPlan:
    """Validate against the data and save the plan; raises SpecError before writing anything.
    ``output_base``: where the outputs go instead of ``<outputs>/J`` (a sweep's sub-folders)."""
    cfg, job_id = ctx.cfg, ctx.job_id
    entry = catalog[spec.dataset]
    times = _timestamps(entry, spec.dataset, spec.start, spec.end, "start")
    stats_times = None
    if operators.get(spec.operator).baseline is not None:
        b0, b1 = spec.baseline or (spec.start, spec.end)
        stats_times = _timestamps(entry, spec.dataset, b0, b1, "baseline" if spec.baseline else "start")
    with StepReader(entry, spec.variable) as reader:
        src_lat, src_lon = reader.grid(times[0])
        attrs = reader.attributes(times[0], ("units", "long_name"))
    rows, cols, wrap = select_grid(src_lat, src_lon, spec.bbox)
    if rows.size == 0 or cols.size == 0:
        lon = ((src_lon + 180) % 360) - 180
        raise SpecError("bbox", f"{list(spec.bbox)} selects no grid cells of {spec.dataset} (it covers lat "
                                f"{src_lat.min():.3f}..{src_lat.max():.3f}, lon {lon.min():.3f}..{lon.max():.3f})")
    block_steps = block_steps or spec.block_steps
    tile = tile or spec.tile
    d_block, d_tile = default_chunking(len(times), rows.size, cols.size, cfg.memory_mb,
                                       cfg.array_chunks if cfg.plan_for_arrays else None)
    tile = (min(tile[0], rows.size), min(tile[1], cols.size)) if tile else d_tile
    layout = Layout(len(times), int(rows.size), int(cols.size), min(block_steps or d_block, len(times)), *tile)
    stage_chunks = {"map": layout.n_chunks, "publish": publish_layout(layout).n_chunks}
    if stats_times:
        stats_of = percentile_layout if operators.get(spec.operator).baseline == "percentile" else stats_layout
        stage_chunks["stats"] = stats_of(len(stats_times), layout).n_chunks
    refused = check_limits(layout, stage_chunks, cfg.max_chunks, cfg.memory_mb)
    if refused:
        raise SpecError("chunking", refused)
    if spec.tracking["min_size"] > layout.height * layout.width:
        raise SpecError("tracking.min_size", f"{spec.tracking['min_size']} is more than the job grid's "
                                             f"{layout.height * layout.width} pixels: nothing could be found")
    _check_files(entry, spec.dataset, times, "start")
    refused = cfg.scan_cache().refusal(entry, times)  # what an earlier scan found, without reading a file
    if refused:
        raise SpecError("start", refused)
    if stats_times:
        _check_files(entry, spec.dataset, stats_times, "baseline" if spec.baseline else "start")
    products = list(products or PHDEF_PRODUCTS)
    bad = [p for p in products if p not in PHDEF_PRODUCTS + PHDEF_OPTIONAL]
    if bad:
        raise SpecError("products", f"unknown {bad}; allowed: {', '.join(PHDEF_PRODUCTS + PHDEF_OPTIONAL)}")

    plot_range = None
    if {"plots", "animation"} & set(products):
        with StepReader(entry, spec.variable, (src_lat, src_lon)) as reader:
            plot_range = value_range(reader.read(times[0], rows, cols))
    lat = src_lat[rows].astype(np.float64)
    lon = ((src_lon[cols] + 180.0) % 360.0) - 180.0
    store = ctx.store
    plan = PhDefPlan(
        job_id=job_id, job_uid=store.identity, dataset=spec.dataset, variable=spec.variable, entry=entry,
        layout=layout, timestamps=[to_ts(t) for t in times], products=products,
        units=entry.units_of(spec.variable) or str(attrs.get("units", "")),
        long_name=str(attrs.get("long_name", spec.variable)),
        output_prefix=claim_output_prefix(output_base or cfg.output_base(job_id), store.identity),
        grid=JobGrid(lat, lon, rows, cols, (src_lat, src_lon)),
        operator=spec.operator, threshold=spec.value, value2=spec.value2, tracking=Tracking(**spec.tracking),
        wraps=wrap,
        bbox=list(spec.bbox), polygon=spec.polygon,
        baseline_timestamps=[to_ts(t) for t in stats_times] if stats_times else None,
        software_version=__version__,
        plot_range=plot_range,
        periods=period_ranges([to_ts(t) for t in times], cfg.period) if len(times) > cfg.period_steps else None,
    )
    plan.save(store)  # the ids dataset is made by the first map task (stages.common.create_ids_dataset)
    db = ctx.db
    db.add_stage_chunks(job_id, plan.chunk_ranges())
    db.update_job(job_id, nChunks=layout.n_chunks)
    return plan
