"""The stored plan of a job, as every stage reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from tos2ca_batch.algorithm import Layout, publish_layout, stats_layout, unwrapped_lon
from tos2ca_batch.stages.registry import STAGES, stages_of
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.timeutil import from_ts

PHDEF_PRODUCTS = ("masks", "toc", "hierarchy", "geojson", "plots", "tracks", "ids")
CURATION_PRODUCTS = ("curated", "interpolated", "hierarchy", "stats", "anomaly-plots")
CURATION_DEFAULT = ("curated", "interpolated", "hierarchy", "stats")


class OutputsMissing(RuntimeError):
    """Finalize found a promised output absent or without its ``outputs`` row: the job fails."""


def verify_outputs(db, outputs, job_id: int, names: list[str]) -> None:
    """Every promised file exists where it was written and has its ``outputs`` row; a job with
    nothing promised is refused too, so "complete with no outputs" cannot happen."""
    if not names:
        raise OutputsMissing("the plan promises no outputs")
    rows = {r["location"] for r in db.outputs(job_id)}
    absent = [n for n in names if not outputs.exists(n)]
    unrecorded = [n for n in names if outputs.location(n) not in rows]
    if absent or unrecorded:
        shown = ", ".join((absent + unrecorded)[:5])
        raise OutputsMissing(f"{len(absent)} promised outputs missing and {len(unrecorded)} without an outputs row "
                             f"under {outputs.prefix} (e.g. {shown})")


@dataclass
class JobPlan:
    meta: dict
    lat: np.ndarray
    lon: np.ndarray
    src_rows: np.ndarray
    src_cols: np.ndarray
    source_grid: tuple[np.ndarray, np.ndarray] | None = None
    """The input files' own lat/lon (as stored): every file the job reads must carry it."""

    @classmethod
    def load(cls, store: ChunkStore) -> JobPlan:
        meta = store.get_json("plan")
        g = store.get_table("plan", 0, "grid")
        source = (g["src_lat"], g["src_lon"]) if "src_lat" in g else None
        return cls(meta, g["lat"], g["lon"], g["src_rows"], g["src_cols"], source)

    @property
    def layout(self) -> Layout:
        return Layout(**self.meta["layout"])

    @property
    def timestamps(self) -> list[str]:
        return self.meta["timestamps"]

    def times(self) -> list[datetime]:
        return [from_ts(t) for t in self.timestamps]

    def stage_layout(self, stage: str) -> Layout:
        if stage == "stats":
            return stats_layout(len(self.meta["stats_timestamps"]), self.layout)
        if stage == "publish":
            return publish_layout(self.layout)
        return self.layout

    def stage_chunks(self, stage: str) -> int:
        if STAGES[stage].single:
            return 1
        return self.stage_layout(stage).n_chunks

    def stages(self) -> list[str]:
        return stages_of(self.meta)

    def centroids(self, table: dict, idx) -> tuple[np.ndarray, np.ndarray]:
        """Centroid latitude and unwrapped longitude of components ``idx`` of a reduce table.

        On a global grid a component straddling the wrap uses the half-rotated column sum.
        """
        area = table["area"][idx]
        crow = table["sum_row"][idx] / area
        ccol = table["sum_col"][idx] / area
        width = self.lon.size
        if self.meta["wrap"]:
            straddle = (table["min_col"][idx] == 0) & (table["max_col"][idx] == width)
            half = (table["sum_col_half"][idx] / area - width // 2) % width
            ccol = np.where(straddle, half, ccol)
        lon_u = unwrapped_lon(self.lon)
        step = lon_u[-1] - lon_u[-2] if lon_u.size > 1 else 1.0
        lon_ext = np.r_[lon_u, lon_u[-1] + step]
        return (np.interp(crow, np.arange(self.lat.size), self.lat),
                np.interp(ccol, np.arange(lon_ext.size), lon_ext))
