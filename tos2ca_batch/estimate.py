"""What a job will cost before it is submitted: chunks, arrays, time, memory and bytes.

``tos2ca-batch estimate spec.json`` plans the job the way ``run`` and ``aws submit`` would (time
axis, grid, chunking; only the first file's coordinates are read, never a pixel, and nothing is
written), then prices every stage with the per-chunk costs measured by the benchmarks
(``costs.json`` beside this module, written by ``benchmarks/refresh_costs.py``). The time model
is the simple one: each stage waits for the one before; its children run ``containers`` at a
time (no more than the compute environment's ``maxvCpus`` holds), each paying a container
start, and no faster than the platform launches containers (Fargate: a token bucket of 100
launches refilled at 20 a second per account and Region, AWS's documented throttling quota).
``benchmarks/simulate_batch.py`` adds Spot reclaims, retries and spread.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path

from tos2ca_batch import operators
from tos2ca_batch.algorithm import (
    BYTES_PER_PIXEL,
    Layout,
    default_chunking,
    percentile_layout,
    period_ranges,
    publish_layout,
    select_grid,
    stats_layout,
)
from tos2ca_batch.aws_batch import MAX_ARRAY, MAX_DEPENDS_ON, array_parts, manifests_dir
from tos2ca_batch.catalog import file_for
from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.readers import StepReader
from tos2ca_batch.spec import validate
from tos2ca_batch.timeutil import axis, step_minutes

COSTS = Path(__file__).with_name("costs.json")
FARGATE_MAX_MIB = 120 * 1024  # the largest Fargate task (16 vCPU)


def _steps(entry, start: datetime, end: datetime) -> tuple[int, datetime]:
    """How many dataset steps fall in ``[start, end]`` (clamped to the catalog) and the first."""
    lo, hi = max(start, entry.first), min(end, entry.last)
    step = step_minutes(entry.time_step)
    none = SpecError("start", f"no time steps of the dataset between {start:%Y-%m-%dT%H:%M} and "
                              f"{end:%Y-%m-%dT%H:%M}; it covers {entry.start_date} to {entry.end_date}")
    if hi < lo:
        raise none
    if step == "monthly":
        times = axis(entry.first, entry.time_step, lo, hi)
        if not times:
            raise none
        return len(times), times[0]
    k0 = -(-int((lo - entry.first).total_seconds()) // (step * 60))
    k1 = int((hi - entry.first).total_seconds()) // (step * 60)
    if k1 < k0:
        raise none
    return k1 - k0 + 1, entry.first + timedelta(minutes=step * k0)


def _stamps(entry, first: datetime, n_steps: int) -> list[str]:
    """The job's time stamps (``YYYYMMDDhhmm``), for its periods."""
    step = step_minutes(entry.time_step)
    if step == "monthly":
        return [t.strftime("%Y%m%d%H%M") for t in axis(entry.first, entry.time_step, first, entry.last)[:n_steps]]
    return [(first + timedelta(minutes=step * k)).strftime("%Y%m%d%H%M") for k in range(n_steps)]


def _job_definition(cfg: Config, platform: str) -> tuple[int, int]:
    """vCPUs and memory (MiB) of the platform's job definition in ``manifests/``."""
    try:
        doc = json.loads((manifests_dir(cfg) / f"job-definition-{platform}.json").read_text())
        req = {r["type"]: int(r["value"]) for r in doc["containerProperties"]["resourceRequirements"]}
        return req.get("VCPU", 1), req.get("MEMORY", 2048)
    except (OSError, KeyError, ValueError):
        return 1, 2048


def _file_bytes(path: str) -> int | None:
    if path.startswith("s3://"):
        from tos2ca_batch.stores.objectstore import object_size

        try:
            return object_size(path)
        except Exception:
            return None
    return os.path.getsize(path) if os.path.exists(path) else None


def stage_seconds(children: int, seconds: float, containers: int, start: float,
                  launches: dict | None) -> float:
    """A stage's wall time: waves of ``containers`` children, each ``start`` + ``seconds``, and
    the ``children``-th launch no sooner than the launch bucket refills for it."""
    waves = math.ceil(children / containers) * (seconds + start)
    if not launches:
        return waves
    return max(waves, max(0, children - launches["burst"]) / launches["per_second"] + start + seconds)


