"""Read one time step of one variable from netCDF-4/HDF5 files in their native layouts.

Handles the file holding one or many steps (found by the CF time coordinate), ascending or
descending latitude, 0..360 or -180..180 longitude, any dimension order, and every
missing-value convention (NaN, ``_FillValue``, ``missing_value``, ``valid_range``/min/max,
after ``scale_factor``/``add_offset``): missing pixels come back as NaN.

Raw reads are kept apart from decoding. A netCDF-4/HDF5 file is opened with h5py alone
(:class:`HDF5File`): stored values come from its raw chunks (:mod:`tos2ca_batch.rawchunks`;
on S3 only the byte ranges of the chunks a read needs) and are decoded by netCDF's rules
(:mod:`tos2ca_batch.decoding`), bit for bit what netCDF4 gives. Anything else (netCDF-3, an
attribute whose meaning needs the netCDF library) is read by netCDF4 (:class:`NetCDFFile`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from datetime import datetime

import h5py
import numpy as np

from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.decoding import DECODING_ATTRIBUTES, Decoding, NotDecodable, netcdf_value
from tos2ca_batch.rawchunks import NotFast, RangeFile, RawChunks, root_array, top_byte_below
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


def open_dataset(path: str):
    """A ``netCDF4.Dataset`` of a local or ``s3://`` file (netCDF4 is imported here: most reads
    never need it)."""
    import netCDF4

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
        if x.size and not np.array_equal(x, y):  # equal: every file of a dataset, mostly
            step = float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 1.0
            if not np.allclose(x, y, rtol=0, atol=max(step * 1e-6, 1e-9)):
                return False
    return True


def time_units(attrs: dict) -> str | None:
    """The ``units`` of a time variable; real IMERG files also spell it ``Units``."""
    for name in ("units", "Units"):
        if name in attrs:
            return str(attrs[name])
    return None


# HDF5 attributes by which netCDF-4 keeps its own structure: not attributes of a netCDF variable.
NETCDF_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid", "_Netcdf4Coordinates",
                   "_nc3_strict", "_NCProperties"}


class NetCDFFile:
    """One file read through netCDF4: stored values by ``Variable[key]``, decoded by netCDF4's
    own masking (``Variable._toma``) and :func:`unpack`."""

    def __init__(self, path: str, group: str | None, variable: str):
        self.ds = open_dataset(path)
        try:
            self.group = self.ds[group] if group else self.ds
            self.var = self.group.variables[variable]
        except BaseException:
            self.ds.close()
            raise
        self.var.set_auto_maskandscale(False)
        self.dims: list[str | None] = list(self.var.dimensions)

    def close(self) -> None:
        self.ds.close()

    def coordinate(self, name: str) -> tuple[np.ndarray, dict] | None:
        """Stored values and attributes of a coordinate variable (in the group, else the root)."""
        var = self.group.variables.get(name) or self.ds.variables.get(name)
        if var is None:
            return None
        var.set_auto_maskandscale(False)
        return var[:], {k: var.getncattr(k) for k in var.ncattrs()}

    def axis(self, name: str) -> np.ndarray:
        return np.asarray(self.group.variables[name][:], np.float64)

    def raw(self, key: tuple) -> np.ndarray:
        return self.var[key]

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return unpack(self.var, raw)

    def read_into(self, key: tuple, dest: np.ndarray) -> None:
        """Decoded values at ``key`` into ``dest`` (a view shaped as the read, any strides)."""
        dest[...] = self.decode(self.raw(key))

    def attributes(self, names: tuple[str, ...] | None = None) -> dict:
        return {k: self.var.getncattr(k) for k in self.var.ncattrs() if names is None or k in names}


class ZarrFile:
    """A Zarr store (``format: zarr``: every step in one store) read through xarray, whose CF
    decoding masks fill values and unpacks scale and offset; only the chunks a read needs are
    loaded. Its time coordinate is given as stored (units and calendar decoded as a file's)."""

    def __init__(self, path: str, group: str | None, variable: str):
        import xarray as xr

        self.ds = xr.open_zarr(path, group=group, decode_times=False, chunks=None)
        try:
            self.var = self.ds[variable].variable
        except BaseException:
            self.ds.close()
            raise
        self.dims: list[str | None] = list(self.var.dims)

    def close(self) -> None:
        self.ds.close()

    def coordinate(self, name: str) -> tuple[np.ndarray, dict] | None:
        if name not in self.ds.variables:
            return None
        var = self.ds.variables[name]
        return var.values, {**var.attrs, **{k: var.encoding[k] for k in ("units", "calendar") if k in var.encoding}}

    def axis(self, name: str) -> np.ndarray:
        return np.asarray(self.ds.variables[name].values, np.float64)

    def read_into(self, key: tuple, dest: np.ndarray) -> None:
        dest[...] = np.asarray(self.var[key].values, np.float32)

    def attributes(self, names: tuple[str, ...] | None = None) -> dict:
        return {k: v for k, v in self.var.attrs.items() if names is None or k in names}


PHONY_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


def _phony_dimension(ds: h5py.Dataset) -> bool:
    """A dimension netCDF-4 made without a coordinate variable (no netCDF variable at all)."""
    name = ds.attrs.get("NAME", b"")
    return isinstance(name, bytes | np.bytes_) and name.startswith(PHONY_DIMENSION)


def _packed(obj: h5py.h5o.ObjectID) -> bool:
    return h5py.h5a.exists(obj, b"scale_factor") or h5py.h5a.exists(obj, b"add_offset")


def _memory_order(view: np.ndarray) -> np.ndarray:
    """The same elements as ``view``, axes ordered and turned so memory is walked forwards."""
    for axis in range(view.ndim):
        if view.strides[axis] < 0:
            view = np.flip(view, axis)
    return view.transpose(np.argsort([-s for s in view.strides], kind="stable"))


class HDF5File:
    """One netCDF-4/HDF5 file read with h5py alone: raw chunks inflated by libdeflate (or h5py's
    own read), decoded by :class:`~tos2ca_batch.decoding.Decoding`. Raises ``OSError``,
    ``KeyError`` or :class:`NotDecodable` when the file needs netCDF4 instead."""

    def __init__(self, path: str, group: str | None, variable: str, coordinates: tuple[str, str]):
        self.source = RangeFile(path) if path.startswith("s3://") else None
        self.file = h5py.File(self.source or path, "r")
        try:
            self.group = self.file[group] if group else self.file
            self.var = self.group[variable]
            if not isinstance(self.var, h5py.Dataset):
                raise KeyError(variable)
            self.decoding = Decoding.from_attributes(self.var.dtype, self._attrs(self.var, DECODING_ATTRIBUTES))
            for name in coordinates:  # packed coordinates: netCDF4 would unpack them
                if name in self.group and _packed(h5py.h5o.open(self.group.id, name.encode())):
                    raise NotDecodable(f"coordinate {name} is packed")
        except BaseException:
            self.file.close()
            raise
        self._chunks: RawChunks | None | bool = False  # False: not looked at yet
        self._dims: list[str | None] | None = None

    # The chunk index and the dimension names are read when first needed: the plan opens the
    # first file for its grid and attributes only (in a process just forked, every call costs).
    @property
    def chunks(self) -> RawChunks | None:
        """The variable's raw chunks, or None when h5py must read them (a filter not ours)."""
        if self._chunks is False:
            try:
                self._chunks = RawChunks(self.var, self.source)
            except NotFast:
                self._chunks = None
        return self._chunks

    @chunks.setter
    def chunks(self, value: RawChunks | None) -> None:
        self._chunks = value

    @property
    def dims(self) -> list[str | None]:
        if self._dims is None:
            self._dims = self._dimension_names(self.var)
        return self._dims

    @staticmethod
    def _attrs(obj, names=None) -> dict:
        keys = obj.attrs.keys() if names is None else [n for n in names if n in obj.attrs]
        return {k: netcdf_value(obj.attrs[k]) for k in keys if k not in NETCDF_INTERNAL}

    @staticmethod
    def _dimension_names(var: h5py.Dataset) -> list[str | None]:
        """The name of each dimension's (first) scale, as ``var.dims[k][0]`` names it, read from
        the ``DIMENSION_LIST`` references those look up (a third of their time, every file)."""
        if "DIMENSION_LIST" not in var.attrs:
            return [None] * var.ndim
        return [h5py.h5r.get_name(refs[0], var.id).decode().rsplit("/", 1)[-1] if len(refs) else None
                for refs in var.attrs["DIMENSION_LIST"]]

    def close(self) -> None:
        self.file.close()

    def coordinate(self, name: str) -> tuple[np.ndarray, dict] | None:
        var = self.group.get(name)
        if not isinstance(var, h5py.Dataset):
            var = self.file.get(name)
        if not isinstance(var, h5py.Dataset) or _phony_dimension(var):
            return None
        return var[()], self._attrs(var, ("units", "Units", "calendar"))

    def axis(self, name: str) -> np.ndarray:
        """A 1-D coordinate as float64, read through h5py's low-level calls (every file's grid is
        checked against the job's: the high-level lookup and read cost 5x more)."""
        dataset = h5py.h5d.open(self.group.id, name.encode())
        if dataset.dtype.kind not in "iuf":
            return np.asarray(self.group[name][()], np.float64)
        values = np.empty(dataset.shape, dataset.dtype)
        dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, values)
        return values.astype(np.float64)

    def raw(self, key: tuple) -> np.ndarray:
        if self.chunks is not None:
            try:
                return self.chunks.read(key)
            except NotFast:  # a chunk that skipped a filter: h5py reads the rest of this file
                self.chunks = None
        return self.var[key]

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return self.decoding.apply(raw)

    def read_into(self, key: tuple, dest: np.ndarray) -> None:
        """Decoded values at ``key`` into ``dest`` (a view shaped as the read, any strides). Unpacked
        float32 chunks are inflated straight into ``dest`` and masked there: no other copy."""
        if self.chunks is not None and self.decoding.in_place:
            try:
                self.chunks.read(key, out=dest)
                self.decoding.apply(_memory_order(dest))  # elementwise: in the order memory holds them
                return
            except NotFast:  # a chunk that skipped a filter: h5py reads the rest of this file
                self.chunks = None
        dest[...] = self.decode(self.raw(key))

    def read_candidates_into(self, key: tuple, dest: np.ndarray, top: int) -> np.ndarray | None:
        """:meth:`read_into` for only the values whose top byte is at least ``top``
        (:meth:`RawChunks.candidates`), decoded; returns their flat indices in the array ``dest``
        is a view of. None when this read cannot skip any (packed values, a filter not ours...):
        then it wrote every value, as :meth:`read_into` does."""
        if self.chunks is not None and self.decoding.in_place and self.chunks.top_bytes:
            try:
                positions, raw = self.chunks.candidates(key, dest, top)
            except NotFast:  # a chunk that skipped a filter: h5py reads the rest of this file
                self.chunks = None
            else:
                root_array(dest).reshape(-1)[positions] = self.decoding.apply(raw)
                return positions
        self.read_into(key, dest)
        return None

    def attributes(self, names: tuple[str, ...] | None = None) -> dict:
        return self._attrs(self.var, names)


