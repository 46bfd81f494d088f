"""Sweep: one spec over a grid of settings, sharing the work that settings share.

Combinations with the same binarization (every setting but ``tracking.min_size`` and
``tracking.min_overlap``, which only the reduce reads) share one map: the first of them, its
*lead*, reads and labels the files; every other starts at reduce from a copy of the lead's map
tables (per-chunk component tables and sparse pixels, small), so each input file is read once
per distinct binarization. Each combination is a job of its own (its row, its chunks, its
outputs in a sub-folder of the sweep's named ``key=value,...``), run by the usual runner on
the backend given, so its outputs are those of a separate job with its spec, byte for byte.

The sweep itself is a row (stage ``sweep``) whose outputs are the table of combinations with
their scores against a truth file (``score``) or, without one, their counts, lifetimes and
areas (``S-sweep.csv``/``.json``) and a heat map (``S-sweep.png``).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import itertools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tos2ca_batch import lifecycle
from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.plans import PhDefPlan, Tracking
from tos2ca_batch.runner import Interrupted, execute, result
from tos2ca_batch.spec import validate
from tos2ca_batch.stores.jobsdb import now_iso
from tos2ca_batch.stores.objectstore import claim_output_prefix

SWEEPABLE = ("value", "value2", "operator", "tracking.connectivity", "tracking.min_size", "tracking.min_overlap",
             "tracking.overlap_fraction")
REDUCE_ONLY = ("tracking.min_size", "tracking.min_overlap")
"""Settings only the reduce reads: combinations differing in these alone share one map."""


@dataclass(frozen=True)
class Combination:
    settings: dict
    """The swept settings, ``{key: value}`` in the grid's order."""
    spec: dict

    @property
    def name(self) -> str:
        """Its sub-folder: ``value=10,min_size=50,min_overlap=0.25``."""
        return ",".join(f"{k.split('.')[-1]}={v}" for k, v in self.settings.items())

    @property
    def binarization(self) -> str:
        """What decides its map: the spec without the reduce-only settings."""
        spec = copy.deepcopy(self.spec)
        for key in REDUCE_ONLY:
            (spec.get("tracking") or {}).pop(key.split(".")[1], None)
        return json.dumps(spec, sort_keys=True)


def _spec_doc(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "products"}


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["value=5,10,20", "tracking.min_size=50,150"]`` as ``{key: [values]}`` (numbers as
    numbers); SpecError ``grid`` for a key that cannot be swept, a repeated key or no values."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise SpecError("grid", f"{item!r} must be KEY=V1,V2,... (e.g. value=5,10,20)")
        if key not in SWEEPABLE:
            raise SpecError("grid", f"{key!r} cannot be swept; allowed: {', '.join(SWEEPABLE)}")
        if key in grid:
            raise SpecError("grid", f"{key} is given twice")
        values = [_value(v.strip()) for v in text.split(",")]
        if len(set(map(json.dumps, values))) != len(values):
            raise SpecError("grid", f"{key} repeats a value: {text}")
        grid[key] = values
    if not grid:
        raise SpecError("grid", "give at least one --grid KEY=V1,V2,...")
    return grid


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # e.g. an operator's name


def combinations(raw: dict, grid: dict[str, list], catalog) -> list[Combination]:
    """Every combination of the grid applied to ``raw``, each validated (a SpecError names the
    combination and the field) before any work starts."""
    out = []
    for values in itertools.product(*grid.values()):
        spec = copy.deepcopy(raw)
        settings = dict(zip(grid, values))
        for key, value in settings.items():
            if key.startswith("tracking."):
                spec["tracking"] = dict(spec.get("tracking") or {}, **{key.split(".")[1]: value})
            else:
                spec[key] = value
        combo = Combination(settings, spec)
        try:
            validate(_spec_doc(spec), catalog)
        except SpecError as exc:
            raise SpecError(exc.field, f"in combination {combo.name}: {str(exc).split(': ', 1)[1]}") from None
        out.append(combo)
    return out


