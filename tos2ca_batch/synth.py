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


class FractalRain:
    """A rain-like field: a Gaussian random field with a power-law spatial spectrum (its
    isotropic energy spectrum ``E(k) ~ k^-slope``, i.e. 2-D power ``k^-(slope + 1)``, flat above
    ~20 degrees), each Fourier mode an AR(1) process in time whose memory
    shortens with its scale (a day at the planetary scale, an hour at the grid scale) and whose
    phase turns with a uniform eastward drift, so cells are advected and grow, merge, split and
    die; it is then made intermittent: dry below a level (most pixels), rain rising
    exponentially above it, a latitude profile (ITCZ and storm tracks wetter, subtropics and
    poles drier), scaled so that ``wet_1pc`` mm/hr is exceeded by about 1 % of pixels. The
    grid is periodic in both directions (in longitude as the Earth is). Deterministic: the
    state starts at ``start`` from ``seed`` and each step draws from ``(seed, time)``."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, seed: int, start: datetime, step_minutes: int,
                 slope: float = 2.5, drift_deg: float = 0.15, wet_1pc: float = 10.0):
        self.lat, self.shape, self.seed = lat, (lat.size, lon.size), seed
        res = abs(float(lon[1] - lon[0])) if lon.size > 1 else 1.0
        ky = np.fft.fftfreq(lat.size)[:, None]
        kx = np.fft.rfftfreq(lon.size)[None, :]
        k = np.hypot(ky, kx)
        # The power law below scales of ~20 degrees, flat above them (the synoptic scale), so
        # that the global coverage does not swing with a few planetary modes.
        k0 = res / 20.0
        self.amp = (k * k + k0 * k0) ** (-(slope + 1) / 4)
        self.amp[0, 0] = 0.0  # no mean: the level is set below
        hours = np.clip(24.0 * k0 / np.maximum(k, k0), 1.0, 24.0)
        self.rho = np.exp(-(step_minutes / 60.0) / hours)
        self.turn = np.exp(-2j * np.pi * kx * (drift_deg / res))  # a shift of drift_deg east a step
        self.step_minutes = step_minutes
        self.t = start
        self.state = self.amp * self._noise(start)
        self.profile = (0.55 * np.exp(-((lat - 5.0) / 14.0) ** 2) + 0.3 * np.exp(-((np.abs(lat) - 45.0) / 12.0) ** 2)
                        - 0.8 * (np.abs(lat) / 90.0) ** 2)[:, None]
        g = self._gaussian()
        self.scale_g = 1.0 / float(g.std())
        g = g * self.scale_g + self.profile
        self.dry = float(np.quantile(g, 0.88))  # 12 % of pixels rain
        self.gain = 1.6
        at_1pc = float(np.quantile(g, 0.99))
        self.r0 = wet_1pc / np.expm1(self.gain * (at_1pc - self.dry))

    def _noise(self, t: datetime) -> np.ndarray:
        rng = _rng(self.seed, t)
        shape = self.amp.shape
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)

    def _gaussian(self) -> np.ndarray:
        return np.fft.irfft2(self.state, s=self.shape)

    def advance(self, t: datetime) -> None:
        """Step the state forward to ``t`` (a later time of the axis)."""
        while self.t < t:
            self.t += timedelta(minutes=self.step_minutes)
            self.state = self.rho * self.turn * self.state + np.sqrt(1 - self.rho ** 2) * self.amp * self._noise(self.t)

    def at(self, t: datetime) -> np.ndarray:
        """Rain rate (mm/hr, float32, lat x lon) at ``t``."""
        self.advance(t)
        g = self._gaussian() * self.scale_g + self.profile
        return np.where(g > self.dry, self.r0 * np.expm1(self.gain * (g - self.dry)), 0.0).astype(np.float32)


def step_counts(values: np.ndarray, threshold: float = 10.0) -> dict:
    """What a rain field's step holds at ``threshold``: wet and above-threshold fractions and
    8-connected components above it (the longitude wrap joins the two edges' components)."""
    from tos2ca_batch.kernels.components import label

    above = values > threshold
    labels, n = label(above, 2)
    if n and labels.shape[1] > 1:  # components touching across the wrap count once
        west, east = labels[:, 0], labels[:, -1]
        pairs = set()
        for dr in (-1, 0, 1):
            e = np.roll(east, dr)
            if dr == -1:
                e[-1] = 0
            elif dr == 1:
                e[0] = 0
            pairs |= {(int(a), int(b)) for a, b in zip(west, e) if a and b and a != b}
        parent = list(range(n + 1))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x
        for a, b in pairs:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
                n -= 1
    return {"wet": round(float(np.mean(values > 0)), 4), "above": round(float(above.mean()), 5), "components": n}


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


FIELDS = ("blobs", "fractal")


def synthesize(kind: str, out: str | Path, start: datetime, end: datetime, res: float | None = None,
               seed: int = 0, period: tuple[datetime, datetime] | None = None, field: str = "blobs",
               progress=None) -> Path:
    """Write ``kind`` files for ``[start, end]`` under ``out``; return the catalog file written.

    ``period`` fixes the features' life span (defaults to ``[start, end]``) so that datasets of
    different kinds written for one period show the same features. ``field``: ``blobs`` (the
    named features of the ground truth, on drizzle) or ``fractal`` (:class:`FractalRain`, as
    busy as real rain: hundreds to thousands of cells a step at 0.1 degree; its truth lists each
    step's coverage and component count instead of features, as does ``progress(stamp,
    counts)`` when given, for every step written).
    """
    if field not in FIELDS:
        raise ValueError(f"field must be one of {', '.join(FIELDS)}, got {field!r}")
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
    rain = FractalRain(lat, lon, seed, min(p0, times[0]), info["step"]) if field == "fractal" else None
    per_step = []
    for path, ts in by_file.items():
        fields = []
        for t in ts:
            f = precipitation(lat, lon, t, p0, p1, seed) if rain is None else rain.at(t)
            if rain is not None:
                per_step.append(dict(t=t.strftime("%Y%m%d%H%M"), **step_counts(f)))
                if progress is not None:
                    progress(per_step[-1]["t"], per_step[-1])
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
        "kind": kind, "seed": seed, "res": res, "period": [p0.isoformat(), p1.isoformat()], "field": field,
        "steps": per_step or None,
        "features": [] if rain is not None else [
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
