"""The Python API: run a job and read its results from a notebook.

    import tos2ca_batch as tb
    job = tb.run("spec.json", workdir="work", catalog=["my-datasets.json"], workers=2)
    job.status, job.message, job.outputs
    job.ids          # xarray Dataset: anomaly_id(time, lat, lon), CF-1.8
    job.steps        # pandas: one row per anomaly per step
    job.tracks       # pandas: one row per anomaly (ForTraCC track)
    job = tb.open_job(1, workdir="work")   # a job run before, by any backend

The tables are read from what a complete job keeps (its reduce table and plan), the same numbers
as its CSV and GeoJSON outputs.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path

import numpy as np

from tos2ca_batch.config import Config


class Job:
    """A job of a work dir (or of the configured jobs DB and stores)."""

    def __init__(self, cfg: Config, job_id: int):
        self.cfg = cfg
        self.id = job_id
        if cfg.db().get_job(job_id) is None:
            raise KeyError(f"no job {job_id} in {cfg.db().describe()}")

    def __repr__(self) -> str:
        return f"<tos2ca_batch.Job {self.id} {self.status}>"

    @property
    def row(self) -> dict:
        return self.cfg.db().get_job(self.id)

    @property
    def status(self) -> str:
        return self.row["status"]

    @property
    def message(self) -> str | None:
        return self.row["message"]

    @property
    def outputs(self) -> list[str]:
        return [o["location"] for o in self.cfg.db().outputs(self.id)]

    def summary(self) -> str:
        from tos2ca_batch.summary import job_summary

        return job_summary(self.cfg, self.id)

    def _complete(self) -> None:
        if self.status != "complete":
            raise RuntimeError(f"job {self.id} is {self.status}: {self.message}")

    @cached_property
    def plan(self):
        from tos2ca_batch.plans import load_plan

        return load_plan(self.cfg.store(self.id))

    @property
    def ids(self):
        """The anomaly ids as an xarray Dataset (the job's Zarr store, opened lazily)."""
        import xarray as xr

        self._complete()
        return xr.open_zarr(self.cfg.store(self.id).zarr_store())

    @cached_property
    def _table(self) -> dict[str, np.ndarray]:
        self._complete()
        return self.cfg.store(self.id).reduce_table("components")

    @cached_property
    def steps(self):
        """One row per anomaly per step: time, anomaly_id, tag (ForTraCC's), centroid_lat/lon,
        area_px, value_min/value_max (the variable's units)."""
        import pandas as pd

        from tos2ca_batch.kernels.fortracc import TAGS

        table, plan = self._table, self.plan
        order = np.lexsort((table["anomaly_id"], table["step"]))
        clat, clon = plan.centroids(table, order)
        stamps = np.array(plan.timestamps)[table["step"][order]]
        area = table["area"][order]
        return pd.DataFrame({
            "time": pd.to_datetime(stamps, format="%Y%m%d%H%M"),
            "anomaly_id": table["anomaly_id"][order].astype(np.int64),
            "tag": [TAGS[int(t)] for t in table["tag"][order]],
            "centroid_lat": clat, "centroid_lon": (clon + 180.0) % 360.0 - 180.0,
            "area_px": area.astype(np.int64),
            "value_min": table["value_min"][order], "value_max": table["value_max"][order],
        })

    @cached_property
    def tracks(self):
        """One row per anomaly: start, end, steps, lifetime, max_area_px, merges, splits, first and
        last tag, and its centroid path as a list of (time, lat, lon)."""
        import pandas as pd

        from tos2ca_batch.kernels.fortracc import MERGE, SPLIT

        rows = []
        for aid, g in self.steps.groupby("anomaly_id", sort=True):
            rows.append({
                "anomaly_id": int(aid), "start": g["time"].iloc[0], "end": g["time"].iloc[-1],
                "steps": len(g), "lifetime": g["time"].iloc[-1] - g["time"].iloc[0],
                "max_area_px": int(g["area_px"].max()), "merges": int((g["tag"] == MERGE).sum()),
                "splits": int((g["tag"] == SPLIT).sum()), "first_tag": g["tag"].iloc[0],
                "last_tag": g["tag"].iloc[-1],
                "path": list(zip(g["time"].dt.strftime("%Y-%m-%dT%H:%M"), g["centroid_lat"].round(4),
                                 g["centroid_lon"].round(4))),
            })
        return pd.DataFrame(rows)

    @property
    def polygons(self):
        """Every anomaly's polygon at every step as one GeoDataFrame (needs geopandas): the job's
        ``J-polygons.parquet`` (GeoParquet), else its per-step GeoJSON files."""
        try:
            import geopandas as gpd
        except ImportError as exc:
            raise ImportError("job.polygons needs geopandas: pip install geopandas") from exc
        import pandas as pd

        parquet = [o for o in self.outputs if o.endswith(f"{self.id}-polygons.parquet")]
        if parquet:
            return gpd.read_parquet(parquet[0])

        steps = re.compile(rf"^{self.id}-\d{{12}}\.json$")  # J-YYYYMMDDhhmm.json: one step's polygons
        frames = [gpd.read_file(o) for o in self.outputs if steps.match(Path(o).name)]
        return pd.concat(frames, ignore_index=True) if frames else gpd.GeoDataFrame()


    def curation(self, dataset: str, variable: str, *, workers: int = 1, products: list[str] | None = None) -> Job:
        """Run a curation job on this (complete PhDef) job: ``variable`` of catalog ``dataset``
        extracted inside every anomaly and interpolated onto the mask grid, in this process and
        its local pool; returns that :class:`Job` (its ``outputs``: TOS2CA's Curated-Data and
        Interpolated-Data files, the per-anomaly statistics CSV)."""
        self._complete()
        return _run_raw(self.cfg, {"stage": "curation", "phdef_job": self.id, "dataset": dataset,
                                   "variable": variable}, workers, products, None, None)


def _run_raw(cfg: Config, raw: dict, workers: int, products, block_steps, tile) -> Job:
    from tos2ca_batch.backends.local import LocalBackend
    from tos2ca_batch.runner import apply_overrides
    from tos2ca_batch.runner import run as run_job

    backend = LocalBackend(workers)
    backend.prepare()  # ``run`` starts it (runner.run)
    try:
        res = run_job(cfg, apply_overrides(raw, block_steps, tile, products), backend)
    finally:
        backend.close()
    return Job(cfg, res["job_id"])


def _config(workdir, catalog) -> Config:
    catalogs = [str(c) for c in ([catalog] if isinstance(catalog, str | Path) else catalog or [])]
    cfg = Config.from_env(str(workdir) if workdir is not None else None, catalogs)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    return cfg


def run(spec: dict | str | Path, *, data=None, workdir=None, catalog=None, workers: int = 1,
        products: list[str] | None = None, block_steps: int | None = None, tile: tuple[int, int] | None = None) -> Job:
    """Run a job (a spec dict, or the path of a spec JSON file) to its end in this process and
    its local pool; returns the :class:`Job` (``job.status`` says how it ended).

    ``data``: run on an xarray DataArray or Dataset (``time``, ``lat``/``latitude``,
    ``lon``/``longitude`` coordinates, evenly spaced times) or the path of a Zarr store instead
    of a catalog dataset: the spec's ``dataset`` (optional) names it, ``variable`` picks a
    Dataset's or store's variable. The job is chunk-parallel over its time blocks and tiles as on
    files, and gives the outputs the same data in files would (``tos2ca_batch.xrinput``)."""
    raw = json.loads(Path(spec).read_text()) if isinstance(spec, str | Path) else dict(spec)
    cfg = _config(workdir, catalog)
    if data is not None:
        from tos2ca_batch.xrinput import data_catalog

        raw, data_entry = data_catalog(data, raw, cfg.workdir)
        cfg = _config(cfg.workdir, [*cfg.catalogs, str(data_entry)])
    return _run_raw(cfg, raw, workers, products, block_steps, tile)


def open_job(job_id: int, *, workdir=None, catalog=None) -> Job:
    """A job run before (``run``, ``worker``, MPI or AWS Batch) in this work dir or jobs DB."""
    return Job(_config(workdir, catalog), job_id)