def plan_shared_map(cfg: Config, lead: int, job_id: int, tracking: dict, output_base: str) -> PhDefPlan:
    """Plan job ``job_id`` as job ``lead``'s plan with other reduce-only tracking settings,
    starting from a copy of ``lead``'s map tables (taken while ``lead`` still holds them)."""
    source = TaskContext(cfg, lead)
    ctx = TaskContext(cfg, job_id)
    base = source.plan
    store = ctx.store
    plan = dataclasses.replace(
        base, job_id=job_id, job_uid=store.identity, tracking=Tracking(**tracking), map_of=lead,
        output_prefix=claim_output_prefix(output_base, store.identity))
    for key in source.store.blobs.keys():
        namespace, chunk, name = key.split(":", 2)
        if namespace == "map" and name != "done":
            store.put_table(namespace, int(chunk), name, source.store.get_table(namespace, int(chunk), name))
    plan.save(store)
    lay = plan.layout
    store.create_arrays((lay.n_steps, lay.height, lay.width), (lay.tile_h, lay.tile_w),
                        {"lat": plan.grid.lat, "lon": plan.grid.lon, "times": plan.times(), "units": plan.units,
                         "long_name": plan.long_name, "variable": plan.variable, "time_step": plan.entry.time_step})
    for stage in plan.stages():
        ctx.db.add_chunks(job_id, stage, plan.stage_ranges(stage))
    ctx.db.update_job(job_id, nChunks=lay.n_chunks)
    return plan


def _plan_lead(cfg: Config, job_id: int, spec: dict, output_base: str) -> str | None:
    """Plan a lead job into its sub-folder; the reason if it is refused (the job then failed)."""
    from tos2ca_batch.stages.plan import make_plan

    catalog = cfg.catalog()
    try:
        make_plan(TaskContext(cfg, job_id), validate(_spec_doc(spec), catalog),
                  catalog, products=spec.get("products"), output_base=output_base)
    except Exception as exc:  # refused by the data (SpecError) or unreadable: the job fails, the sweep goes on
        message = str(exc) if isinstance(exc, SpecError) else f"plan: {type(exc).__name__}: {exc}"
        lifecycle.fail(cfg, job_id, message)
        return message
    return None


def sweep(cfg: Config, raw: dict, grid: dict[str, list], backend: Backend, truth: str | None = None,
          report=print) -> dict:
    """Run every combination of ``grid`` over ``raw``; returns the sweep's id, rows and outputs."""
    combos = combinations(raw, grid, cfg.catalog())
    if truth is not None:
        try:
            json.loads(Path(truth).read_text())
        except (OSError, ValueError) as exc:
            raise SpecError("truth", f"cannot read {truth} as a truth file ({exc})") from None
    db = cfg.db()
    sweep_id = db.create_job(dict(raw, stage="sweep", grid=grid), status="running")
    store = cfg.store(sweep_id)
    prefix = claim_output_prefix(cfg.output_base(sweep_id), store.identity)
    groups: dict[str, list[Combination]] = {}
    for combo in combos:
        groups.setdefault(combo.binarization, []).append(combo)
    report(f"sweep {sweep_id}: {len(combos)} combinations, {len(groups)} distinct binarizations (one map each); "
           f"outputs under {prefix}")
    jobs: dict[str, int] = {}
    manifest = {"grid": grid, "truth": truth, "prefix": prefix, "combinations": []}
    try:  # the sweep's row is held like a job's: if this process dies, resume or a worker ends it failed
        with lifecycle.job_lease(cfg, sweep_id, lifecycle.worker_name()):
            interrupted = _run_groups(cfg, backend, list(groups.values()), prefix, jobs, manifest, store, report)
            if not interrupted:
                rows = [_row(cfg, jobs[c.name], c, truth) for c in combos]
                outputs = _write(cfg, sweep_id, prefix, grid, rows, truth is not None)
    except BaseException as exc:  # a service error or a signal between jobs: the sweep ends with the reason
        db.transition(sweep_id, "cancelled" if isinstance(exc, Interrupted) else "failed", ("running",),
                      message=f"{type(exc).__name__}: {exc}"[:4000], leaseUntil=None)
        raise
    if interrupted:
        message = (f"interrupted by {interrupted} after {len(jobs)} of {len(combos)} combinations were started; "
                   f"their jobs resume with tos2ca-batch resume J")
        db.transition(sweep_id, "cancelled", ("running",), message=message, leaseUntil=None)
        report(f"sweep {sweep_id} cancelled: {message}")
        return {"sweep_id": sweep_id, "status": "cancelled", "message": message, "jobs": jobs}
    done = sum(r["status"] == "complete" for r in rows)
    status = "complete" if done == len(rows) else "failed"
    message = f"{done} of {len(rows)} combinations complete; outputs under {prefix}"
    db.transition(sweep_id, status, ("running",), phase="done", message=message, leaseUntil=None)
    report(f"sweep {sweep_id} {status}: {message}")
    return {"sweep_id": sweep_id, "status": status, "message": message, "rows": rows, "outputs": outputs}


