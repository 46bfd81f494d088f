"""Read one time step of one variable from netCDF-4/HDF5 files in their native layouts.

Handles the file holding one or many steps (found by the CF time coordinate), ascending or
descending latitude, 0..360 or -180..180 longitude, any dimension order, and every
missing-value convention (NaN, ``_FillValue``, ``missing_value``, ``valid_range``/min/max,
after ``scale_factor``/``add_offset``): missing pixels come back as NaN.
"""

from __future__ import annotations

import os
from datetime import datetime

import netCDF4
import numpy as np

from tos2ca_batch.catalog import file_for

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


def index_runs(idx: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Split source indices into runs of step +1 or -1: ``(out_start, out_stop, lo, hi)``."""
    runs = []
    n = idx.size
    k = 0
    while k < n:
        j = k + 1
        if j < n and abs(int(idx[j]) - int(idx[k])) == 1:
            step = int(idx[j]) - int(idx[k])
            while j < n and int(idx[j]) - int(idx[j - 1]) == step:
                j += 1
        lo, hi = int(min(idx[k], idx[j - 1])), int(max(idx[k], idx[j - 1])) + 1
        runs.append((k, j, lo, hi))
        k = j
    return runs


def open_dataset(path: str) -> netCDF4.Dataset:
    if path.startswith("s3://"):
        from tos2ca_batch.stores.objectstore import read_bytes

        return netCDF4.Dataset(os.path.basename(path), mode="r", memory=read_bytes(path))
    return netCDF4.Dataset(path, mode="r")


class StepReader:
    """Reads 2-D (lat, lon) subsets of one variable; keeps the last file open."""

    def __init__(self, entry: dict, variable: str):
        self.entry = entry
        self.variable = variable
        self.names = entry["coordinateNames"]
        self._path: str | None = None
        self._ds: netCDF4.Dataset | None = None
        self._times: list[datetime] = []

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()
        self._ds, self._path = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _group(self, ds):
        group = self.entry.get("group")
        return ds[group] if group else ds

    def _open(self, path: str):
        if path != self._path:
            self.close()
            self._ds = open_dataset(path)
            self._path = path
            g = self._group(self._ds)
            tname = self.names.get("time", "time")
            tvar = g.variables.get(tname) or self._ds.variables.get(tname)
            if tvar is None:
                self._times = []
            else:
                cal = getattr(tvar, "calendar", "standard")
                vals = np.atleast_1d(tvar[:])
                self._times = list(netCDF4.num2date(
                    vals, tvar.units, cal, only_use_cftime_datetimes=False, only_use_python_datetimes=True
                ))
        return self._group(self._ds)

    def grid(self, t: datetime) -> tuple[np.ndarray, np.ndarray]:
        """Source latitude and longitude (as stored) of the file holding ``t``."""
        g = self._open(file_for(self.entry, t))
        lat = np.asarray(g.variables[self.names["lat"]][:], np.float64)
        lon = np.asarray(g.variables[self.names["lon"]][:], np.float64)
        return lat, lon

    def _time_index(self, t: datetime) -> int | None:
        if not self._times:
            return None
        for k, ft in enumerate(self._times):
            if abs((ft - t).total_seconds()) < 60:
                return k
        raise KeyError(f"time {t:%Y-%m-%dT%H:%M} is not in {self._path}")

    def _roles(self, var) -> list[str]:
        """Role (time/lat/lon) of each dimension of the variable."""
        inverse = {v: k for k, v in self.names.items()}
        roles = [inverse.get(d) for d in var.dimensions]
        if None in roles:
            roles = list(self.entry.get("dimensionOrder", ["time", "lat", "lon"]))
            if len(roles) != len(var.dimensions):
                roles = roles[-len(var.dimensions):]
        return roles

    def read(self, t: datetime, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values at source rows x cols (index arrays) as float32 (len(rows), len(cols)), NaN missing."""
        g = self._open(file_for(self.entry, t))
        var = g.variables[self.variable]
        var.set_auto_maskandscale(True)
        roles = self._roles(var)
        tk = self._time_index(t) if "time" in roles else None
        out = np.empty((rows.size, cols.size), np.float32)
        for r0, r1, rlo, rhi in index_runs(rows):
            for c0, c1, clo, chi in index_runs(cols):
                key = []
                for role in roles:
                    key.append({"time": tk if tk is not None else 0,
                                "lat": slice(rlo, rhi), "lon": slice(clo, chi)}[role])
                block = var[tuple(key)]
                kept = [r for r in roles if r != "time"]
                if kept != ["lat", "lon"]:
                    block = block.T
                if np.ma.isMaskedArray(block):
                    block = block.astype(np.float32).filled(np.nan)
                block = np.asarray(block, np.float32)
                if rows[r0] > rows[r1 - 1]:
                    block = block[::-1, :]
                if cols[c0] > cols[c1 - 1]:
                    block = block[:, ::-1]
                out[r0:r1, c0:c1] = block
        return out

    def attributes(self, t: datetime) -> dict:
        """The variable's own attributes (units, long_name...) from the file holding ``t``."""
        g = self._open(file_for(self.entry, t))
        var = g.variables[self.variable]
        return {k: var.getncattr(k) for k in var.ncattrs()}
