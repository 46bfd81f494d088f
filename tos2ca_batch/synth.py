"""Synthetic data in the real datasets' file layouts, with a ground truth of injected features.

Kinds: ``imerg`` (GPM IMERG half-hourly HDF5: ``Grid/precipitation(time, lon, lat)``, one step
per file, gzip), ``mergir`` (half-hourly brightness temperature, two steps per file,
descending latitude), ``merra2`` (hourly ``(time, lat, lon)`` steps in daily files) and ``mur``
(daily SST as int16 with ``scale_factor``/``add_offset``/``_FillValue``). Features move,
grow, merge, split, dissipate and cross the antimeridian; a few pixels are fill or NaN.
Everything is a pure function of the seed and the time step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np

from tos2ca_batch.catalog import CatalogEntry, file_for

EPOCH_IMERG = datetime(1980, 1, 6)


@dataclass(frozen=True)
class Feature:
    """A Gaussian blob; position and strength are linear in the fraction ``u`` of the period."""

    name: str
    lat0: float
    lon0: float
    lat1: float
    lon1: float
    sigma0: float
    sigma1: float
    peak0: float
    peak1: float
    born: float = 0.0
    dies: float = 1.0

    def at(self, u: float) -> dict | None:
        if not self.born <= u <= self.dies:
            return None
        lon = self.lon0 + (self.lon1 - self.lon0) * u
        return {
            "lat": self.lat0 + (self.lat1 - self.lat0) * u,
            "lon": (lon + 180.0) % 360.0 - 180.0,
            "sigma": self.sigma0 + (self.sigma1 - self.sigma0) * u,
            "peak": self.peak0 + (self.peak1 - self.peak0) * u,
        }


# Positions in degrees; sizes scale with the grid so tests at 1 degree still resolve them.
FEATURES = (
    Feature("mover", 20, -60, 20, -30, 3.0, 3.0, 30, 30),
    Feature("antimeridian", -10, 170, -10, 200, 3.0, 3.5, 30, 30),
    Feature("merge_west", 35, -150, 35, -138.5, 2.5, 2.5, 30, 30),
    Feature("merge_east", 35, -124, 35, -135.5, 2.5, 2.5, 30, 30),
    Feature("split_north", -30, 40, -24, 40, 3.0, 2.5, 30, 30),
    Feature("split_south", -30, 40, -36, 40, 3.0, 2.5, 30, 30),
    Feature("dissipating", 0, 100, 0, 104, 3.5, 3.0, 30, 0, dies=1.0),
    Feature("grower", 45, 60, 45, 64, 1.5, 4.0, 30, 30, born=0.2),
)

KINDS = {
    "imerg": {"name": "GPM_3IMERGHH", "step": 30, "res": 0.1, "variable": "precipitation", "units": "mm/hr"},
    "mergir": {"name": "GPM_MERGIR", "step": 30, "res": 0.04, "variable": "Tb", "units": "K"},
    "merra2": {"name": "M2T1NXSLV", "step": 60, "res": 0.5, "variable": "T2M", "units": "K"},
    "mur": {"name": "MUR", "step": 1440, "res": 0.01, "variable": "analysed_sst", "units": "kelvin"},
}
PATTERNS = {
    "imerg": "imerg/{time:%Y}/{time:%j}/3B-HHR.MS.MRG.3IMERG.{time:%Y%m%d}-S{time:%H%M%S}-E{end:%H%M%S}"
             ".{minutes:04d}.V07B.HDF5",
    "mergir": "mergir/merg_{time:%Y%m%d%H}_4km-pixel.nc4",
    "merra2": "merra2/MERRA2_400.tavg1_2d_slv_Nx.{time:%Y%m%d}.nc4",
    "mur": "mur/{time:%Y%m%d}090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc",
}


def grid(res: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (ascending) and longitudes (-180..180) of a global grid."""
    ny, nx = round(180 / res), round(360 / res)
    lat = -90 + res * (np.arange(ny) + 0.5)
    lon = -180 + res * (np.arange(nx) + 0.5)
    return lat, lon