def _run_groups(cfg: Config, backend: Backend, groups: list[list[Combination]], prefix: str, jobs: dict,
                manifest: dict, store, report) -> str | None:
    """Each group: its lead's map, then its followers planned from it, then every job to the
    end. Returns what interrupted a job, if a signal did (the sweep stops there)."""
    db = cfg.db()

    def started(combo: Combination, job: int, map_of: int | None) -> None:
        jobs[combo.name] = job
        manifest["combinations"].append({"name": combo.name, "settings": combo.settings, "job": job,
                                         "map_of": map_of})
        store.put_json("sweep", manifest)

    for lead, *rest in groups:
        lead_id = db.create_job(lead.spec, status="running")
        started(lead, lead_id, None)
        refused = _plan_lead(cfg, lead_id, lead.spec, f"{prefix}/{lead.name}")
        first = execute(cfg, lead_id, backend, through="map") if refused is None else {}
        if first.get("interrupted"):
            return first["interrupted"]
        mapped = first.get("status") == "running"
        followers = []
        for combo in rest:
            job = db.create_job(combo.spec, status="running")
            started(combo, job, lead_id)
            if not mapped:
                lifecycle.fail(cfg, job, f"the map it shares, job {lead_id}'s, did not complete: "
                                         f"{db.get_job(lead_id)['message']}")
                continue
            tracking = validate(_spec_doc(combo.spec), cfg.catalog()).tracking
            plan_shared_map(cfg, lead_id, job, tracking, f"{prefix}/{combo.name}")
            followers.append(job)
        for job in ([lead_id] if mapped else []) + followers:
            res = execute(cfg, job, backend)
            report(f"  job {job} {res['status']}: {_name_of(jobs, job)}"
                   + (f" ({res['message']})" if res["status"] != "complete" else ""))
            if res.get("interrupted"):
                return res["interrupted"]
    return None


def _name_of(jobs: dict[str, int], job: int) -> str:
    return next(name for name, j in jobs.items() if j == job)


METRICS_WITH_TRUTH = ("pixel_csi", "pixel_pod", "pixel_far", "hits", "misses", "false_alarms", "mota", "idf1",
                      "id_switches", "fragmentations", "merge_recall", "split_recall")
METRICS = ("n_anomalies", "mean_lifetime_steps", "mean_area_px", "max_area_px", "merges", "splits")


def _row(cfg: Config, job: int, combo: Combination, truth: str | None) -> dict:
    row = result(cfg, job)
    out = {**combo.settings, "combination": combo.name, "job_id": job, "status": row["status"],
           "outputs": str(Path(row["outputs"][0]).parent) if row["outputs"] else None}
    if row["status"] != "complete":
        return dict(out, message=row["message"])
    from tos2ca_batch.kernels.fortracc import MERGE, SPLIT, TAGS

    table = cfg.store(job).get_table("reduce", 0, "components")
    ids, counts = np.unique(table["anomaly_id"], return_counts=True)
    out.update(n_anomalies=int(ids.size), mean_lifetime_steps=round(float(counts.mean()), 4) if ids.size else 0.0,
               mean_area_px=round(float(table["area"].mean()), 4) if table["area"].size else 0.0,
               max_area_px=int(table["area"].max()) if table["area"].size else 0,
               merges=int(np.sum(table["tag"] == TAGS.index(MERGE))),
               splits=int(np.sum(table["tag"] == TAGS.index(SPLIT))))
    if truth is not None:
        from tos2ca_batch.score import score_job

        s = score_job(cfg, job, truth)
        events = s.get("events", {})
        out.update(pixel_csi=s["pixels"]["csi"], pixel_pod=s["pixels"]["pod"], pixel_far=s["pixels"]["far"],
                   **{k: s["objects"][k] for k in ("hits", "misses", "false_alarms")},
                   **{k: s["tracking"][k] for k in ("mota", "idf1", "id_switches", "fragmentations")},
                   merge_recall=(events.get("merge") or {}).get("recall"),
                   split_recall=(events.get("split") or {}).get("recall"))
    return out