def estimate(cfg: Config, raw: dict, containers: list[int], platform: str = "fargate",
             components_per_step: float | None = None, max_vcpus: int = 2000) -> dict:
    costs = json.loads(COSTS.read_text())
    catalog = cfg.catalog()
    spec = validate({k: v for k, v in raw.items() if k != "products"}, catalog)
    if spec.stage != "phdef":
        raise SpecError("stage", "estimate prices PhDef jobs")
    entry = catalog[spec.dataset]
    n_steps, first = _steps(entry, spec.start, spec.end)
    with StepReader(entry, spec.variable) as reader:  # coordinates only: no pixel is read
        src_lat, src_lon = reader.grid(first)
        steps_per_file = max(1, len(reader.file_times(first)))
    rows, cols, _ = select_grid(src_lat, src_lon, spec.bbox)
    if rows.size == 0 or cols.size == 0:
        raise SpecError("bbox", f"{list(spec.bbox)} selects no grid cells of {spec.dataset}")
    d_block, d_tile = default_chunking(n_steps, rows.size, cols.size, cfg.memory_mb, cfg.array_chunks)
    tile = (min(spec.tile[0], rows.size), min(spec.tile[1], cols.size)) if spec.tile else d_tile
    layout = Layout(n_steps, int(rows.size), int(cols.size), min(spec.block_steps or d_block, n_steps), *tile)
    tile_mpx = layout.tile_h * layout.tile_w / 1e6
    grid_mpx = layout.height * layout.width / 1e6
    per_mpx = costs["seconds_per_mpx"]
    comps = components_per_step if components_per_step is not None else costs["components_per_step_per_mpx"] * grid_mpx
    publish = publish_layout(layout)
    stages = {}
    statistic = operators.get(spec.operator).baseline
    if statistic is not None:
        stats = (percentile_layout if statistic == "percentile" else stats_layout)(n_steps, layout)
        stages["stats"] = (stats.n_chunks, stats.block_steps * stats.tile_h * stats.tile_w / 1e6 * per_mpx["map"])
    stages.update({
        "map": (layout.n_chunks, layout.block_steps * tile_mpx * per_mpx["map"]),
        "reduce": (1, n_steps * comps * costs["reduce_seconds_per_component"]),
        "relabel": (layout.n_chunks, layout.block_steps * tile_mpx * per_mpx["relabel"]),
        "publish": (publish.n_chunks, publish.block_steps * grid_mpx * per_mpx["publish"]),
    })
    products = raw.get("products") or ["masks", "ids"]
    per_step_files = (costs["finalize_seconds_per_step"] if "masks" in products else 0) + (
        costs["ids_netcdf_seconds_per_mpx"] * grid_mpx if "ids" in products else 0)
    if n_steps > cfg.period_steps:  # masks and ids per period, in parallel (stages/periods.py)
        periods = period_ranges(_stamps(entry, first, n_steps), cfg.period)
        longest = max(b - a for a, b, _ in periods)
        stages["periods"] = (len(periods), longest * per_step_files)
        stages["finalize"] = (1, n_steps * 1e-4)
    else:
        stages["finalize"] = (1, n_steps * per_step_files)
    vcpus, jobdef_mib = _job_definition(cfg, platform)
    start = costs["container_start_seconds"].get(platform, 30)
    memory = {
        "map": costs["task_base_mib"] + layout.tile_h * layout.tile_w * BYTES_PER_PIXEL / 2**20,
        # The reduce holds one time block: about TOS2CA_REDUCE_ROWS rows, the map block that
        # crossed the mark and the map block before it (its halo step), never the whole job.
        "reduce": costs["task_base_mib"] + min(n_steps * comps, cfg.reduce_rows + 2 * layout.block_steps * comps)
        * costs["reduce_bytes_per_row"] / 2**20,
    }
    warnings = []
    out_stages = {}
    for name, (children, seconds) in stages.items():
        parts = array_parts(children)
        out_stages[name] = {"chunks": children, "arrays": [size for _, size in parts],
                            "seconds_per_task": round(seconds, 2), "task_hours": round(children * seconds / 3600, 2)}
        if len(parts) > MAX_DEPENDS_ON:
            warnings.append(f"{name}: {children} chunks need {len(parts)} arrays, more than the {MAX_DEPENDS_ON} a "
                            f"Batch job may depend on: aws submit refuses it; use longer blocks or larger tiles")
        elif len(parts) > 1:
            warnings.append(f"{name}: {children} chunks exceed an array's {MAX_ARRAY}: submitted as {len(parts)} "
                            f"arrays")
    for name, mib in memory.items():
        if mib > FARGATE_MAX_MIB:
            warnings.append(f"{name}: about {mib / 1024:.0f} GiB per task, over the largest Fargate task "
                            f"({FARGATE_MAX_MIB // 1024} GiB): split the job in time")
        elif mib > jobdef_mib:
            warnings.append(f"{name}: about {mib / 1024:.1f} GiB per task, over the job definition's "
                            f"{jobdef_mib / 1024:.0f} GiB ({platform}): raise its MEMORY for that stage")
    launches = costs.get("container_launches", {}).get(platform)
    walls, running = {}, {}
    for n in containers:
        running[str(n)] = min(n, max(1, max_vcpus // vcpus))
        wall = sum(stage_seconds(children, seconds, running[str(n)], start, launches)
                   for children, seconds in stages.values())
        walls[str(n)] = round(wall / 3600, 2)
    capped = [n for n in containers if running[str(n)] < n]
    if capped:
        warnings.append(f"maxvCpus {max_vcpus:,} runs at most {running[str(capped[0])]:,} containers of {vcpus} vCPUs: "
                        f"the wall times of {', '.join(f'{n:,}' for n in capped)} are those of "
                        f"{running[str(capped[0])]:,} (aws register --max-vcpus)")
    launch_s = sum(max(0, c - launches["burst"]) / launches["per_second"] for c, _ in stages.values()) \
        if launches else 0.0
    file_bytes = _file_bytes(file_for(entry, first))
    src_px = src_lat.size * src_lon.size
    read = None if file_bytes is None else int(file_bytes / steps_per_file * n_steps * rows.size * cols.size / src_px)
    total_mpx = n_steps * grid_mpx
    written = int(total_mpx * costs["ids_bytes_per_mpx"]
                  + total_mpx * 1e6 * costs["coverage"] * costs["masks_bytes_per_anomaly_pixel"])
    task_hours = sum(children * seconds for children, seconds in stages.values()) / 3600
    return {
        "dataset": spec.dataset, "variable": spec.variable, "steps": n_steps, "grid": [layout.height, layout.width],
        "mpx": round(total_mpx, 1), "chunking": {"block_steps": layout.block_steps,
                                                 "tile": [layout.tile_h, layout.tile_w]},
        "stages": out_stages, "wall_hours_by_containers": walls,
        "max_vcpus_by_containers": {str(n): n * vcpus for n in containers}, "max_vcpus": max_vcpus,
        "containers_running": running, "launch_hours": round(launch_s / 3600, 2),
        "launches_per_second": launches["per_second"] if launches else None, "task_hours": round(task_hours, 2),
        "vcpu_hours": round(task_hours * vcpus, 2), "platform": platform, "vcpus_per_task": vcpus,
        "memory_mib_per_task": {k: round(v) for k, v in memory.items()}, "job_definition_memory_mib": jobdef_mib,
        "s3_bytes_read": read, "s3_bytes_written": written, "components_per_step": round(comps, 1),
        "warnings": warnings, "costs_measured": costs["measured"],
    }


def describe(est: dict) -> str:
    """The estimate as a few lines for a person."""
    lines = [f"{est['dataset']} {est['variable']}: {est['steps']:,} steps of {est['grid'][0]} x {est['grid'][1]} "
             f"({est['mpx']:,} Mpx), blocks of {est['chunking']['block_steps']} steps, tiles "
             f"{est['chunking']['tile'][0]} x {est['chunking']['tile'][1]}"]
    for name, s in est["stages"].items():
        arrays = " + ".join(str(a) for a in s["arrays"])
        lines.append(f"  {name:9s} {s['chunks']:>8,} chunks  arrays {arrays:>14s}  "
                     f"{s['seconds_per_task']:>9.2f} s a task")
    walls = ", ".join(f"{h} h with {n} containers" for n, h in est["wall_hours_by_containers"].items())
    lines.append(f"  wall: {walls}; {est['vcpu_hours']:,} vCPU-hours ({est['platform']})")
    need = ", ".join(f"{v:,} for {n}" for n, v in est["max_vcpus_by_containers"].items())
    lines.append(f"  compute environment maxvCpus (aws register --max-vcpus, here {est['max_vcpus']:,}): {need} "
                 f"containers")
    if est["launches_per_second"]:
        lines.append(f"  container launches alone (at {est['launches_per_second']} a second): "
                     f"{est['launch_hours']} h of the wall")
    mem = ", ".join(f"{k} {v / 1024:.1f} GiB" for k, v in est["memory_mib_per_task"].items())
    lines.append(f"  memory per task: {mem} (job definition {est['job_definition_memory_mib'] / 1024:.0f} GiB)")
    read = "unknown" if est["s3_bytes_read"] is None else f"{est['s3_bytes_read'] / 1e9:,.1f} GB"
    lines.append(f"  bytes read {read}, written {est['s3_bytes_written'] / 1e9:,.1f} GB")
    lines += [f"  warning: {w}" for w in est["warnings"]]
    return "\n".join(lines)
