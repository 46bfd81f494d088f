"""Read one time step of one variable from netCDF-4/HDF5 files in their native layouts.

Handles the file holding one or many steps (found by the CF time coordinate), ascending or
descending latitude, 0..360 or -180..180 longitude, any dimension order, and every
missing-value convention (NaN, ``_FillValue``, ``missing_value``, ``valid_range``/min/max,
after ``scale_factor``/``add_offset``): missing pixels come back as NaN.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from datetime import datetime

import h5py
import netCDF4
import numpy as np

from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.rawchunks import NotFast, RawChunks
from tos2ca_batch.timeutil import decode_file_times


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


def unpack(var, raw: np.ndarray) -> np.ndarray:
    """``raw`` values of netCDF variable ``var`` decoded as netCDF4's auto mask-and-scale decodes
    them (its own ``_toma`` masks fill values, ``missing_value`` and the valid range; packing is
    undone with the same arithmetic and types), as float32 with NaN where masked."""
    data = var._toma(raw)
    scale, offset = getattr(var, "scale_factor", None), getattr(var, "add_offset", None)
    if scale is not None and offset is not None:
        data = data * scale + offset if (offset != 0.0 or scale != 1.0) else data.astype(np.asarray(scale).dtype)
    elif scale is not None and scale != 1.0:
        data = data * scale
    elif offset is not None and offset != 0.0:
        data = data + offset
    if np.ma.isMaskedArray(data):  # one pass: what .astype(float32).filled(nan) gives
        values = np.ma.getdata(data).astype(np.float32, copy=False)
        return np.where(np.ma.getmaskarray(data), np.float32(np.nan), values)
    return np.asarray(data, np.float32)


def open_dataset(path: str) -> netCDF4.Dataset:
    if path.startswith("s3://"):
        from tos2ca_batch.stores.objectstore import read_bytes

        return netCDF4.Dataset(os.path.basename(path), mode="r", memory=read_bytes(path))
    return netCDF4.Dataset(path, mode="r")


class GridMismatch(ValueError):
    """A file whose lat/lon differ from the job's grid (every file of a job must share one grid)."""


def describe_grid(lat: np.ndarray, lon: np.ndarray) -> str:
    def axis(name, v):
        if v.size < 2:
            return f"{name} {v.size} value(s) {v.tolist()}"
        return f"{name} {v.size} values {v[0]:.4f}..{v[-1]:.4f} step {v[1] - v[0]:.4f}"
    return f"{axis('lat', lat)}, {axis('lon', lon)}"


