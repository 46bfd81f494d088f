"""Reduce: tables only. Join seams, drop small components, link with ForTraCC, write lookups.

The job is linked in time blocks of whole map blocks, one after the other, each holding about
``TOS2CA_REDUCE_ROWS`` component rows, and stitched into one linking
(:class:`~tos2ca_batch.kernels.tracking.Stitch`): memory follows the rows of one block, not the
job's length, and the ids, tags and events are those of one linking over the whole job. Each
block's components and events are one table (``reduce:<block>:components``, ``...:events``;
``ChunkStore.reduce_table`` joins them)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tos2ca_batch import operators
from tos2ca_batch.algorithm import Layout
from tos2ca_batch.context import TaskContext
from tos2ca_batch.kernels.components import gather_chunk_tables
from tos2ca_batch.kernels.fortracc import LinkStart
from tos2ca_batch.kernels.tracking import Stitch, block_tables, resolve
from tos2ca_batch.plans import Tracking
from tos2ca_batch.stages.common import map_block_tables
from tos2ca_batch.stores.chunkstore import ChunkStore


def run(ctx: TaskContext, chunk: int = 0) -> None:
    plan, store = ctx.plan, ctx.store
    start = store.get_table("sync", 0, "start") if plan.sync_of else None
    rule = operators.get(plan.operator).keeps
    keep = None if rule is None else lambda vmin, vmax: rule(vmin, vmax, plan.threshold, plan.value2)
    reduce_tables(store, plan.layout, plan.tracking, plan.wraps, ctx.cfg.reduce_rows, keep, start)


def reduce_tables(store: ChunkStore, lay: Layout, trk: Tracking, wraps: bool, rows: int, keep=None,
                  start: dict[str, np.ndarray] | None = None) -> None:
    """The reduce over a job's map tables in ``store`` (``lay``: the map's layout): time blocks
    of about ``rows`` component rows linked in turn and stitched; writes each block's
    components and events, each map chunk's lookup and the blocks' steps. ``keep``: the
    operator's component rule; ``start``: a sync's stored last step of the job it extends."""
    stitch, blocks = Stitch(), []

    def write(k: int, finished: tuple[dict, dict]) -> None:
        table, events = finished
        if k == 0 and start is not None:
            table = continued_table(table, start)
        store.put_table("reduce", k, "components", table)
        store.put_table("reduce", k, "events", events)

    for k, (t0, t1, gathered) in enumerate(time_blocks(store, lay, trk.overlap_fraction == "tos2ca", rows)):
        halo = k > 0
        b = block_tables(gathered, t0, t1, halo)
        del gathered
        res = resolve(
            b["components"], b["overlaps"], b["strips"], t1 - t0 + halo, lay.n_tile_rows, lay.n_tile_cols,
            trk.connectivity, wraps, trk.min_size, trk.min_overlap, trk.overlap_fraction, b["pieces"],
            b["piece_strips"] or None, keep=keep, halo=halo,
            start=None if start is None or halo else LinkStart(start["anomaly_id"], start["tag"],
                                                               int(start["n_anomalies"][0])),
        )
        del b
        node_ids, finished = stitch.add(res, t0 - halo, halo)
        if finished is not None:
            write(k - 1, finished)
        for c in chunks_of_steps(lay, t0, t1):
            c0, c1 = lay.chunk(c)[:2]
            steps = slice(c0 - t0 + halo, c1 - t0 + halo)
            tile = lay.tile_of(c)
            bases, counts = res.node_base[steps, tile], res.node_count[steps, tile]
            ids = np.concatenate([np.r_[0, node_ids[a:a + n]] for a, n in zip(bases, counts)]).astype(np.int32)
            offsets = np.r_[0, np.cumsum(counts + 1)].astype(np.int64)
            store.put_table("reduce", c, "lookup", {"offsets": offsets, "ids": ids})
        blocks.append((t0, t1))
    write(len(blocks) - 1, stitch.finish())
    store.put_reduce_blocks(blocks, stitch.n_anomalies)


def chunks_of_steps(lay: Layout, t0: int, t1: int) -> range:
    """The map chunks of the map blocks making steps ``t0:t1`` (block-major: one range)."""
    return range((t0 // lay.block_steps) * lay.n_tiles, -(-t1 // lay.block_steps) * lay.n_tiles)


def time_blocks(store: ChunkStore, lay: Layout, with_pieces: bool, rows: int) -> Iterator[tuple[int, int, dict]]:
    """``(t0, t1, tables)`` of each time block the reduce links at once: whole map blocks, as
    many as hold ``rows`` component rows or more (at least one); ``tables`` are those blocks'
    and the map block's before them (its last step is the block's halo step), gathered
    (``gather_chunk_tables``). Each map block is read once."""
    halo: list = []
    group: list = []
    first = n_rows = 0
    for mb in range(lay.n_blocks):
        tables = map_block_tables(store, lay, with_pieces, mb)
        if not group:
            first = mb
        group.append(tables)
        n_rows += sum(int(t["components"]["step"].size) for _, _, t in tables)
        if n_rows >= rows or mb == lay.n_blocks - 1:
            chunks = [c for block in [halo, *group] for c in block]  # ascending chunk order
            yield lay.block(first)[0], lay.block(mb)[1], gather_chunk_tables(chunks, with_pieces)
            halo, group, n_rows = group[-1], [], 0


def continued_table(table: dict[str, np.ndarray], start: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A sync's components: step 0's rows are the job's stored last-step rows (their values as the
    job read them), with the tags this linking gave them."""
    first = np.flatnonzero(table["step"] == 0)
    if first.size != start["area"].size or not np.array_equal(table["area"][first], start["area"]):
        raise ValueError("the job's stored last step does not match the sync's step 0 (state of another version?)")
    out = {k: v.copy() for k, v in table.items()}
    for k in out:
        if k not in ("step", "tag", "anomaly_id"):
            out[k][first] = start[k]
    return out
