"""Relabel: local labels -> final anomaly ids, written to the durable Zarr dataset."""

from __future__ import annotations

from tos2ca_batch.context import TaskContext


def run(ctx: TaskContext, chunk: int) -> None:
    store = ctx.store
    t0, t1, r0, r1, c0, c1 = ctx.plan.layout.chunk(chunk)
    lookup = store.get_table("reduce", chunk, "lookup")
    off, ids = lookup["offsets"], lookup["ids"]
    region = (r0, r1, c0, c1)
    for k, s in enumerate(range(t0, t1)):
        labels = store.read_tile("labels", s, region)
        store.write_ids(s, region, ids[off[k] : off[k + 1]][labels])