def same_grid(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Equal shapes and coordinates within a millionth of a grid step (float32 files round)."""
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        if x.size:
            step = float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 1.0
            if not np.allclose(x, y, rtol=0, atol=max(step * 1e-6, 1e-9)):
                return False
    return True


def time_units(var) -> str | None:
    """The ``units`` of a time variable; real IMERG files also spell it ``Units``."""
    for name in ("units", "Units"):
        if name in var.ncattrs():
            return str(var.getncattr(name))
    return None


class StepReader:
    """Reads 2-D (lat, lon) subsets of one variable; keeps the last few files open.

    ``keep_open`` files stay open (curation reads t-1, t and t+1 of every anomaly in turn, so it
    would otherwise reopen a file per read). With ``job_grid`` (the source lat/lon the job was
    planned on), every file is checked against it when opened: a file on another grid raises
    :class:`GridMismatch` naming it.
    """

    def __init__(self, entry: CatalogEntry, variable: str, job_grid: tuple[np.ndarray, np.ndarray] | None = None,
                 keep_open: int = 3):
        self.entry = entry
        self.variable = variable
        self.names = entry.coordinate_names
        self.job_grid = job_grid
        self.keep_open = max(1, keep_open)
        self._open_files: OrderedDict[str, tuple[netCDF4.Dataset, list[datetime]]] = OrderedDict()
        self._raw: dict[str, RawChunks | None] = {}  # per open file: the variable's raw-chunk reader
        self.fast = True  # read deflate/shuffle chunks with libdeflate where the layout allows
        self._path: str | None = None
        self._times: list[datetime] = []

    def close(self) -> None:
        for ds, _ in self._open_files.values():
            ds.close()
        self._open_files.clear()
        for raw in self._raw.values():
            if raw is not None:
                raw.dataset.file.close()
        self._raw.clear()
        self._path, self._times = None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _group(self, ds):
        group = self.entry.group
        return ds[group] if group else ds

    def _open(self, path: str):
        if path not in self._open_files:
            while len(self._open_files) >= self.keep_open:
                old, (ds, _) = self._open_files.popitem(last=False)
                ds.close()
                raw = self._raw.pop(old, None)
                if raw is not None:
                    raw.dataset.file.close()
            ds = open_dataset(path)
            try:
                self._open_files[path] = (ds, self._check(ds, path))
            except BaseException:
                ds.close()
                raise
        self._open_files.move_to_end(path)
        ds, self._times = self._open_files[path]
        self._path = path
        return self._group(ds)

    def _check(self, ds, path: str) -> list[datetime]:
        """The file's decoded times, after checking its grid against the job's."""
        g = self._group(ds)
        tname = self.names.get("time", "time")
        tvar = g.variables.get(tname) or ds.variables.get(tname)
        times = []
        if tvar is not None:
            tvar.set_auto_maskandscale(False)
            cal = tvar.getncattr("calendar") if "calendar" in tvar.ncattrs() else None
            times = decode_file_times(tvar[:], time_units(tvar), cal, path)
        if self.job_grid is not None:
            found = self._grid_of(g)
            if not same_grid(found, self.job_grid):
                raise GridMismatch(f"{path} is on another grid than the job ({describe_grid(*found)}; the "
                                   f"job's grid, from its first file: {describe_grid(*self.job_grid)})")
        return times

    def _grid_of(self, g) -> tuple[np.ndarray, np.ndarray]:
        lat = np.asarray(g.variables[self.names["lat"]][:], np.float64)
        lon = np.asarray(g.variables[self.names["lon"]][:], np.float64)
        return lat, lon

    def grid(self, t: datetime) -> tuple[np.ndarray, np.ndarray]:
        """Source latitude and longitude (as stored) of the file holding ``t``."""
        return self._grid_of(self._open(file_for(self.entry, t)))

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
            roles = list(self.entry.dimension_order or ("time", "lat", "lon"))
            if len(roles) != len(var.dimensions):
                roles = roles[-len(var.dimensions):]
        return roles

    def _raw_chunks(self, path: str) -> RawChunks | None:
        """The raw-chunk reader of the variable in a local file (None: read through netCDF4)."""
        if path not in self._raw:
            reader = None
            if self.fast and not path.startswith("s3://"):
                try:
                    f = h5py.File(path, "r")
                except OSError:
                    f = None
                if f is not None:
                    try:
                        name = f"{self.entry.group}/{self.variable}" if self.entry.group else self.variable
                        reader = RawChunks(f[name])
                    except (KeyError, NotFast):
                        f.close()
            self._raw[path] = reader
        return self._raw[path]

    def read(self, t: datetime, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values at source rows x cols (index arrays) as float32 (len(rows), len(cols)), NaN missing."""
        path = file_for(self.entry, t)
        g = self._open(path)
        var = g.variables[self.variable]
        var.set_auto_maskandscale(False)
        raw_chunks = self._raw_chunks(path)
        roles = self._roles(var)
        tk = self._time_index(t) if "time" in roles else None
        out = np.empty((rows.size, cols.size), np.float32)
        for r0, r1, rlo, rhi in index_runs(rows):
            for c0, c1, clo, chi in index_runs(cols):
                key = []
                for role in roles:
                    key.append({"time": tk if tk is not None else 0,
                                "lat": slice(rlo, rhi), "lon": slice(clo, chi)}[role])
                raw = None
                if raw_chunks is not None:
                    try:
                        raw = raw_chunks.read(tuple(key))
                    except NotFast:
                        self._raw[path] = raw_chunks = None
                block = unpack(var, var[tuple(key)] if raw is None else raw)
                kept = [r for r in roles if r != "time"]
                if kept != ["lat", "lon"]:
                    block = block.T
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
