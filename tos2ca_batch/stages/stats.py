"""Stats (anomalyEvent only): per-pixel count/mean/M2 partials over canonical time blocks.

The partition is fixed (``algorithm.STATS_BLOCK`` steps) and partials are merged in block
order (``common.tile_mean_std``), so mean and std are bit-identical for every job chunking.
"""

from __future__ import annotations

from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels import stats as moments
from tos2ca_batch.readers import StepReader
from tos2ca_batch.timeutil import from_ts


def run(ctx: TaskContext, chunk: int) -> None:
    plan, grid = ctx.plan, ctx.plan.grid
    lay = plan.stage_layout("stats")
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    acc = moments.empty_moments((r1 - r0, c1 - c0))
    stamps = plan.stage_timestamps("stats")
    with StepReader(plan.entry, plan.variable, grid.source) as reader:
        for s in range(t0, t1):
            moments.accumulate(acc, reader.read(from_ts(stamps[s]), grid.src_rows[r0:r1], grid.src_cols[c0:c1]))
    ctx.store.put_table("stats", chunk, "moments", acc)
