"""Map: read and binarize a chunk (plus the step before it), label, record tables and pixels."""

from __future__ import annotations

import numpy as np
import shapely.wkt

from kernels.binarize import binarize, polygon_mask
from kernels.blockmap import BlockMapper
from tos2ca_batch.config import Config
from tos2ca_batch.readers import StepReader
from tos2ca_batch.stages import stats
from tos2ca_batch.stages.common import JobPlan


def run(cfg: Config, job_id: int, chunk: int) -> None:
    store = cfg.store(job_id)
    plan = JobPlan.load(store)
    meta, lay = plan.meta, plan.layout
    t0, t1, r0, r1, c0, c1 = lay.chunk(chunk)
    tile = lay.tile_of(chunk)
    rows, cols = plan.src_rows[r0:r1], plan.src_cols[c0:c1]
    inside = None
    if meta["polygon"]:
        inside = polygon_mask(plan.lat[r0:r1], plan.lon[c0:c1], shapely.wkt.loads(meta["polygon"]))
    mean = std = None
    if meta["operator"] == "anomalyEvent":
        mean, std = stats.tile_mean_std(cfg, job_id, plan, tile)
    times = plan.times()

    def mask_of(values: np.ndarray) -> np.ndarray:
        m = binarize(values, meta["operator"], meta["value"], mean, std)
        return m & inside if inside is not None else m

    trk = meta["tracking"]
    mapper = BlockMapper(r0, c0, lay.width, trk["connectivity"], pieces=trk.get("overlap_fraction") == "tos2ca")
    with StepReader(meta["entry"], meta["variable"], plan.source_grid) as reader:
        if t0 > 0:
            mapper.add_halo(mask_of(reader.read(times[t0 - 1], rows, cols)))
        for s in range(t0, t1):
            values = reader.read(times[s], rows, cols)
            mask = mask_of(values)
            labels = mapper.add(s, mask, values)
            store.write_tile("labels", chunk, s, (r0, r1, c0, c1), labels)
            store.write_tile("values", chunk, s, (r0, r1, c0, c1), np.where(mask, values, np.float32(np.nan)))
    tables = mapper.tables()
    for name in ("components", "overlaps", "pieces"):
        if name in tables:
            t = tables[name]
            t["tile"] = np.full(t["step"].size, tile, np.int32)
            store.put_table("map", chunk, name, t)
    store.put_table("map", chunk, "strips", tables["strips"])
    if "piece_strips" in tables:
        store.put_table("map", chunk, "piece_strips", tables["piece_strips"])