class CandidateStep:
    """The step array of reads that need only the values at or above a floor (a ``>`` or ``>=``
    threshold above 0, :meth:`StepReader.read_at_least`): NaN everywhere but where the last read
    wrote, which the next read sets back to NaN before it writes. Setting back the few percent of
    a rain-like step a read wrote costs far less than writing the whole step."""

    def __init__(self, shape: tuple[int, int]):
        self.values = np.full(shape, np.nan, np.float32)
        self._written: list[np.ndarray] | None = []  # flat indices; None: a read wrote every value

    def clear(self) -> None:
        flat = self.values.reshape(-1)
        if self._written is None:
            flat.fill(np.nan)
        else:
            for positions in self._written:
                flat[positions] = np.nan
        self._written = []

    def wrote(self, positions: np.ndarray | None) -> None:
        """A read wrote ``positions`` (flat indices), or every value of its part (None)."""
        if positions is None or self._written is None:
            self._written = None
        else:
            self._written.append(positions)


class StepReader:
    """Reads 2-D (lat, lon) subsets of one variable; keeps the last few files open.

    ``keep_open`` files stay open (curation reads t-1, t and t+1 of every anomaly in turn, so it
    would otherwise reopen a file per read). With ``job_grid`` (the source lat/lon the job was
    planned on), every file is checked against it when opened: a file on another grid raises
    :class:`GridMismatch` naming it. ``fast = False`` reads every file through netCDF4.
    """

    def __init__(self, entry: CatalogEntry, variable: str, job_grid: tuple[np.ndarray, np.ndarray] | None = None,
                 keep_open: int = 3):
        self.entry = entry
        self.variable = variable
        self.names = entry.coordinate_names
        self.job_grid = job_grid
        self.keep_open = max(1, keep_open)
        self.fast = True
        self._open_files: OrderedDict[str, tuple[HDF5File | NetCDFFile, list[datetime]]] = OrderedDict()
        self._runs: OrderedDict[bytes, list] = OrderedDict()  # the last few index arrays' runs
        self._path: str | None = None
        self._times: list[datetime] = []

    def close(self) -> None:
        for handle, _ in self._open_files.values():
            handle.close()
        self._open_files.clear()
        self._path, self._times = None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open_handle(self, path: str) -> HDF5File | NetCDFFile | ZarrFile:
        if self.entry.format == "zarr":
            return ZarrFile(path, self.entry.group, self.variable)
        if self.fast:
            try:
                return HDF5File(path, self.entry.group, self.variable, (self.names["lat"], self.names["lon"]))
            except (OSError, KeyError, ValueError, TypeError, NotDecodable):
                pass
        return NetCDFFile(path, self.entry.group, self.variable)

    def _open(self, path: str) -> HDF5File | NetCDFFile:
        if path not in self._open_files:
            while len(self._open_files) >= self.keep_open:
                _, (old, _) = self._open_files.popitem(last=False)
                old.close()
            handle = self._open_handle(path)
            try:
                self._open_files[path] = (handle, self._check(handle, path))
            except BaseException:
                handle.close()
                raise
        self._open_files.move_to_end(path)
        handle, self._times = self._open_files[path]
        self._path = path
        return handle

    def handle(self, t: datetime) -> HDF5File | NetCDFFile:
        """The open file holding ``t`` (which reader took it: ``HDF5File`` or ``NetCDFFile``)."""
        return self._open(file_for(self.entry, t))

    def _check(self, handle, path: str) -> list[datetime]:
        """The file's decoded times, after checking its grid against the job's."""
        times = []
        coordinate = handle.coordinate(self.names.get("time", "time"))
        if coordinate is not None:
            values, attrs = coordinate
            times = decode_file_times(values, time_units(attrs), attrs.get("calendar"), path)
        if self.job_grid is not None:
            found = self._grid_of(handle)
            if not same_grid(found, self.job_grid):
                raise GridMismatch(f"{path} is on another grid than the job ({describe_grid(*found)}; the "
                                   f"job's grid, from its first file: {describe_grid(*self.job_grid)})")
        return times

    def _grid_of(self, handle) -> tuple[np.ndarray, np.ndarray]:
        return handle.axis(self.names["lat"]), handle.axis(self.names["lon"])

    def grid(self, t: datetime) -> tuple[np.ndarray, np.ndarray]:
        """Source latitude and longitude (as stored) of the file holding ``t``."""
        return self._grid_of(self.handle(t))

    def file_times(self, t: datetime) -> list[datetime]:
        """The times the file holding ``t`` holds (empty when it has no time coordinate)."""
        self.handle(t)
        return list(self._times)

    def _time_index(self, t: datetime) -> int | None:
        if not self._times:
            return None
        for k, ft in enumerate(self._times):
            if abs((ft - t).total_seconds()) < 60:
                return k
        raise KeyError(f"time {t:%Y-%m-%dT%H:%M} is not in {self._path}")

    def _roles(self, dims: list[str | None]) -> list[str]:
        """Role (time/lat/lon) of each dimension of the variable."""
        inverse = {v: k for k, v in self.names.items()}
        roles = [inverse.get(d) for d in dims]
        if None in roles:
            roles = list(self.entry.dimension_order or ("time", "lat", "lon"))
            if len(roles) != len(dims):
                roles = roles[-len(dims):]
        return roles

    def _index_runs(self, idx: np.ndarray) -> list:
        """:func:`index_runs` of ``idx``, remembered for the last few index arrays: every step of a
        chunk asks for the same rows and columns (curation asks for new ones per anomaly)."""
        key = idx.tobytes()
        if key not in self._runs:
            if len(self._runs) >= 8:
                self._runs.popitem(last=False)
            self._runs[key] = index_runs(idx)
        self._runs.move_to_end(key)
        return self._runs[key]

    def _parts(self, handle, t: datetime, rows: np.ndarray, cols: np.ndarray, out: np.ndarray):
        """(the file's key, the view of ``out`` its values go to) for each run of rows x cols."""
        roles = self._roles(handle.dims)
        tk = self._time_index(t) if "time" in roles else None
        kept = [r for r in roles if r != "time"]
        for r0, r1, rlo, rhi in self._index_runs(rows):
            for c0, c1, clo, chi in self._index_runs(cols):
                parts = {"time": tk if tk is not None else 0, "lat": slice(rlo, rhi), "lon": slice(clo, chi)}
                dest = out[r0:r1, c0:c1]  # seen in the file's order: reversed, transposed
                if rows[r0] > rows[r1 - 1]:
                    dest = dest[::-1, :]
                if cols[c0] > cols[c1 - 1]:
                    dest = dest[:, ::-1]
                if kept != ["lat", "lon"]:
                    dest = dest.T
                yield tuple(parts[role] for role in roles), dest

    @staticmethod
    def _check_out(out: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        if out.shape != (rows.size, cols.size) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out is {out.shape} {out.dtype}; the read needs C-contiguous float32 "
                             f"{(rows.size, cols.size)}")

    def read(self, t: datetime, rows: np.ndarray, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Values at source rows x cols (index arrays) as float32 (len(rows), len(cols)), NaN missing;
        into ``out`` when given (a C-contiguous float32 array of that shape: a task reading step
        after step reuses one, whose pages are then faulted in once, not every step)."""
        handle = self.handle(t)
        if out is None:
            out = np.empty((rows.size, cols.size), np.float32)
        self._check_out(out, rows, cols)
        for key, dest in self._parts(handle, t, rows, cols, out):
            handle.read_into(key, dest)
        return out

    def read_at_least(self, t: datetime, rows: np.ndarray, cols: np.ndarray, step: CandidateStep,
                      floor: float) -> np.ndarray:
        """:meth:`read` into ``step.values``, exact wherever a value is at least ``floor`` (or above
        ``float32(floor)``), elsewhere exact or NaN: every mask ``values > T`` or ``values >= T``
        with ``T >= floor`` is the same as :meth:`read`'s, and so are the values in it. From
        unpacked float32 HDF5 chunks only the values whose exponent can reach ``floor`` are
        unshuffled and decoded; every other file, or a ``floor`` of 0 or below, is read whole."""
        handle = self.handle(t)
        self._check_out(step.values, rows, cols)
        step.clear()
        top = top_byte_below(floor)
        for key, dest in self._parts(handle, t, rows, cols, step.values):
            if top is not None and isinstance(handle, HDF5File):
                step.wrote(handle.read_candidates_into(key, dest, top))
            else:
                handle.read_into(key, dest)
                step.wrote(None)
        return step.values

    def attributes(self, t: datetime, names: tuple[str, ...] | None = None) -> dict:
        """The variable's own attributes (units, long_name...) from the file holding ``t``; only
        ``names`` when given (each attribute read costs: the plan needs two)."""
        return self.handle(t).attributes(names)
