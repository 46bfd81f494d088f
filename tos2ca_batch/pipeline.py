"""Every stage in one table: its code, how many chunks it has, what comes before it, whether it
finishes the job. ``tasks``, ``runner``, the planner, the CLI and ``aws submit`` all read it.

Stage code is named, not imported, so reading the table costs nothing; :func:`stage_function`
imports a stage when a task runs it. A stage module's ``run(ctx, chunk)`` takes a
:class:`~tos2ca_batch.context.TaskContext` and the chunk index.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # tos2ca_batch.stages.<module>.run(ctx, chunk)
    single: bool  # one chunk over the whole job (reduce, finalize), else one per chunk of its layout
    completes_job: bool  # its (single) chunk is the job's last task
    # Needs only what the stage before it needs, so their tasks run together (one wave: no
    # barrier between them, and no worker idles at the end of the first while the second waits)
    beside_previous: bool = False


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("stats", "stats", False, False),
    Stage("map", "label", False, False),
    Stage("share", "share", True, False),  # a sweep: copy the map tables to the jobs that share them
    Stage("reduce", "reduce", True, False),
    Stage("relabel", "relabel", False, False),
    Stage("publish", "publish", False, False, beside_previous=True),  # reads the map and reduce, not the ids
    Stage("periods", "periods", False, False),  # masks and ids files per period (long jobs)
    Stage("finalize", "finalize", True, True),
    Stage("commit", "synccommit", True, True),  # a sync's finalize: joins it to the job it extends
    Stage("curate", "curate", False, False),
    Stage("cfinalize", "cfinalize", True, True),
)}
TASK_COMMANDS = ("plan", *STAGES)  # what ``tos2ca-batch task`` takes


# What a complete job keeps in its chunk store (what curation, ``aws status`` and a later
# sync read); every other table, scratch pixel and done marker is released.
KEPT_AFTER_COMPLETION = ("job:0:plan", "plan:0:grid", "plan:0:curation_grid", "reduce:*:components",
                         "job:0:anomalies", "job:0:summary", "job:0:aws", "sync:0:last", "job:0:sync",
                         "reduce:*:events", "tables:0:steps")


def stages_for(kind: str, stats: bool = False, periods: bool = False, sync: bool = False,
               shared_map: bool = False, shares: bool = False) -> list[str]:
    """The stages of a job of ``kind`` (``phdef`` or ``curation``), in order; ``stats``: its
    operator needs a statistic of a baseline period; ``periods``: the job's masks and ids files
    are written per period, in parallel, before finalize; ``sync``: a sync of a PhDef job, which
    ends by committing to it instead; ``shared_map``: a sweep's job whose map (same binarization)
    another job of the sweep made, so it starts at reduce; ``shares``: a sweep's job whose map
    others share, which copies its map tables to them (``share``) before it goes on."""
    if kind == "curation":
        return ["curate", "cfinalize"]
    head = [] if shared_map else (["stats"] if stats else []) + ["map"] + (["share"] if shares else [])
    if sync:
        return head + ["reduce", "relabel", "publish", "commit"]
    return head + ["reduce", "relabel", "publish"] + (["periods"] if periods else []) + ["finalize"]


def waves(order: list[str]) -> list[list[str]]:
    """A job's stages (``order``) in the groups that run together: a stage ``beside_previous``
    joins the wave of the stage before it; each wave starts when every earlier one is complete."""
    out: list[list[str]] = []
    for stage in order:
        if out and STAGES[stage].beside_previous:
            out[-1].append(stage)
        else:
            out.append([stage])
    return out


def predecessors(order: list[str], stage: str) -> list[str]:
    """The stages of ``order`` (a job's stages) that must be complete before ``stage`` may run:
    those of the waves before its own."""
    if stage not in order:
        raise ValueError(f"this job has no {stage} stage; its stages are {', '.join(order)}")
    earlier: list[str] = []
    for wave in waves(order):
        if stage in wave:
            break
        earlier += wave
    return earlier


def stage_function(stage: str) -> Callable[..., None]:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
    return importlib.import_module(f"tos2ca_batch.stages.{STAGES[stage].module}").run