def _write(cfg: Config, sweep_id: int, prefix: str, grid: dict[str, list], rows: list[dict],
           scored: bool) -> list[str]:
    """``S-sweep.csv``, ``S-sweep.json`` and ``S-sweep.png`` under the sweep's folder (recorded)."""
    outputs = cfg.outputs(sweep_id, prefix)
    columns = [*grid, "combination", "job_id", "status", *(METRICS_WITH_TRUTH if scored else ()), *METRICS,
               "outputs"]
    written = []
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        paths = {name: Path(tmp) / f"{sweep_id}-sweep.{name}" for name in ("csv", "json", "png")}
        with open(paths["csv"], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        paths["json"].write_text(json.dumps({"sweep_id": sweep_id, "grid": grid, "rows": rows}, indent=1))
        heat_map(rows, grid, ("pixel_csi", "idf1") if scored else ("n_anomalies", "mean_lifetime_steps"),
                 paths["png"], f"sweep {sweep_id}")
        for kind, path in paths.items():
            location = outputs.put(path, path.name)
            cfg.db().add_output(sweep_id, location, f"sweep-{kind}", now_iso())
            written.append(location)
    return written


def heat_map(rows: list[dict], grid: dict[str, list], metrics: tuple[str, ...], path: Path, title: str) -> None:
    """Each of ``metrics`` (a row of panels) over the last two swept settings (cells), one panel
    per value of the others, each cell labelled with its value; failed combinations are blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(grid)
    x_key = keys[-1]
    y_key = keys[-2] if len(keys) > 1 else None
    panel_keys = keys[:-2]
    panels = list(itertools.product(*(grid[k] for k in panel_keys))) or [()]
    ys = grid[y_key] if y_key else [None]
    width = 1.6 + (0.8 * len(grid[x_key]) + 0.9) * len(panels)
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(width, 0.6 + (1.2 + 0.45 * len(ys)) * len(metrics)),
                             squeeze=False, dpi=100, layout="constrained")
    for m, metric in enumerate(metrics):
        values = [r[metric] for r in rows if r.get(metric) is not None]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1
        image = None
        for p, panel in enumerate(panels):
            ax = axes[m][p]
            cells = np.full((len(ys), len(grid[x_key])), np.nan)
            for r in rows:
                if all(r[k] == v for k, v in zip(panel_keys, panel)) and r.get(metric) is not None:
                    cells[ys.index(r[y_key]) if y_key else 0, grid[x_key].index(r[x_key])] = r[metric]
            image = ax.imshow(cells, cmap="viridis", vmin=lo, vmax=hi, aspect="auto", origin="lower")
            for (i, j), v in np.ndenumerate(cells):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                            color="white" if v < (lo + hi) / 2 else "black")
            ax.set_xticks(range(len(grid[x_key])), [str(v) for v in grid[x_key]], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(v) for v in ys] if y_key else [""], fontsize=8)
            if m == len(metrics) - 1:
                ax.set_xlabel(x_key, fontsize=8)
            if p == 0 and y_key:
                ax.set_ylabel(y_key, fontsize=8)
            ax.set_title(", ".join(f"{k}={v}" for k, v in zip(panel_keys, panel)) or metric, fontsize=9)
        fig.colorbar(image, ax=list(axes[m]), shrink=0.9, label=metric)
    fig.suptitle(f"{title}: {', '.join(metrics)}", fontsize=10)
    fig.savefig(path)
    plt.close(fig)
