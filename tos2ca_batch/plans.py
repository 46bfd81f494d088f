"""The plan of a job, typed: what the planner decided once and every task reads.

A plan is built in memory by the planner (``stages/plan.py`` for PhDef, ``stages/curate.py``
for curation), saved once into the job's chunk store (a JSON document ``plan`` and the grid
arrays as the table ``plan:0:grid``) and loaded by each task with :func:`load_plan`. The JSON
names are the field names; ``kind`` says which class a stored plan is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import numpy as np

from tos2ca_batch import operators
from tos2ca_batch.algorithm import Layout, cell_edges, percentile_layout, publish_layout, stats_layout, unwrapped_lon
from tos2ca_batch.catalog import CatalogEntry
from tos2ca_batch.pipeline import STAGES, stages_for
from tos2ca_batch.timeutil import from_ts


@dataclass(frozen=True)
class Tracking:
    """How components are joined and followed (the spec's ``tracking``)."""

    connectivity: int
    min_size: int
    min_overlap: float
    overlap_fraction: str = "exact"


@dataclass
class JobGrid:
    """The job's grid (cell centres, lon in -180..180) and where each cell is in the input files."""

    lat: np.ndarray
    """Cell-centre latitude of each job row."""
    lon: np.ndarray
    """Cell-centre longitude of each job column, in -180..180 (a job across the antimeridian
    runs east through the wrap)."""
    src_rows: np.ndarray
    """The input files' row of each job row."""
    src_cols: np.ndarray
    """The input files' column of each job column."""
    source: tuple[np.ndarray, np.ndarray] | None = None
    """The input files' own lat/lon (as stored): every file the job reads must carry them."""

    def to_table(self) -> dict[str, np.ndarray]:
        table = {"lat": self.lat, "lon": self.lon, "src_rows": self.src_rows, "src_cols": self.src_cols}
        if self.source is not None:
            table["src_lat"], table["src_lon"] = self.source
        return table

    @classmethod
    def from_table(cls, t: dict[str, np.ndarray]) -> JobGrid:
        source = (t["src_lat"], t["src_lon"]) if "src_lat" in t else None
        return cls(t["lat"], t["lon"], t["src_rows"], t["src_cols"], source)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latitude edges, unwrapped longitude edges and unwrapped longitude centres."""
        lon_u = unwrapped_lon(self.lon)
        return cell_edges(self.lat), cell_edges(lon_u), lon_u


@dataclass(kw_only=True)
class Plan:
    """What every plan has."""

    kind: ClassVar[str]
    job_id: int
    job_uid: str
    dataset: str
    variable: str
    entry: CatalogEntry
    layout: Layout
    timestamps: list[str]
    """The job's time steps, ``YYYYMMDDhhmm`` (a curation job's are its PhDef job's mask times)."""
    products: list[str]
    units: str
    long_name: str
    output_prefix: str
    """Where the job's files go (claimed by the planner: see ``claim_output_prefix``)."""
    grid: JobGrid

    def times(self) -> list[datetime]:
        return [from_ts(t) for t in self.timestamps]

    def stages(self) -> list[str]:
        return stages_for(self.kind)

    def stage_layout(self, stage: str) -> Layout:
        return self.layout

    def stage_chunks(self, stage: str) -> int:
        return 1 if STAGES[stage].single else self.stage_layout(stage).n_chunks

    def stage_timestamps(self, stage: str) -> list[str]:
        """The time steps ``stage`` works through (the job's, unless a stage has its own)."""
        return self.timestamps

    def stage_ranges(self, stage: str) -> list[tuple[str, str]]:
        """First and last time stamp of each chunk of ``stage`` (for the chunk rows)."""
        stamps = self.stage_timestamps(stage)
        if STAGES[stage].single:
            return [(stamps[0], stamps[-1])]
        lay = self.stage_layout(stage)
        return [(stamps[t0], stamps[t1 - 1]) for t0, t1 in (lay.chunk(c)[:2] for c in range(lay.n_chunks))]

    def chunk_ranges(self) -> dict[str, list[tuple[str, str]]]:
        """:meth:`stage_ranges` of every stage of the job: its chunk rows, stage by stage."""
        return {stage: self.stage_ranges(stage) for stage in self.stages()}

    def to_json(self) -> dict:
        doc = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "grid" or isinstance(value, JobGrid):
                continue
            if isinstance(value, CatalogEntry):
                value = {"name": value.name, **value.to_json()}
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            doc[f.name] = value
        return doc

    def save(self, store) -> None:
        """Write the plan into the job's chunk store (grids first, the document last)."""
        store.put_table("plan", 0, "grid", self.grid.to_table())
        store.put_json("plan", self.to_json())


@dataclass(kw_only=True)
class PhDefPlan(Plan):
    """A phenomenon-definition job: find, join and track where ``variable operator threshold``."""

    kind: ClassVar[str] = "phdef"
    operator: str
    threshold: float
    tracking: Tracking
    wraps: bool
    """The job grid is the whole globe in longitude: its first and last columns are neighbours."""
    bbox: list[float]
    polygon: str | None
    baseline_timestamps: list[str] | None
    """An operator with a baseline statistic (anomalyEvent, percentile): the steps it is of (else None)."""
    software_version: str
    periods: list[list] | None = None
    """Per-period masks and ids files (jobs over ``TOS2CA_PERIOD_STEPS`` steps): ``[first step,
    end step, label]`` of each period (``algorithm.period_ranges``); None: one file each."""
    value2: float | None = None
    """The second threshold of an operator that takes one (hysteresis: the extent's)."""
    plot_range: list[float] | None = None
    """The colour scale of every plot: the first step's finite values (read by the planner),
    so a sync, which never reads that step again, draws its new steps on the same scale."""
    version: int = 1
    """1 for a job as first run; each sync that extends it adds one (outputs carry it)."""
    sync_of: int | None = None
    """A sync's plan (``stages/syncplan.py``): the complete PhDef job it extends. Its step 0
    is that job's last step (taken from its stored state, never read again), steps 1.. the new
    ones; its outputs are that job's, under its prefix."""
    step_offset: int = 0
    """A sync: the extended job's step number of this plan's step 0."""
    map_of: int | None = None
    """A sweep's job that shares another's binarization: the job of the sweep whose map tables
    (copied into this job's store by that job's ``share`` stage) it starts from, at reduce."""
    map_for: list[int] | None = None
    """A sweep's job whose map others share: the jobs its ``share`` stage copies its map tables to."""
    sweep_of: int | None = None
    """The sweep this job is a combination of: the last of them to end writes the sweep's table."""
    map_min_size: int | None = None
    """The map drops components smaller than this that are whole in their tile (None: the job's
    ``min_size``); a sweep's job whose map others share: the smallest ``min_size`` among them."""

    @property
    def output_job(self) -> int:
        """The job whose outputs this plan writes (a sync writes the job it extends)."""
        return self.sync_of or self.job_id

    def stages(self) -> list[str]:
        return stages_for(self.kind, stats=self.baseline_statistic is not None, periods=bool(self.periods),
                          sync=bool(self.sync_of), shared_map=self.map_of is not None,
                          shares=bool(self.map_for))

    @property
    def baseline_statistic(self) -> str | None:
        """What the operator needs of a baseline period: None, ``moments`` or ``percentile``."""
        return operators.get(self.operator).baseline

    def stage_chunks(self, stage: str) -> int:
        return len(self.periods or []) if stage == "periods" else super().stage_chunks(stage)

    def stage_ranges(self, stage: str) -> list[tuple[str, str]]:
        if stage == "periods":
            return [(self.timestamps[a], self.timestamps[b - 1]) for a, b, _ in self.periods or []]
        return super().stage_ranges(stage)

    def stage_layout(self, stage: str) -> Layout:
        if stage == "stats":
            n = len(self.baseline_timestamps or [])
            if self.baseline_statistic == "percentile":
                return percentile_layout(n, self.layout)
            return stats_layout(n, self.layout)
        if stage == "publish":
            return publish_layout(self.layout)
        return self.layout

    def stage_timestamps(self, stage: str) -> list[str]:
        return (self.baseline_timestamps or []) if stage == "stats" else self.timestamps

    def centroids(self, table: dict, idx) -> tuple[np.ndarray, np.ndarray]:
        """Centroid latitude and unwrapped longitude of components ``idx`` of a reduce table.

        On a global grid a component straddling the wrap uses the half-rotated column sum.
        """
        lat, lon = self.grid.lat, self.grid.lon
        area = table["area"][idx]
        crow = table["sum_row"][idx] / area
        ccol = table["sum_col"][idx] / area
        width = lon.size
        if self.wraps:
            straddle = (table["min_col"][idx] == 0) & (table["max_col"][idx] == width)
            half = (table["sum_col_half"][idx] / area - width // 2) % width
            ccol = np.where(straddle, half, ccol)
        lon_u = unwrapped_lon(lon)
        step = lon_u[-1] - lon_u[-2] if lon_u.size > 1 else 1.0
        lon_ext = np.r_[lon_u, lon_u[-1] + step]
        return (np.interp(crow, np.arange(lat.size), lat),
                np.interp(ccol, np.arange(lon_ext.size), lon_ext))


@dataclass
class CurationGrid:
    """The curation dataset's grid sorted (lat ascending, lon -180..180) and as stored."""

    lat: np.ndarray
    lon: np.ndarray
    src_lat: np.ndarray
    src_lon: np.ndarray


@dataclass(kw_only=True)
class CurationPlan(Plan):
    """Curation of another variable inside every anomaly of a complete PhDef job.

    ``grid`` is the PhDef job's mask grid; its ``src_rows``/``src_cols`` sort the curation
    dataset's rows and columns (see :class:`CurationGrid`)."""

    kind: ClassVar[str] = "curation"
    phdef_job: int
    curation_grid: CurationGrid
    global_curation_grid: bool
    matches: list[str | None]
    """Per mask step: the curation step used (nearest within one step), or None."""
    neighbours: list[list[str | None] | None]
    """Per mask step: the curation steps before and after its match that have a file."""
    missing_times: list[str]
    """Mask steps with no curation data within one curation step."""
    time_step_minutes: int
    categorical: bool
    """The variable is a class (nearest neighbour, never averaged)."""

    @property
    def full_name(self) -> str:
        return self.entry.full_name or self.dataset

    @property
    def product_info(self) -> str:
        return self.entry.product_info

    def to_json(self) -> dict:
        doc = super().to_json()
        doc.pop("curation_grid")
        return doc

    def save(self, store) -> None:
        store.put_table("plan", 0, "curation_grid", dataclasses.asdict(self.curation_grid))
        super().save(store)


PLAN_KINDS: dict[str, type[Plan]] = {"phdef": PhDefPlan, "curation": CurationPlan}


class PlanMissing(RuntimeError):
    """The job's chunk store holds no plan (not planned yet, or the store lost it)."""


def plan_from_json(doc: dict, grid: JobGrid, curation_grid: CurationGrid | None = None) -> Plan:
    cls = PLAN_KINDS.get(doc.get("kind"))
    if cls is None:
        raise ValueError(f"stored plan of unknown kind {doc.get('kind')!r} (written by another version?)")
    values = {k: v for k, v in doc.items() if k != "kind"}
    entry = dict(values["entry"])
    values["entry"] = CatalogEntry.from_json(entry.pop("name"), entry)
    values["layout"] = Layout(**values["layout"])
    values["grid"] = grid
    if cls is PhDefPlan:
        values["tracking"] = Tracking(**values["tracking"])
    else:
        values["curation_grid"] = curation_grid
    return cls(**values)


def load_plan(store) -> Plan:
    """The plan stored in a job's chunk store (raises :class:`PlanMissing` if there is none)."""
    if not store.has_json("plan"):
        raise PlanMissing("the job has no stored plan")
    doc = store.get_json("plan")
    from tos2ca_batch.stores import earthdata

    entry = doc.get("entry") or {}
    earthdata.register(entry.get("location", ""), entry.get("earthdata"))  # a task reads the plan's dataset
    grid = JobGrid.from_table(store.get_table("plan", 0, "grid"))
    cgrid = None
    if doc.get("kind") == "curation":
        cgrid = CurationGrid(**store.get_table("plan", 0, "curation_grid"))
    return plan_from_json(doc, grid, cgrid)
