"""An xarray object or a Zarr store as a dataset of the catalog (``tos2ca_batch.run(spec, data=...)``).

A job's tasks run in other processes (a pool, MPI ranks, containers), so an in-memory object is
written once into a Zarr store under the work dir (``inputs/<digest>.zarr``, one chunk per
step, named by a digest of its values and coordinates, so the same data is written once) and
read from there like any file: each task reads only its chunk's steps and window. A Zarr store
given by path is read where it is. Either way the store gets a catalog entry (format ``zarr``,
written under ``inputs/`` too) describing its variable, grid and regular time
axis, and the job is planned, chunked and run as one on files: same plan, same outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from tos2ca_batch.errors import SpecError

LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "longitude", "x")


def _name_of(ds, candidates: tuple[str, ...], what: str) -> str:
    for name in candidates:
        if name in ds.coords or name in ds.variables:
            return name
    raise SpecError("data", f"needs a {what} coordinate named one of {', '.join(candidates)}; it has "
                            f"{', '.join(map(str, ds.coords)) or 'none'}")


def as_dataset(data, variable: str | None):
    """``data`` (DataArray or Dataset) as a Dataset and the name of the variable to read."""
    import xarray as xr

    if isinstance(data, xr.DataArray):
        name = variable or (str(data.name) if data.name is not None else "data")
        return data.to_dataset(name=name), name
    if isinstance(data, xr.Dataset):
        if variable is None or variable not in data.data_vars:
            raise SpecError("variable", "must name one of the Dataset's variables: "
                                        f"{', '.join(map(str, data.data_vars))}")
        return data, variable
    raise SpecError("data", f"must be an xarray DataArray or Dataset, or the path of a Zarr store; got "
                            f"{type(data).__name__}")


def digest(ds, variable: str) -> str:
    """What names a store: the variable's values, its dims and the coordinates' values."""
    h = hashlib.sha256(variable.encode())
    for name in (variable, *sorted(map(str, ds[variable].coords))):
        v = ds[name]
        h.update(f"{name}:{v.dims}:{v.dtype}:{v.shape}".encode())
        values = v.values
        h.update(np.ascontiguousarray(values.astype("int64") if values.dtype.kind == "M" else values).tobytes())
    return h.hexdigest()[:16]


def write_store(ds, variable: str, folder: Path) -> Path:
    """The Zarr store of ``ds[variable]`` under ``folder`` (written once, atomically: to a
    temporary name, renamed when complete)."""
    time = _name_of(ds, ("time",), "time")
    lat, lon = _name_of(ds, LAT_NAMES, "latitude"), _name_of(ds, LON_NAMES, "longitude")
    one = ds[[variable]]
    path = folder / f"{digest(one, variable)}.zarr"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    var = one[variable]
    chunks = tuple(1 if d == time else min(int(one.sizes[d]), 1024) for d in var.dims)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}"
    encoding = {variable: {"chunks": chunks}}
    if lat not in var.dims or lon not in var.dims:
        raise SpecError("data", f"{variable} must have dimensions {time}, {lat} and {lon}; it has {var.dims}")
    try:
        one.to_zarr(tmp, mode="w", encoding=encoding, consolidated=True, zarr_format=2)  # read by every zarr
        os.replace(tmp, path)
    except FileExistsError:  # another process wrote the same data first: use it
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists():
            raise
    return path


def catalog_for(store: str | Path, name: str, variable: str, folder: Path) -> Path:
    """Write into ``folder`` (and return) the catalog file of a Zarr store: one dataset ``name``
    whose single "file" is the store, with its grid's coordinate names and regular time axis."""
    import xarray as xr

    store = Path(store).resolve()
    try:
        ds = xr.open_zarr(store, decode_times=True, chunks=None)
    except Exception as exc:
        raise SpecError("data", f"cannot open {store} as a Zarr store ({type(exc).__name__}: {exc})") from None
    with ds:
        if variable not in ds.data_vars:
            raise SpecError("variable", f"{variable!r} is not in {store}; it has {', '.join(map(str, ds.data_vars))}")
        time = _name_of(ds, ("time",), "time")
        lat, lon = _name_of(ds, LAT_NAMES, "latitude"), _name_of(ds, LON_NAMES, "longitude")
        times = ds[time].values.astype("datetime64[m]")
        if times.size == 0:
            raise SpecError("data", "has no time steps")
        steps = np.unique(np.diff(times).astype(np.int64)) if times.size > 1 else np.array([60])
        if steps.size != 1 or steps[0] <= 0:
            raise SpecError("data", f"times must be evenly spaced and increasing; found steps of {steps.tolist()} "
                                    "minutes")
        entry = {"format": "zarr", "location": str(store), "timeStep": int(steps[0]),
                 "startDate": str(times[0])[:16], "endDate": str(times[-1])[:16], "variables": [variable],
                 "coordinateNames": {"lat": lat, "lon": lon, "time": time},
                 "units": {variable: str(ds[variable].attrs.get("units", ""))},
                 "fullName": str(ds.attrs.get("title", name)), "stages": ["phdef", "curation"]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{hashlib.sha256(str(store).encode()).hexdigest()[:8]}.catalog.json"
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps({name: entry}, indent=1))
    os.replace(tmp, path)
    return path


def data_catalog(data, spec: dict, workdir: Path) -> tuple[dict, Path]:
    """The spec to run on ``data`` and the catalog file that names it: ``spec["dataset"]`` (or
    ``xarray-<digest>``) becomes the data's entry, ``spec["variable"]`` its variable (or the
    DataArray's name)."""
    if isinstance(data, str | Path):
        if not spec.get("variable"):
            raise SpecError("variable", "name the Zarr store's variable to read")
        name = spec.get("dataset") or f"zarr-{hashlib.sha256(str(data).encode()).hexdigest()[:8]}"
        return dict(spec, dataset=name), catalog_for(data, name, spec["variable"], workdir / "inputs")
    ds, variable = as_dataset(data, spec.get("variable"))
    store = write_store(ds, variable, workdir / "inputs")
    name = spec.get("dataset") or f"xarray-{store.stem}"
    return dict(spec, dataset=name, variable=variable), catalog_for(store, name, variable, workdir / "inputs")
