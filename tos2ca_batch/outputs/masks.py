"""The TOS2CA masks file, table of contents and hierarchy (SPEC section 6)."""

from __future__ import annotations

import json

import netCDF4
import numpy as np


def step_pixels(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anomaly pixels of one step ordered by anomaly id, then row-major: rows, cols, ids, flat index."""
    flat = ids.ravel()
    nz = np.flatnonzero(flat)
    order = np.argsort(flat[nz], kind="stable")
    nz = nz[order]
    width = ids.shape[1]
    return (nz // width).astype(np.int32), (nz % width).astype(np.int32), flat[nz].astype(np.int32), nz


def per_anomaly_stats(aid: np.ndarray, values: np.ndarray) -> dict[int, dict]:
    """count/min/max/mean/std (population) of ``values`` per anomaly id; ``aid`` sorted."""
    if aid.size == 0:
        return {}
    v = values.astype(np.float64)
    starts = np.flatnonzero(np.r_[True, aid[1:] != aid[:-1]])
    counts = np.diff(np.r_[starts, aid.size])
    sums = np.add.reduceat(v, starts)
    means = sums / counts
    dev = v - np.repeat(means, counts)
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / counts)
    out = {}
    for k, a in enumerate(aid[starts]):
        out[int(a)] = {
            "count": int(counts[k]), "min": float(v[starts[k]:starts[k] + counts[k]].min()),
            "max": float(v[starts[k]:starts[k] + counts[k]].max()), "mean": float(means[k]), "std": float(std[k]),
        }
    return out


def write_masks(path: str, attrs: dict, lat, lon, timestamps: list[str], n_events: int, read_step) -> None:
    """``read_step(s)`` returns step s's anomaly pixels: rows, cols, ids, values (in file order).

    ``attrs`` holds TOS2CA's root attributes plus ``units`` and ``long_name`` of the variable,
    which ``data_values`` carries too."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(attrs)
        nav = ds.createGroup("navigation")
        nav.createDimension("lat", lat.size)
        nav.createDimension("lon", lon.size)
        nav.createVariable("lat", "f4", ("lat",))[:] = lat
        nav.createVariable("lon", "f4", ("lon",))[:] = lon
        nav["lat"].units = "degrees_north"
        nav["lon"].units = "degrees_east"
        masks = ds.createGroup("masks")
        masks.num_events = np.int32(n_events)
        for s, ts in enumerate(timestamps):
            rows, cols, aid, vals = read_step(s)
            g = masks.createGroup(ts)
            g.createDimension("num_pixels", rows.size)
            g.createDimension("num_cols", 3)
            mi = g.createVariable("mask_indices", "i4", ("num_pixels", "num_cols"), zlib=True)
            mi.long_name = ("row and column of each anomalous pixel (indices into /navigation lat and lon) and "
                            "its anomaly id")
            mi.units = "1"
            dv = g.createVariable("data_values", "f4", ("num_pixels",), zlib=True)
            dv.long_name = attrs.get("long_name", attrs.get("variable", ""))
            dv.units = attrs.get("units", "")
            if rows.size:
                mi[:] = np.column_stack([rows, cols, aid])
                dv[:] = vals


def toc(anomaly_ids: np.ndarray, steps: np.ndarray, timestamps: list[str], n_events: int) -> list[dict]:
    out = []
    for a in range(1, n_events + 1):
        s = steps[anomaly_ids == a]
        out.append({"name": f"Anomaly {a}", "start_date": timestamps[int(s.min())],
                    "end_date": timestamps[int(s.max())]})
    return out


def hierarchy(timestamps: list[str]) -> dict:
    return {"navigation": ["lat", "lon"], "masks": {ts: ["mask_indices", "data_values"] for ts in timestamps}}


def dump_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
