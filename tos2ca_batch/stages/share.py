"""The share stage of a sweep's job whose map others share: copy its map tables (per-chunk
component tables and sparse pixels, small) into the stores of the jobs listed in its plan's
``map_for``, which start at reduce from them. It runs right after map, before this job's own
reduce, and while its map tables are still held (they are released when the job completes).

Copying again what was copied writes the same tables, so a share retried after a lost task
changes nothing."""

from __future__ import annotations

from tos2ca_batch.context import TaskContext


def run(ctx: TaskContext, chunk: int) -> None:
    keys = sorted(k for k in ctx.store.blobs.keys() if k.split(":", 2)[0] == "map" and not k.endswith(":done"))
    for job in ctx.plan.map_for or []:
        target = ctx.other(job).store
        for key in keys:
            namespace, number, name = key.split(":", 2)
            target.put_table(namespace, int(number), name, ctx.store.get_table(namespace, int(number), name))
