"""Relabel: local labels -> final anomaly ids, written to the durable Zarr dataset."""

from __future__ import annotations

from tos2ca_batch.config import Config
from tos2ca_batch.stages.common import JobPlan


def run(cfg: Config, job_id: int, chunk: int) -> None:
    store = cfg.store(job_id)
    lay = JobPlan.load(store).layout
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    lookup = store.get_table("reduce", chunk, "lookup")
    off, ids = lookup["offsets"], lookup["ids"]
    region = (r0, r1, c0, c1)
    for k, s in enumerate(range(t0, t1)):
        labels = store.read_tile("labels", chunk, s, region)
        store.write_ids(s, region, ids[off[k] : off[k + 1]][labels])
