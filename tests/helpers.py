"""Test helpers: tiny datasets written as real netCDF files with a catalog, and job runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np

from tos2ca_batch.backends.local import LocalBackend
from tos2ca_batch.config import Config
from tos2ca_batch.runner import apply_overrides, run


def write_cube(folder: Path, name: str, values: np.ndarray, lat: np.ndarray, lon: np.ndarray,
               start: datetime, step_minutes: int = 30, variable: str = "v",
               fill: float | None = -999.0) -> Path:
    """One file per step, ``(time, lat, lon)`` float32, and a catalog ``catalog.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(values.shape[0]):
        t = start + timedelta(minutes=step_minutes * k)
        with netCDF4.Dataset(folder / f"{name}_{t:%Y%m%d%H%M}.nc", "w") as ds:
            ds.createDimension("time", 1)
            ds.createDimension("lat", lat.size)
            ds.createDimension("lon", lon.size)
            tv = ds.createVariable("time", "i4", ("time",))
            tv.units = "minutes since 2000-01-01 00:00:00"
            tv[:] = int((t - datetime(2000, 1, 1)).total_seconds() // 60)
            ds.createVariable("lat", "f8", ("lat",))[:] = lat
            ds.createVariable("lon", "f8", ("lon",))[:] = lon
            v = ds.createVariable(variable, "f4", ("time", "lat", "lon"), fill_value=fill)
            v.units = "mm/hr"
            v[0] = values[k]
    end = start + timedelta(minutes=step_minutes * (values.shape[0] - 1))
    entry = {
        name: {
            "fullName": f"test cube {name}", "format": "netcdf4",
            "location": f"{name}_{{time:%Y%m%d%H%M}}.nc", "timeStep": step_minutes,
            "startDate": f"{start:%Y-%m-%dT%H:%M}", "endDate": f"{end:%Y-%m-%dT%H:%M}",
            "group": None, "variables": [variable], "units": {variable: "mm/hr"},
            "coordinateNames": {"lat": "lat", "lon": "lon", "time": "time"},
        }
    }
    path = folder / "catalog.json"
    path.write_text(json.dumps(entry))
    return path


def run_job(workdir: Path, spec: dict, catalog: Path | list[Path], block_steps=None, tile=None,
            products=None, workers: int = 1, reduce_rows: int | None = None) -> tuple[Config, dict]:
    catalogs = [str(c) for c in (catalog if isinstance(catalog, list) else [catalog])]
    cfg = Config.from_env(str(workdir), catalogs)
    if reduce_rows is not None:
        cfg.reduce_rows = reduce_rows
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    backend = LocalBackend(workers)
    try:
        res = run(cfg, apply_overrides(spec, block_steps, tile, products), backend)
    finally:
        backend.close()
    return cfg, res


def read_masks(path: str) -> dict[str, np.ndarray]:
    """``{timestamp: (mask_indices, data_values)}`` of a masks file."""
    out = {}
    with netCDF4.Dataset(path) as ds:
        for ts, g in ds["masks"].groups.items():
            out[ts] = (g["mask_indices"][:].data.copy(), g["data_values"][:].data.copy())
    return out


def local_outputs(res: dict, tmp: Path) -> dict[str, Path]:
    """Job outputs by name (job id replaced by J), downloading ``s3://`` ones into ``tmp``."""
    from tos2ca_batch.replay import files_by_name

    return files_by_name(res["job_id"], res["outputs"], tmp)


def assert_same_outputs(a: dict[str, Path], b: dict[str, Path]) -> None:
    """Identical data in every netCDF variable of every group, identical JSON documents (job ids
    aside) and byte-identical CSV/PNG (``outputs.compare``)."""
    from tos2ca_batch.outputs.compare import differences

    assert sorted(a) == sorted(b)
    diff = differences(a, b)
    assert diff == [], diff