def feature_field(lat: np.ndarray, lon: np.ndarray, u: float) -> np.ndarray:
    """Sum of all features' blobs at fraction ``u`` (float32, lat x lon), each on a local window."""
    out = np.zeros((lat.size, lon.size), np.float32)
    res = abs(float(lon[1] - lon[0]))
    for f in FEATURES:
        st = f.at(u)
        if st is None or st["peak"] <= 0:
            continue
        reach = 4 * st["sigma"]
        rows = np.flatnonzero(np.abs(lat - st["lat"]) <= reach)
        dlon_all = (lon - st["lon"] + 180.0) % 360.0 - 180.0
        cols = np.flatnonzero(np.abs(dlon_all) <= reach / max(math.cos(math.radians(st["lat"])), 0.2) + res)
        if rows.size == 0 or cols.size == 0:
            continue
        dy = (lat[rows] - st["lat"])[:, None]
        dx = dlon_all[cols][None, :] * math.cos(math.radians(st["lat"]))
        blob = st["peak"] * np.exp(-(dx * dx + dy * dy) / (2 * st["sigma"] ** 2))
        out[np.ix_(rows, cols)] += blob.astype(np.float32)
    return out


def _u(t: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds()
    return 0.0 if span <= 0 else (t - start).total_seconds() / span


def _rng(seed: int, t: datetime) -> np.random.Generator:
    return np.random.default_rng([seed, int(t.timestamp()) // 60])


def precipitation(lat, lon, t, start, end, seed) -> np.ndarray:
    rng = _rng(seed, t)
    field = feature_field(lat, lon, _u(t, start, end))
    drizzle = rng.random(field.shape, np.float32) < 0.03
    field += np.where(drizzle, rng.gamma(1.0, 0.6, field.shape).astype(np.float32), 0).clip(0, 4)
    return field


def _missing_pixels(lat, lon, seed) -> tuple[np.ndarray, np.ndarray]:
    """A fixed scatter of missing pixels, including the centre of the 'mover' feature's start."""
    rng = np.random.default_rng([seed, 7])
    n = max(8, lat.size * lon.size // 20000)
    rows = rng.integers(0, lat.size, n)
    cols = rng.integers(0, lon.size, n)
    f = FEATURES[0]
    rows = np.r_[rows, np.abs(lat - f.lat0).argmin()]
    cols = np.r_[cols, np.abs(lon - f.lon0).argmin()]
    return rows, cols


def _times(kind: str, start: datetime, end: datetime) -> list[datetime]:
    step = KINDS[kind]["step"]
    first = start.replace(minute=30 if kind == "merra2" else start.minute)
    if kind == "mur":
        first = start.replace(hour=9, minute=0)
    if kind in ("imerg", "mergir"):
        first = start.replace(minute=(start.minute // 30) * 30)
    out, t = [], first
    while t <= end:
        out.append(t)
        t += timedelta(minutes=step)
    return out


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_imerg(path: Path, lat, lon, t: datetime, values: np.ndarray) -> None:
    """What a real IMERG V07 half-hour file carries: ``Grid`` group, ``(time, lon, lat)``, the GPS
    epoch with ``calendar = "julian"``, ``units`` and ``Units``, bounds, ``CodeMissingValue``."""
    def write(p):
        with netCDF4.Dataset(p, "w", format="NETCDF4") as ds:
            ds.FileHeader = (f"DOI=10.5067/GPM/IMERG/3B-HH/07;\nAlgorithmID=3IMERGHH;\nFileName={path.name};\n"
                             f"StartGranuleDateTime={t:%Y-%m-%dT%H:%M:%S}.000Z;\nTimeInterval=HALF_HOUR;\n"
                             "ProductVersion=V07B;\n")
            g = ds.createGroup("Grid")
            res = float(lat[1] - lat[0]) if lat.size > 1 else 0.1
            g.GridHeader = (f"BinMethod=ARITHMETIC_MEAN;\nRegistration=CENTER;\nLatitudeResolution={res};\n"
                            f"LongitudeResolution={res};\nOrigin=SOUTHWEST;\n")
            for name, size in (("time", 1), ("lon", lon.size), ("lat", lat.size), ("latv", 2), ("lonv", 2),
                               ("nv", 2)):
                g.createDimension(name, size)
            seconds = int((t - EPOCH_IMERG).total_seconds())
            units = "seconds since 1980-01-06 00:00:00 UTC"
            tv = g.createVariable("time", "i4", ("time",))
            tv.setncatts({"DimensionNames": "time", "Units": units, "units": units, "standard_name": "time",
                          "LongName": "Representative time of data in seconds since 1980-01-06 00:00:00 UTC.",
                          "bounds": "time_bnds", "axis": "T", "calendar": "julian"})
            tv[:] = seconds
            tb = g.createVariable("time_bnds", "i4", ("time", "nv"))
            tb.setncatts({"DimensionNames": "time,nv", "Units": units, "units": units, "coordinates": "time nv"})
            tb[:] = [[seconds, seconds + 1799]]
            for name, vals, axis, dim, unit, std in (("lon", lon, "X", "lonv", "degrees_east", "longitude"),
                                                     ("lat", lat, "Y", "latv", "degrees_north", "latitude")):
                v = g.createVariable(name, "f4", (name,))
                v.setncatts({"DimensionNames": name, "Units": unit, "units": unit, "standard_name": std,
                             "LongName": f"{std.capitalize()} at the center of {res:.2f} degree grid intervals",
                             "bounds": f"{name}_bnds", "axis": axis})
                v[:] = vals
                b = g.createVariable(f"{name}_bnds", "f4", (name, dim))
                b.setncatts({"DimensionNames": f"{name},{dim}", "Units": unit, "units": unit,
                             "coordinates": f"{name} {dim}"})
                b[:] = np.column_stack([vals - res / 2, vals + res / 2])
            v = g.createVariable("precipitation", "f4", ("time", "lon", "lat"), zlib=True, complevel=4, shuffle=True,
                                 fill_value=np.float32(-9999.9),
                                 chunksizes=(1, min(lon.size, 145), min(lat.size, 1800)))
            v.setncatts({"DimensionNames": "time,lon,lat", "Units": "mm/hr", "units": "mm/hr",
                         "coordinates": "time lon lat", "CodeMissingValue": "-9999.9",
                         "LongName": "Merged satellite-gauge precipitation estimate - with gauge calibration"})
            v.long_name = "Merged satellite-gauge precipitation estimate"
            v[0] = values.T
    _write_atomic(path, write)


def _write_cf(path: Path, lat, lon, times: list[datetime], var: str, values: list[np.ndarray], *,
              units: str, long_name: str, time_units: str, epoch: datetime, packed: bool,
              fill: float, lat_desc: bool, chunks: tuple[int, int] | None = None) -> None:
    sizes = (1, min(chunks[0], lat.size), min(chunks[1], lon.size)) if chunks else None

    def write(p):
        la = lat[::-1] if lat_desc else lat
        with netCDF4.Dataset(p, "w", format="NETCDF4") as ds:
            ds.createDimension("time", len(times))
            ds.createDimension("lat", la.size)
            ds.createDimension("lon", lon.size)
            tv = ds.createVariable("time", "i4", ("time",))
            tv.units = time_units
            tv[:] = [int((t - epoch).total_seconds() // (60 if "minutes" in time_units else 1)) for t in times]
            ds.createVariable("lat", "f4", ("lat",))[:] = la
            ds["lat"].units = "degrees_north"
            ds.createVariable("lon", "f4", ("lon",))[:] = lon
            ds["lon"].units = "degrees_east"
            if packed:
                v = ds.createVariable(var, "i2", ("time", "lat", "lon"), zlib=True, fill_value=np.int16(-32768),
                                      chunksizes=sizes)
                v.scale_factor = np.float32(0.001)
                v.add_offset = np.float32(298.15)
                v.valid_min = np.int16(-32767)
                v.valid_max = np.int16(32767)
            else:
                v = ds.createVariable(var, "f4", ("time", "lat", "lon"), zlib=True, fill_value=np.float32(fill),
                                      chunksizes=sizes)
            v.units = units
            v.long_name = long_name
            for k, arr in enumerate(values):
                missing = np.isnan(arr)
                arr = np.ma.array(np.where(missing, 298.15 if packed else 0.0, arr), mask=missing)
                v[k] = arr[::-1] if lat_desc else arr
    _write_atomic(path, write)


def synthesize(kind: str, out: str | Path, start: datetime, end: datetime, res: float | None = None,
               seed: int = 0, period: tuple[datetime, datetime] | None = None) -> Path:
    """Write ``kind`` files for ``[start, end]`` under ``out``; return the catalog file written.

    ``period`` fixes the features' life span (defaults to ``[start, end]``) so that datasets of
    different kinds written for one period show the same features.
    """
    out = Path(out)
    info = KINDS[kind]
    res = res or info["res"]
    lat, lon = grid(res)
    p0, p1 = period or (start, end)
    times = _times(kind, start, end)
    if not times:
        raise ValueError(f"no {kind} time steps between {start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M}"
                         + (" (MUR is daily at 09:00)" if kind == "mur" else ""))
    entry = {
        "fullName": f"Synthetic {info['name']} ({kind} layout, {res} degree, seed {seed})",
        "format": "hdf5" if kind == "imerg" else "netcdf4",
        "location": PATTERNS[kind],
        "timeStep": "daily" if kind == "mur" else info["step"],
        "startDate": times[0].strftime("%Y-%m-%dT%H:%M"),
        "endDate": times[-1].strftime("%Y-%m-%dT%H:%M"),
        "group": "Grid" if kind == "imerg" else None,
        "variables": [info["variable"]],
        "units": {info["variable"]: info["units"]},
        "coordinateNames": {"lat": "lat", "lon": "lon", "time": "time"},
        "dimensionOrder": ["time", "lon", "lat"] if kind == "imerg" else ["time", "lat", "lon"],
        "stages": ["phdef", "curation"],
    }
    abs_entry = CatalogEntry.from_json(info["name"], dict(entry, location=str(out / PATTERNS[kind])))
    miss_r, miss_c = _missing_pixels(lat, lon, seed)
    by_file: dict[str, list[datetime]] = {}
    for t in times:
        by_file.setdefault(file_for(abs_entry, t), []).append(t)
    for path, ts in by_file.items():
        fields = []
        for t in ts:
            f = precipitation(lat, lon, t, p0, p1, seed)
            if kind == "imerg":
                f[miss_r, miss_c] = -9999.9
            elif kind == "mergir":
                f = 290.0 - 3.0 * f
                f[miss_r, miss_c] = np.nan
            elif kind == "merra2":
                f = (288.0 + 10 * np.cos(np.radians(lat))[:, None] - 0.2 * f
                     + 0.01 * lon[None, :]).astype(np.float32)
            elif kind == "mur":
                f = (280.0 + 0.1 * lat[:, None] + 0.01 * lon[None, :] + 0.05 * f).astype(np.float32)
                f[np.abs(lat) > 70, :] = np.nan  # sea ice / land: fill
            fields.append(f)
        if kind == "imerg":
            _write_imerg(Path(path), lat, lon, ts[0], fields[0])
        elif kind == "mergir":
            _write_cf(Path(path), lat, lon, ts, "Tb", fields, units="K", long_name="Brightness temperature",
                      time_units="minutes since 1998-01-01 00:00:00", epoch=datetime(1998, 1, 1),
                      packed=False, fill=-9999.0, lat_desc=True)
        elif kind == "merra2":
            day = ts[0].replace(hour=0, minute=30)
            _write_cf(Path(path), lat, lon, ts, "T2M", fields, units="K", long_name="2-meter air temperature",
                      time_units=f"minutes since {day:%Y-%m-%d %H:%M:%S}", epoch=day, packed=False,
                      fill=9.9999999e14, lat_desc=False)
        else:
            _write_cf(Path(path), lat, lon, ts, "analysed_sst", fields, units="kelvin",
                      long_name="analysed sea surface temperature",
                      time_units="seconds since 1981-01-01 00:00:00", epoch=datetime(1981, 1, 1),
                      packed=True, fill=-32768, lat_desc=False, chunks=(1023, 2047))  # MUR v4.1's chunks
    truth = {
        "kind": kind, "seed": seed, "res": res, "period": [p0.isoformat(), p1.isoformat()],
        "features": [
            {"name": f.name, "track": [dict(t=t.strftime("%Y%m%d%H%M"), **st) for t in times
                                       if (st := f.at(_u(t, p0, p1))) is not None]}
            for f in FEATURES
        ],
        "events": {"merge": ["merge_west", "merge_east"], "split": ["split_north", "split_south"],
                   "dissipation": ["dissipating"], "antimeridian": ["antimeridian"]},
        "missing_pixels": {"lat": lat[miss_r].tolist(), "lon": lon[miss_c].tolist()},
    }
    (out / f"truth-{kind}.json").write_text(json.dumps(truth, indent=1))
    catalog = out / f"catalog-{kind}.json"
    catalog.write_text(json.dumps({info["name"]: entry}, indent=2))
    return catalog
