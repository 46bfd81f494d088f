"""Inject features with a known truth into a copy of a dataset's files (``tos2ca-batch inject``).

The copy keeps the files' layout byte for byte apart from the injected variable's values where a
feature lies: each file is copied whole, then only those pixels are rewritten, packed as the
variable is stored (``scale_factor``/``add_offset``, dtype; compression, chunking, attributes and
time coordinates are the copy's own). A catalog entry names the copy; a truth file lists, per
step and feature, the feature's pixels (sparse, as ``row * n_lon + col`` of the files' own grid)
and the lineage events, for ``tos2ca-batch score``.

Features (a JSON document, see :func:`load_features`) are flat-topped disks: inside the radius
the value is the background's plus the amplitude. They move (degrees a step), grow (degrees of
radius a step), are born and die at given steps (longitude wraps, so a feature may cross 180);
``merges_into`` and ``splits_from`` declare the lineage a detector should find. A pixel inside
two features belongs to the one listed first. Missing background pixels stay missing and are
no feature's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.config import Config
from tos2ca_batch.decoding import DECODING_ATTRIBUTES, Decoding, netcdf_value
from tos2ca_batch.errors import SpecError
from tos2ca_batch.readers import StepReader
from tos2ca_batch.timeutil import axis, to_ts


@dataclass(frozen=True)
class Feature:
    id: int
    name: str
    lat: float
    lon: float
    radius: float
    amplitude: float
    birth: int
    death: int  # first step without it
    velocity: tuple[float, float] = (0.0, 0.0)  # degrees of (lat, lon) a step
    growth: float = 0.0  # degrees of radius a step
    merges_into: str | None = None
    splits_from: str | None = None

    def at(self, k: int) -> tuple[float, float, float] | None:
        """Centre latitude, longitude and radius at step ``k``, None outside its life."""
        if not self.birth <= k < self.death:
            return None
        age = k - self.birth
        return (self.lat + self.velocity[0] * age, self.lon + self.velocity[1] * age,
                max(0.0, self.radius + self.growth * age))


EXAMPLE_FEATURES = {"features": [
    {"name": "mover", "lat": 0, "lon": 172, "radius": 3, "amplitude": 20, "velocity": [0, 2]},  # crosses 180
    # west nears east (which grows) and touches it at step 3; its last step is 3: a merge at step 4
    {"name": "west", "lat": 20, "lon": -100, "radius": 3, "amplitude": 20, "velocity": [0, 1.5], "death": 4,
     "merges_into": "east"},
    {"name": "east", "lat": 20, "lon": -88, "radius": 3, "amplitude": 20, "growth": 0.5},
    # parent runs east 4 degrees a step, shrinking; at step 6 child appears over part of where parent
    # was (ForTraCC sees a split when the earlier component is the larger)
    {"name": "parent", "lat": -20, "lon": 40, "radius": 5, "amplitude": 20, "velocity": [0, 4], "growth": -0.2},
    {"name": "child", "lat": -20, "lon": 55, "radius": 3, "amplitude": 20, "birth": 6, "velocity": [0, -1],
     "splits_from": "parent"},
]}
"""The worked example (README, ``benchmarks/example_sweep.py``, the tests): five features over
12 half-hourly steps of a 1-degree grid: a mover across 180, a merge and a split."""

FEATURE_FIELDS = {"name", "lat", "lon", "radius", "amplitude", "birth", "death", "velocity", "growth",
                  "merges_into", "splits_from"}


def load_features(doc: dict, n_steps: int) -> list[Feature]:
    """``{"features": [{name, lat, lon, radius, amplitude, birth, death, velocity?, growth?,
    merges_into?, splits_from?}], "random": {"count", "seed", "radius": [lo, hi], "amplitude":
    [lo, hi], "lifetime": [lo, hi], "speed": max degrees a step, "lat": [lo, hi]}}``; steps
    count from the range's first (``death`` defaults to the range's end)."""
    if not isinstance(doc, dict) or set(doc) - {"features", "random"}:
        raise SpecError("features", 'must be {"features": [...], "random": {...}}')
    out: list[Feature] = []
    for k, f in enumerate(doc.get("features", [])):
        if not isinstance(f, dict) or set(f) - FEATURE_FIELDS or not {"lat", "lon", "radius", "amplitude"} <= set(f):
            raise SpecError(f"features[{k}]", f"needs lat, lon, radius, amplitude; allowed: {sorted(FEATURE_FIELDS)}")
        out.append(Feature(len(out) + 1, str(f.get("name", f"f{len(out) + 1}")), float(f["lat"]), float(f["lon"]),
                           float(f["radius"]), float(f["amplitude"]), int(f.get("birth", 0)),
                           int(f.get("death", n_steps)), tuple(map(float, f.get("velocity", (0.0, 0.0)))),
                           float(f.get("growth", 0.0)), f.get("merges_into"), f.get("splits_from")))
    rnd = doc.get("random")
    if rnd:
        rng = np.random.default_rng(int(rnd.get("seed", 0)))
        for _ in range(int(rnd.get("count", 0))):
            life = int(rng.integers(*rnd.get("lifetime", [3, max(4, n_steps)]), endpoint=True))
            birth = int(rng.integers(0, max(1, n_steps - 1)))
            speed = float(rnd.get("speed", 0.5))
            out.append(Feature(len(out) + 1, f"random{len(out) + 1}", float(rng.uniform(*rnd.get("lat", [-60, 60]))),
                               float(rng.uniform(-180, 180)), float(rng.uniform(*rnd.get("radius", [2, 5]))),
                               float(rng.uniform(*rnd.get("amplitude", [15, 30]))), birth, min(n_steps, birth + life),
                               (float(rng.uniform(-speed, speed)), float(rng.uniform(-speed, speed)))))
    names = {f.name for f in out}
    for f in out:
        for other in (f.merges_into, f.splits_from):
            if other is not None and other not in names:
                raise SpecError("features", f"{f.name} refers to {other!r}, which is no feature")
    return out


def footprints(features: list[Feature], k: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The feature id of every pixel at step ``k`` (0: none), on the files' grid (lat x lon)."""
    out = np.zeros((lat.size, lon.size), np.int32)
    for f in features:
        where = f.at(k)
        if where is None:
            continue
        clat, clon, radius = where
        dlat = lat[:, None] - clat
        dlon = (lon[None, :] - clon + 180.0) % 360.0 - 180.0
        inside = dlat**2 + (dlon * np.cos(np.radians(clat))) ** 2 <= radius**2
        out[inside & (out == 0)] = f.id
    return out


