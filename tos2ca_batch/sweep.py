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
areas (``S-sweep.csv``/``.json``) and a heat map (``S-sweep.png``), written by whoever ends its
last combination (``sweep_table``).

Every combination's job is made and planned before any runs (:func:`prepare`): a lead's plan
lists the jobs that share its map (``map_for``; its ``share`` stage copies its map tables to
them right after its map), a follower's plan is the lead's with its own tracking settings and
``map_of`` (its first stage waits for the lead's share). So the same plans run here, one job
after another on a local or MPI backend (:func:`sweep`), or at once as chains of AWS Batch array
jobs where a follower's reduce depends on its lead's share (:func:`submit_aws`); and an
interrupted sweep is finished by resuming what did not end (:func:`resume_sweep`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from tos2ca_batch import lifecycle, sweep_table
from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.context import TaskContext
from tos2ca_batch.errors import SpecError
from tos2ca_batch.plans import PhDefPlan, Tracking
from tos2ca_batch.runner import Interrupted, execute
from tos2ca_batch.spec import validate
from tos2ca_batch.stages.common import create_ids_dataset
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


def plan_follower(cfg: Config, lead: PhDefPlan, job_id: int, tracking: dict, output_base: str) -> PhDefPlan:
    """Plan job ``job_id`` as ``lead``'s plan with other reduce-only tracking settings: it starts at
    reduce from the map tables ``lead``'s share stage copies into its store."""
    ctx = TaskContext(cfg, job_id)
    store = ctx.store
    plan = dataclasses.replace(
        lead, job_id=job_id, job_uid=store.identity, tracking=Tracking(**tracking), map_of=lead.job_id, map_for=None,
        output_prefix=claim_output_prefix(output_base, store.identity))
    plan.save(store)
    lay = plan.layout
    create_ids_dataset(store, plan)  # it has no map stage to make it
    ctx.db.add_stage_chunks(job_id, plan.chunk_ranges())
    ctx.db.update_job(job_id, nChunks=lay.n_chunks)
    return plan


def _plan_lead(cfg: Config, sweep_id: int, job_id: int, spec: dict, output_base: str,
               followers: list[int], map_min_size: int) -> PhDefPlan | str:
    """Plan a lead job into its sub-folder, sharing its map with ``followers``; the reason if it
    is refused (the job then failed)."""
    from tos2ca_batch.stages.plan import make_plan

    catalog = cfg.catalog()
    ctx = TaskContext(cfg, job_id)
    try:
        plan = make_plan(ctx, validate(_spec_doc(spec), catalog), catalog, products=spec.get("products"),
                         output_base=output_base)
    except Exception as exc:  # refused by the data (SpecError) or unreadable: the job fails, the sweep goes on
        message = str(exc) if isinstance(exc, SpecError) else f"plan: {type(exc).__name__}: {exc}"
        lifecycle.fail(cfg, job_id, message)
        return message
    plan = dataclasses.replace(plan, map_for=list(followers) or None, sweep_of=sweep_id, map_min_size=map_min_size)
    plan.save(ctx.store)
    if followers:
        ctx.db.add_chunks(job_id, "share", plan.stage_ranges("share"))
    return plan


def prepare(cfg: Config, raw: dict, grid: dict[str, list], truth: str | None = None, report=print) -> int:
    """Validate every combination, make the sweep's row and every combination's job, list them
    (before any can end) and plan them; returns the sweep's id. Nothing runs yet."""
    combos = combinations(raw, grid, cfg.catalog())
    truth_doc = None
    if truth is not None:
        try:
            truth_doc = json.loads(Path(truth).read_text())
        except (OSError, ValueError) as exc:
            raise SpecError("truth", f"cannot read {truth} as a truth file ({exc})") from None
        truth = str(Path(truth).resolve())
    db = cfg.db()
    sweep_id = db.create_job(dict(raw, stage="sweep", grid=grid), status="running")
    store = cfg.store(sweep_id)
    prefix = claim_output_prefix(cfg.output_base(sweep_id), store.identity)
    groups: dict[str, list[Combination]] = {}
    for combo in combos:
        groups.setdefault(combo.binarization, []).append(combo)
    report(f"sweep {sweep_id}: {len(combos)} combinations, {len(groups)} distinct binarizations (one map each); "
           f"outputs under {prefix}")
    manifest: dict = {"grid": grid, "truth": truth, "prefix": prefix, "combinations": []}
    members: list[list[tuple[Combination, int]]] = []
    for group in groups.values():
        members.append([(combo, db.create_job(combo.spec, status="running")) for combo in group])
        lead = members[-1][0][1]
        manifest["combinations"] += [{"name": c.name, "settings": c.settings, "job": job,
                                      "map_of": None if job == lead else lead} for c, job in members[-1]]
    if truth_doc is not None:  # whoever ends the last combination (an AWS Batch child) scores with it
        store.put_json("truth", truth_doc)
    store.put_json("sweep", manifest)
    db.update_job(sweep_id, phase="plan")
    for group in members:
        (lead, lead_id), rest = group[0], group[1:]
        # Its map keeps what the smallest min_size of the jobs sharing it may keep.
        smallest = min(validate(_spec_doc(c.spec), cfg.catalog()).tracking["min_size"] for c, _ in group)
        planned = _plan_lead(cfg, sweep_id, lead_id, lead.spec, f"{prefix}/{lead.name}", [j for _, j in rest],
                             smallest)
        for combo, job in rest:
            if isinstance(planned, str):
                lifecycle.fail(cfg, job, f"the map it shares, job {lead_id}'s, could not be planned: {planned}")
                continue
            tracking = validate(_spec_doc(combo.spec), cfg.catalog()).tracking
            plan_follower(cfg, planned, job, tracking, f"{prefix}/{combo.name}")
    db.update_job(sweep_id, phase="members")
    return sweep_id


def _members(cfg: Config, sweep_id: int) -> list[dict]:
    return cfg.store(sweep_id).get_json("sweep")["combinations"]


def run_members(cfg: Config, sweep_id: int, backend: Backend, report) -> str | None:
    """Run each combination's job that has not ended, leads before the jobs that share their map.
    Returns what interrupted a job, if a signal did (the sweep stops there)."""
    db = cfg.db()
    for entry in _members(cfg, sweep_id):
        if db.get_job(sweep_id)["status"] != "running":  # cancelled from outside (cancel S)
            return None
        job = entry["job"]
        status = db.get_job(job)["status"]
        if status in ("complete", "failed", "cancelled"):
            continue
        lead = entry["map_of"]
        if lead is not None and not db.stage_complete(lead, "share"):
            lifecycle.fail_unshared(cfg, job, lead)
            continue
        lifecycle.take_over(cfg, job, lifecycle.worker_name())
        res = execute(cfg, job, backend)
        report(f"  job {job} {res['status']}: {entry['name']}"
               + (f" ({res['message']})" if res["status"] != "complete" else ""))
        if res.get("interrupted"):
            return res["interrupted"]
    return None


def _drive(cfg: Config, sweep_id: int, backend: Backend, report) -> dict:
    """Run the sweep's jobs under the sweep's lease, then end it (``sweep_table.finish``)."""
    db = cfg.db()
    try:  # the sweep's row is held like a job's: if this process dies, resume or a worker finishes it
        with lifecycle.job_lease(cfg, sweep_id, lifecycle.worker_name()):
            interrupted = run_members(cfg, sweep_id, backend, report)
            end = None if interrupted else sweep_table.finish(cfg, sweep_id)
    except BaseException as exc:  # a service error or a signal between jobs: the sweep ends with the reason
        db.transition(sweep_id, "cancelled" if isinstance(exc, Interrupted) else "failed", ("running",),
                      message=f"{type(exc).__name__}: {exc}; finish it with: tos2ca-batch resume {sweep_id}"[:4000],
                      leaseUntil=None)
        raise
    if interrupted:
        message = f"interrupted by {interrupted}; finish it with: tos2ca-batch resume {sweep_id}"
        db.transition(sweep_id, "cancelled", ("running",), message=message, leaseUntil=None)
        report(f"sweep {sweep_id} cancelled: {message}")
        return {"sweep_id": sweep_id, "status": "cancelled", "message": message,
                "jobs": {e["name"]: e["job"] for e in _members(cfg, sweep_id)}}
    if end is None:  # every job ran, yet the table is not written: another process holds it
        row = db.get_job(sweep_id)
        return {"sweep_id": sweep_id, "status": row["status"],
                "message": row["message"] or "its table is being written"}
    report(f"sweep {sweep_id} {end['status']}: {end['message']}")
    return {"sweep_id": sweep_id, **end}


def sweep(cfg: Config, raw: dict, grid: dict[str, list], backend: Backend, truth: str | None = None,
          report=print) -> dict:
    """Run every combination of ``grid`` over ``raw``; returns the sweep's id, rows and outputs."""
    sweep_id = prepare(cfg, raw, grid, truth, report)
    return _drive(cfg, sweep_id, backend, report)


def resume_sweep(cfg: Config, sweep_id: int, backend: Backend, report=print) -> dict:
    """Finish a sweep that stopped (its process killed or interrupted, or ended ``failed``): every
    combination that did not complete runs again from where it stopped, then the table is
    written. A sweep interrupted while it was being planned is refused (run it again)."""
    lifecycle.take_over(cfg, sweep_id, lifecycle.worker_name())
    return continue_sweep(cfg, sweep_id, backend, report)


def continue_sweep(cfg: Config, sweep_id: int, backend: Backend, report=print) -> dict:
    """The rest of :func:`resume_sweep`, for a sweep this process already holds (a worker that
    claimed it after its holder's lease lapsed)."""
    db = cfg.db()
    if db.get_job(sweep_id)["phase"] in (None, "plan"):
        message = "it stopped while its combinations were being planned; run the sweep again"
        db.transition(sweep_id, "failed", ("running",), message=message, leaseUntil=None)
        return {"sweep_id": sweep_id, "status": "failed", "message": message}
    db.update_job(sweep_id, phase="members")  # a table writer that died left "table"
    for entry in _members(cfg, sweep_id):  # none counts as ended before it has run again
        lifecycle.reopen(cfg, entry["job"])
    return _drive(cfg, sweep_id, backend, report)


def cancel_sweep(cfg: Config, sweep_id: int, reason: str) -> dict:
    """``cancel S``: the sweep and every combination that has not ended are cancelled (a running
    one stops at its next chunk boundary); ``resume S`` continues them later."""
    db = cfg.db()
    changed = db.transition(sweep_id, "cancelled", ("running", "pending"), message=reason, leaseUntil=None)
    jobs = [e["job"] for e in _members(cfg, sweep_id)] if cfg.store(sweep_id).has_json("sweep") else []
    stopped = [job for job in jobs if lifecycle.cancel(cfg, job, f"sweep {sweep_id} cancelled: {reason}")]
    return {"job_id": sweep_id, "status": db.get_job(sweep_id)["status"], "changed": changed, "cancelled": stopped}


def submit_aws(cfg: Config, raw: dict, grid: dict[str, list], queue: str, job_definition: str,
               truth: str | None = None, report=print) -> dict:
    """``aws sweep``: plan every combination here, then submit each job's chain of Batch jobs; a
    job sharing another's map starts once that job's ``share`` Batch job has run. The last
    combination to end writes the sweep's table (``sweep_table.finish``)."""
    from tos2ca_batch.aws_batch import submit_planned

    sweep_id = prepare(cfg, raw, grid, truth, report)
    db = cfg.db()
    submitted: dict[int, dict] = {}
    jobs = {}
    for entry in _members(cfg, sweep_id):
        job, lead = entry["job"], entry["map_of"]
        if db.get_job(job)["status"] != "running":  # refused at plan
            jobs[entry["name"]] = {"job_id": job, "status": db.get_job(job)["status"]}
            continue
        after = []
        if lead is not None:
            after = submitted[lead]["aws_jobs"]["share"]
            after = [after] if isinstance(after, str) else after
        submitted[job] = submit_planned(cfg, job, queue, job_definition, after=after)
        jobs[entry["name"]] = submitted[job]
    db.update_job(sweep_id, phase="submitted")
    sweep_table.finish(cfg, sweep_id)  # every combination refused at plan: the sweep ends here
    return {"sweep_id": sweep_id, "status": db.get_job(sweep_id)["status"], "jobs": jobs}
