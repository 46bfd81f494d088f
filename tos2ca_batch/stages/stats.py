"""Stats (anomalyEvent only): per-pixel count/mean/M2 partials over canonical time blocks.

The partition is fixed (``algorithm.STATS_BLOCK`` steps) and partials are merged in block
order, so mean and std are bit-identical for every job chunking.
"""

from __future__ import annotations

import numpy as np

from kernels import stats as moments
from tos2ca_batch.config import Config
from tos2ca_batch.readers import StepReader
from tos2ca_batch.stages.common import JobPlan
from tos2ca_batch.timeutil import from_ts


def run(cfg: Config, job_id: int, chunk: int) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    lay = plan.stage_layout("stats")
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    acc = moments.empty_moments((r1 - r0, c1 - c0))
    stamps = plan.meta["stats_timestamps"]
    with StepReader(plan.meta["entry"], plan.meta["variable"], plan.source_grid) as reader:
        for s in range(t0, t1):
            moments.accumulate(acc, reader.read(from_ts(stamps[s]), plan.src_rows[r0:r1], plan.src_cols[c0:c1]))
    store.put_table("stats", chunk, "moments", acc)


def tile_mean_std(cfg: Config, job_id: int, plan: JobPlan, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge a tile's partials in block order into per-pixel mean and std."""
    store = cfg.store(job_id)
    lay = plan.stage_layout("stats")
    total = None
    for b in range(lay.n_blocks):
        part = store.get_table("stats", b * lay.n_tiles + tile, "moments")
        total = part if total is None else moments.merge(total, part)
    return moments.mean_std(total)
