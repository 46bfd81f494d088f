"""Every stage in one table: its code, how many chunks it has, what comes before it, whether it
finishes the job. ``tasks``, ``runner``, the planner, the CLI and ``aws submit`` all read it.

Stage code is named, not imported, so reading the table costs nothing; :func:`stage_function`
imports a stage when a task runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # tos2ca_batch.stages.<module>.run(cfg, job_id, chunk)
    single: bool  # one chunk over the whole job (reduce, finalize), else one per chunk of its layout
    completes_job: bool  # its (single) chunk is the job's last task


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("stats", "stats", False, False),
    Stage("map", "map", False, False),
    Stage("reduce", "reduce", True, False),
    Stage("relabel", "relabel", False, False),
    Stage("publish", "publish", False, False),
    Stage("finalize", "finalize", True, True),
    Stage("curate", "curate", False, False),
    Stage("cfinalize", "cfinalize", True, True),
)}
TASK_COMMANDS = ("plan", *STAGES)  # what ``tos2ca-batch task`` takes


def stages_of(meta: dict) -> list[str]:
    """The stages of a planned job, in order (from its stored plan document)."""
    if meta.get("kind") == "curation":
        return ["curate", "cfinalize"]
    seq = ["map", "reduce", "relabel", "publish", "finalize"]
    return (["stats"] if meta["operator"] == "anomalyEvent" else []) + seq


def predecessors(meta: dict, stage: str) -> list[str]:
    """The stages that must be complete before ``stage`` of this job may run."""
    order = stages_of(meta)
    if stage not in order:
        raise ValueError(f"this job has no {stage} stage; its stages are {', '.join(order)}")
    return order[: order.index(stage)]


def stage_function(stage: str) -> Callable[..., None]:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
    return importlib.import_module(f"tos2ca_batch.stages.{STAGES[stage].module}").run
