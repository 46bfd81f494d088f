"""Stats: the per-pixel statistic of a baseline period an operator needs.

``moments`` (anomalyEvent): count/mean/M2 partials over canonical time blocks
(``algorithm.STATS_BLOCK`` steps), merged in block order (``common.tile_baseline``), so mean
and std are bit-identical for every job chunking. ``percentile``: each task reads every
baseline step of a band of rows (``algorithm.percentile_layout``) and keeps each pixel's
percentile, which depends on that pixel's samples alone.
"""

from __future__ import annotations

import numpy as np

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels import stats as moments
from tos2ca_batch.readers import StepReader
from tos2ca_batch.timeutil import from_ts


def run(ctx: TaskContext, chunk: int) -> None:
    plan, grid = ctx.plan, ctx.plan.grid
    lay = plan.stage_layout("stats")
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    stamps = plan.stage_timestamps("stats")
    rows, cols = grid.src_rows[r0:r1], grid.src_cols[c0:c1]
    with StepReader(plan.entry, plan.variable, grid.source) as reader:
        if plan.baseline_statistic == "percentile":
            samples = np.empty((t1 - t0, r1 - r0, c1 - c0), np.float64)
            for k, s in enumerate(range(t0, t1)):
                samples[k] = reader.read(from_ts(stamps[s]), rows, cols)
            ctx.store.put_table("stats", chunk, "percentile",
                                {"value": moments.nan_percentile(samples, plan.threshold)})
            return
        acc = moments.empty_moments((r1 - r0, c1 - c0))
        for s in range(t0, t1):
            moments.accumulate(acc, reader.read(from_ts(stamps[s]), rows, cols))
    ctx.store.put_table("stats", chunk, "moments", acc)
