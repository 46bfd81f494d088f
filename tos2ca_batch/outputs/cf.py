"""The final anomaly ids as a CF dataset ``(time, lat, lon)``: Zarr (chunk store) and netCDF-4."""

from __future__ import annotations

from datetime import datetime

import netCDF4
import numpy as np

ID_ATTRS = {
    "long_name": "ForTraCC anomaly id (0 = no anomaly)",
    "units": "1",
    "coordinates": "time lat lon",
}


def _time_values(times: list[datetime]) -> tuple[np.ndarray, str]:
    t0 = times[0]
    units = f"minutes since {t0:%Y-%m-%d %H:%M:%S}"
    return np.array([int((t - t0).total_seconds() // 60) for t in times], np.int64), units


def create_cf_group(group, shape, chunks, coords: dict) -> None:
    """Add ``anomaly_id`` and its coordinates to a Zarr v3 group that xarray opens as is."""
    tvals, tunits = _time_values(coords["times"])
    group.attrs.update({"Conventions": "CF-1.8", "title": "ForTraCC anomaly ids",
                        "source_variable": coords["variable"]})
    group.create_array("anomaly_id", shape=shape, chunks=chunks, dtype="int32", fill_value=0,
                       dimension_names=("time", "lat", "lon"), attributes=ID_ATTRS)
    t = group.create_array("time", shape=tvals.shape, dtype="int64", dimension_names=("time",),
                           attributes={"units": tunits, "calendar": "standard", "standard_name": "time",
                                       "axis": "T"})
    t[:] = tvals
    lat = group.create_array("lat", shape=coords["lat"].shape, dtype="float64", dimension_names=("lat",),
                             attributes={"units": "degrees_north", "standard_name": "latitude", "axis": "Y"})
    lat[:] = coords["lat"]
    lon = group.create_array("lon", shape=coords["lon"].shape, dtype="float64", dimension_names=("lon",),
                             attributes={"units": "degrees_east", "standard_name": "longitude", "axis": "X"})
    lon[:] = coords["lon"]


def write_ids_netcdf(path: str, lat, lon, times: list[datetime], read_step, attrs: dict) -> None:
    """Stream the id cube step by step into a CF netCDF-4 file."""
    tvals, tunits = _time_values(times)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts({"Conventions": "CF-1.8", **attrs})
        ds.createDimension("time", len(times))
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        t = ds.createVariable("time", "i8", ("time",))
        t.setncatts({"units": tunits, "calendar": "standard", "standard_name": "time", "axis": "T"})
        t[:] = tvals
        v = ds.createVariable("lat", "f8", ("lat",))
        v.setncatts({"units": "degrees_north", "standard_name": "latitude", "axis": "Y"})
        v[:] = lat
        v = ds.createVariable("lon", "f8", ("lon",))
        v.setncatts({"units": "degrees_east", "standard_name": "longitude", "axis": "X"})
        v[:] = lon
        ids = ds.createVariable("anomaly_id", "i4", ("time", "lat", "lon"), zlib=True, complevel=4,
                                chunksizes=(1, lat.size, lon.size))
        ids.setncatts(ID_ATTRS)
        for s in range(len(times)):
            ids[s] = read_step(s)
