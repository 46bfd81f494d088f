"""The final anomaly ids as a CF-1.8 dataset ``(time, lat, lon)``: Zarr (chunk store) and netCDF-4.

Both carry the same variables (``anomaly_id``, ``time``/``lat``/``lon`` and their bounds) and the
same attributes, so a user gets one dataset whichever they open. Time is int32 minutes since
1970-01-01 (the file times' UTC labels; every step starts on a whole minute), bounds are the
dataset's own time step and the cells' edges.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from tos2ca_batch.algorithm import cell_edges
from tos2ca_batch.timeutil import step_end

EPOCH = datetime(1970, 1, 1)
TIME_UNITS = "minutes since 1970-01-01 00:00:00"
ID_ATTRS = {
    "long_name": "ForTraCC anomaly id (0 = no anomaly)",
    "units": "1",
    "coordinates": "time lat lon",
}
COORD_ATTRS = {
    "time": {"units": TIME_UNITS, "calendar": "standard", "standard_name": "time", "axis": "T",
             "bounds": "time_bnds", "long_name": "start of the time step"},
    "lat": {"units": "degrees_north", "standard_name": "latitude", "axis": "Y", "bounds": "lat_bnds"},
    "lon": {"units": "degrees_east", "standard_name": "longitude", "axis": "X", "bounds": "lon_bnds"},
}


def _minutes(t: datetime) -> int:
    return int((t - EPOCH).total_seconds() // 60)


def coordinates(lat: np.ndarray, lon: np.ndarray, times: list[datetime], time_step) -> dict[str, np.ndarray]:
    """Coordinate and bounds arrays: time (int32 minutes), time_bnds (the step), lat/lon bounds (edges)."""
    lat_e = cell_edges(np.asarray(lat, np.float64))
    lon_u = np.unwrap(np.asarray(lon, np.float64), period=360.0)
    lon_e = cell_edges(lon_u)
    lon_b = np.column_stack([lon_e[:-1], lon_e[1:]])
    lon_b = lon_b - 360.0 * np.floor((lon_u[:, None] + 180.0) / 360.0)  # each cell beside its own centre
    return {
        "time": np.array([_minutes(t) for t in times], np.int32),
        "time_bnds": np.array([[_minutes(t), _minutes(step_end(t, time_step))] for t in times], np.int32),
        "lat": np.asarray(lat, np.float64),
        "lat_bnds": np.column_stack([np.clip(lat_e[:-1], -90, 90), np.clip(lat_e[1:], -90, 90)]),
        "lon": np.asarray(lon, np.float64),
        "lon_bnds": lon_b,
    }


def _bounds_dim(name: str) -> tuple[str, str]:
    return name.split("_")[0], "nv"


GROUP_ATTRS = {"Conventions": "CF-1.8", "title": "ForTraCC anomaly ids"}


def cf_arrays(coords: dict) -> dict[str, tuple[np.ndarray, tuple[str, ...], dict]]:
    """The coordinate and bounds arrays of the ids dataset: name -> (values, dimensions, attributes)."""
    arrays = coordinates(coords["lat"], coords["lon"], coords["times"], coords["time_step"])
    return {name: (values, _bounds_dim(name) if name.endswith("_bnds") else (name,), COORD_ATTRS.get(name, {}))
            for name, values in arrays.items()}


def create_cf_group(group, shape, chunks, coords: dict) -> None:
    """Add ``anomaly_id``, its coordinates and bounds to a Zarr v3 group that xarray opens as is
    (with zarr itself; a job writes the same bytes through ``stores.zarrwrite``)."""
    group.attrs.update(GROUP_ATTRS)
    group.create_array("anomaly_id", shape=shape, chunks=chunks, dtype="int32", fill_value=0,
                       dimension_names=("time", "lat", "lon"), attributes=ID_ATTRS)
    for name, (values, dims, attrs) in cf_arrays(coords).items():
        a = group.create_array(name, shape=values.shape, dtype=values.dtype, dimension_names=dims, attributes=attrs)
        a[:] = values


def extend_cf_group(group, times: list[datetime], time_step) -> None:
    """Lengthen a group made by :func:`create_cf_group` to ``times`` (its steps and later ones):
    ``anomaly_id`` grows along time (new steps read 0 until written), time and its bounds are
    rewritten whole."""
    ids = group["anomaly_id"]
    ids.resize((len(times), *ids.shape[1:]))
    first = group["lat"][:], group["lon"][:]
    arrays = coordinates(first[0], first[1], times, time_step)
    for name in ("time", "time_bnds"):
        group[name].resize(arrays[name].shape)
        group[name][:] = arrays[name]


def netcdf_attributes(attrs: dict) -> dict:
    """JSON-typed attributes as netCDF ones (whole numbers as int32, lists as arrays)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            v = np.int8(v)
        elif isinstance(v, int):
            v = np.int32(v)
        elif isinstance(v, list):
            v = np.asarray(v)
        out[k] = v
    return out


def write_ids_netcdf(path: str, lat, lon, times: list[datetime], time_step, read_step, attrs: dict) -> None:
    """Stream the id cube step by step into a CF netCDF-4 file with ``attrs`` (JSON-typed).

    Time is the unlimited dimension, so a sync appends its steps (:func:`append_ids_netcdf`)."""
    import netCDF4

    arrays = coordinates(lat, lon, times, time_step)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(netcdf_attributes({"Conventions": "CF-1.8", **attrs}))
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.createDimension("nv", 2)
        for name, values in arrays.items():
            dims = _bounds_dim(name) if name.endswith("_bnds") else (name,)
            v = ds.createVariable(name, values.dtype, dims)
            v.setncatts(COORD_ATTRS.get(name, {}))
            v[:] = values
        ids = ds.createVariable("anomaly_id", "i4", ("time", "lat", "lon"), zlib=True, complevel=4,
                                chunksizes=(1, lat.size, lon.size))
        ids.setncatts(ID_ATTRS)
        for s in range(len(times)):
            ids[s] = read_step(s)


def append_ids_netcdf(path: str, lat, lon, times: list[datetime], time_step, read_step, attrs: dict) -> bool:
    """Make ``path``, a copy of an earlier ids file of the same job (a prefix of ``times``), the
    file :func:`write_ids_netcdf` writes for ``times``: the steps it lacks are written (asked of
    ``read_step``), time, its bounds and the attributes set. False (nothing changed) if its time
    axis cannot grow (a file written before time was unlimited)."""
    import netCDF4

    with netCDF4.Dataset(path, "a") as ds:
        if not ds.dimensions["time"].isunlimited():
            return False
        first_new = len(ds.dimensions["time"])
        arrays = coordinates(lat, lon, times, time_step)
        ds.setncatts(netcdf_attributes({"Conventions": "CF-1.8", **attrs}))
        ds["time"][:] = arrays["time"]
        ds["time_bnds"][:] = arrays["time_bnds"]
        for s in range(first_new, len(times)):
            ds["anomaly_id"][s] = read_step(s)
    return True
