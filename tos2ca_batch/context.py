"""What a task works with, opened once per task: the jobs DB, the job's chunk store, its plan
and its output location. Stages take a :class:`TaskContext` and never build these themselves,
so a stage does not know which backend, process or configuration runs it."""

from __future__ import annotations

from functools import cached_property

from tos2ca_batch.config import Config
from tos2ca_batch.plans import Plan, PlanMissing, load_plan
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.stores.jobsdb import JobsDB
from tos2ca_batch.stores.objectstore import OutputStore


class TaskContext:
    def __init__(self, cfg: Config, job_id: int):
        self.cfg = cfg
        self.job_id = job_id

    @cached_property
    def db(self) -> JobsDB:
        return self.cfg.db()

    @cached_property
    def store(self) -> ChunkStore:
        return self.cfg.store(self.job_id)

    @cached_property
    def plan(self) -> Plan:
        """The job's stored plan, read once (``PlanMissing`` when the store holds none: not planned
        yet, or the store lost it, e.g. Redis emptied; the message says how to finish the job)."""
        try:
            return load_plan(self.store)
        except PlanMissing:
            raise PlanMissing(f"the chunk store holds no plan of job {self.job_id} (not planned, or emptied or "
                              f"expired?); finish it with: tos2ca-batch resume {self.job_id}") from None

    @cached_property
    def outputs(self) -> OutputStore:
        return self.cfg.outputs(self.job_id, self.plan.output_prefix)

    def other(self, job_id: int) -> TaskContext:
        """The context of another job (curation reads its PhDef job's ids and plan)."""
        return TaskContext(self.cfg, job_id)
