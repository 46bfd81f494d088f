"""Periods (jobs over ``TOS2CA_PERIOD_STEPS`` steps): one period's masks and ids files.

A multi-year job's single masks file would hold hundreds of thousands of groups and its ids file
terabytes, written by one task at the end. Instead each period (a month, or a day) is a chunk of
this stage, run in parallel: ``J-ForTraCC-Mask-Output-<period>.nc4`` and
``J-anomaly-ids-<period>.nc4`` hold the period's steps exactly as the one-file products would
(ids are the job's, global). Finalize lists them in ``J-ForTraCC-Products.json``.
"""

from __future__ import annotations

import tempfile

from tos2ca_batch.context import TaskContext
from tos2ca_batch.stages.common import StepChunks
from tos2ca_batch.stages.products import NetCDFFiles, publisher, write_period


def run(ctx: TaskContext, chunk: int) -> None:
    plan, store = ctx.plan, ctx.store
    n = store.get_json("anomalies")["n_anomalies"]
    with tempfile.TemporaryDirectory(dir=ctx.cfg.workdir) as tmp:
        publish = publisher(ctx, tmp, plan.output_job, plan.timestamps[0])
        write_period(plan, chunk, n, StepChunks(store, plan), store.read_ids, publish, NetCDFFiles())