def events(features: list[Feature], stamps: list[str]) -> list[dict]:
    """The lineage a detector should find: a merge at the first step without the merged feature
    (into the other), a split at the new feature's first step (from its parent)."""
    by_name = {f.name: f for f in features}
    out = []
    for f in features:
        if f.merges_into and f.death < len(stamps):
            out.append({"kind": "merge", "time": stamps[f.death], "feature": by_name[f.merges_into].id,
                        "other": f.id})
        if f.splits_from and 0 < f.birth < len(stamps):
            out.append({"kind": "split", "time": stamps[f.birth], "feature": by_name[f.splits_from].id,
                        "other": f.id})
    return sorted(out, key=lambda e: (e["time"], e["kind"], e["feature"]))


def _copy_location(entry: CatalogEntry) -> str:
    """The copy's location pattern, relative to its catalog: the entry's from its first
    placeholder's folder on."""
    loc = entry.location
    head = loc[: loc.index("{")] if "{" in loc else loc
    return loc[head.rfind("/") + 1:]


def _encode(decoding: Decoding, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if decoding.offset is not None:
        v = v - float(decoding.offset)
    if decoding.scale is not None:
        v = v / float(decoding.scale)
    if np.dtype(dtype).kind in "iu":
        v = np.rint(v)
    return v.astype(dtype)


def inject(cfg: Config, dataset: str, start: datetime, end: datetime, features_doc: dict, out: Path,
           variable: str | None = None, name: str | None = None) -> dict:
    """Write the copy, its catalog and the truth under ``out``; returns their paths."""
    import h5py

    catalog = cfg.catalog()
    if dataset not in catalog:
        raise SpecError("dataset", f"unknown dataset {dataset!r}; known: {', '.join(sorted(catalog))}")
    entry = catalog[dataset]
    variable = variable or (entry.variables[0] if entry.variables else None)
    if variable is None:
        raise SpecError("variable", f"{dataset} lists no variables; give --variable")
    times = axis(entry.first, entry.time_step, max(start, entry.first), min(end, entry.last))
    if not times:
        raise SpecError("start", f"no time steps of {dataset} between {start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M}")
    stamps = [to_ts(t) for t in times]
    features = load_features(features_doc, len(times))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = name or f"{dataset}_injected"
    doc = dict(entry.to_json(), location=_copy_location(entry), startDate=f"{times[0]:%Y-%m-%dT%H:%M}",
               endDate=f"{times[-1]:%Y-%m-%dT%H:%M}", fullName=f"{entry.full_name or dataset} with injected features")
    copy = CatalogEntry.from_json(name, dict(doc, location=str(out / doc["location"])))  # where to write
    truth_steps = []
    with StepReader(entry, variable) as reader:
        lat, lon = reader.grid(times[0])
        rows, cols = np.arange(lat.size), np.arange(lon.size)
        for k, t in enumerate(times):
            src, dst = file_for(entry, t), Path(file_for(copy, t))
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.startswith("s3://"):
                    from tos2ca_batch.stores.objectstore import read_bytes

                    dst.write_bytes(read_bytes(src))
                else:
                    shutil.copyfile(src, dst)
            background = reader.read(t, rows, cols)
            ids = footprints(features, k, lat, lon)
            ids[~np.isfinite(background)] = 0
            truth_steps.append({"time": stamps[k], "features": {
                str(a): np.flatnonzero(ids.ravel() == a).tolist() for a in np.unique(ids[ids > 0]).tolist()}})
            if not ids.any():
                continue
            amplitude = np.zeros(len(features) + 1, np.float64)
            amplitude[1:] = [f.amplitude for f in features]
            handle = reader.handle(t)
            roles = reader._roles(handle.dims)
            tk = reader._time_index(t) if "time" in roles else None
            key = tuple({"time": tk if tk is not None else 0, "lat": slice(None), "lon": slice(None)}[r] for r in roles)
            transpose = [r for r in roles if r != "time"] != ["lat", "lon"]
            with h5py.File(dst, "r+") as f:
                var = (f[entry.group] if entry.group else f)[variable]
                attrs = {a: netcdf_value(var.attrs[a]) for a in DECODING_ATTRIBUTES if a in var.attrs}
                decoding = Decoding.from_attributes(var.dtype, attrs)
                raw = var[key]
                plane = ids.T if transpose else ids
                new = (background.T if transpose else background).astype(np.float64) + amplitude[plane]
                where = plane > 0
                raw[where] = _encode(decoding, new[where], var.dtype)
                var[key] = raw
    catalog_path = out / "catalog.json"
    catalog_path.write_text(json.dumps({name: doc}, indent=1))
    truth = {"dataset": name, "source": dataset, "variable": variable, "grid": [int(lat.size), int(lon.size)],
             "features": [{"id": f.id, "name": f.name, "birth": stamps[f.birth] if f.birth < len(stamps) else None,
                           "death": stamps[f.death] if f.death < len(stamps) else None} for f in features],
             "events": events(features, stamps), "steps": truth_steps}
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth))
    return {"catalog": str(catalog_path), "truth": str(truth_path), "dataset": name, "steps": len(times),
            "features": len(features)}
