"""The dataset catalog: the built-in ``manifests/datasets.json`` plus user catalogs.

User catalogs are ``Config.catalogs`` (``TOS2CA_CATALOG``, then ``--catalog FILE``); a later
entry replaces an earlier one of the same name. Relative ``location`` paths are resolved
against the directory of the catalog file. Entries are :class:`CatalogEntry` values; their
JSON form is the catalog file's (TOS2CA's camelCase field names).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tos2ca_batch.timeutil import parse_time, step_minutes


@dataclass(frozen=True)
class CatalogEntry:
    """One dataset of the catalog: where its files are and how they are laid out."""

    name: str
    location: str
    """Path or ``s3://`` URL pattern: ``{time:FMT}``, ``{end:FMT}``, ``{minutes}``."""
    time_step: int | str
    """Minutes between steps, ``"daily"`` or ``"monthly"``."""
    coordinate_names: dict[str, str]
    format: str = "netcdf4"
    start_date: str = ""
    end_date: str = ""
    group: str | None = None
    variables: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    dimension_order: tuple[str, ...] | None = None
    stages: tuple[str, ...] = ("phdef", "curation")
    categorical: tuple[str, ...] = ()
    full_name: str = ""
    product_info: str = ""
    earthdata: dict | None = None
    """A NASA archive's files (``stores.earthdata``): ``{"s3credentials": URL, "https": URL}``,
    its DAAC's S3 credentials endpoint and the HTTPS address its bucket is served at."""

    _JSON = {"location": "location", "time_step": "timeStep", "coordinate_names": "coordinateNames",
             "format": "format", "start_date": "startDate", "end_date": "endDate", "group": "group",
             "variables": "variables", "units": "units", "dimension_order": "dimensionOrder",
             "stages": "stages", "categorical": "categorical", "full_name": "fullName",
             "product_info": "productInfo", "earthdata": "earthdata"}

    @classmethod
    def from_json(cls, name: str, doc: dict) -> CatalogEntry:
        kwargs = {attr: doc[key] for attr, key in cls._JSON.items() if key in doc}
        for attr in ("variables", "stages", "categorical", "dimension_order"):
            if kwargs.get(attr) is not None:
                kwargs[attr] = tuple(kwargs[attr])
        kwargs.setdefault("full_name", name)
        return cls(name=name, **kwargs)

    def to_json(self) -> dict:
        out = {key: getattr(self, attr) for attr, key in self._JSON.items()}
        for attr in ("variables", "stages", "categorical", "dimension_order"):
            value = getattr(self, attr)
            out[self._JSON[attr]] = list(value) if value is not None else None
        return out

    @property
    def first(self) -> datetime:
        return parse_time(self.start_date)

    @property
    def last(self) -> datetime:
        return parse_time(self.end_date)

    def units_of(self, variable: str) -> str | None:
        return self.units.get(variable)

REQUIRED_FIELDS = ("format", "location", "timeStep", "startDate", "endDate", "variables", "coordinateNames")
FORMATS = ("netcdf4", "hdf5", "zarr")


def builtin_catalog_path(given: str | None = None) -> Path | None:
    """``given`` (``Config.builtin_catalog``), else ``manifests/datasets.json`` beside the
    package or in the current directory."""
    if given:
        return Path(given)
    here = Path(__file__).resolve().parent
    for base in (here.parent, Path.cwd()):
        path = base / "manifests" / "datasets.json"
        if path.exists():
            return path
    return None


def _load_file(path: Path) -> dict[str, CatalogEntry]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"catalog {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(entries, dict):
        raise ValueError(f"catalog {path}: expected an object of dataset entries")
    out = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ValueError(f"catalog {path}: dataset {name!r} must be an object, got {type(entry).__name__}")
        missing = [f for f in REQUIRED_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"catalog {path}: dataset {name!r} lacks {', '.join(missing)}")
        if entry["format"] not in FORMATS:
            raise ValueError(f"catalog {path}: dataset {name!r} format must be one of {FORMATS}")
        problem = _entry_problem(entry)
        if problem:
            raise ValueError(f"catalog {path}: dataset {name!r} {problem}")
        entry = dict(entry)
        loc = entry["location"]
        if "://" not in loc and not os.path.isabs(loc):
            entry["location"] = str((path.parent / loc).resolve())
        out[name] = CatalogEntry.from_json(name, entry)
    return out


def _entry_problem(entry: dict) -> str | None:
    """What is wrong with a catalog entry's fields (None if nothing)."""
    step = entry["timeStep"]
    if isinstance(step, bool) or not (step in ("daily", "monthly") or (isinstance(step, int) and 0 < step <= 10**7)
                                      or (isinstance(step, str) and step.isdigit() and 0 < int(step) <= 10**7)):
        return f"timeStep must be minutes (a whole number > 0), 'daily' or 'monthly', got {step!r}"
    if not isinstance(entry["variables"], list) or not all(isinstance(v, str) for v in entry["variables"]):
        return f"variables must be a list of names, got {entry['variables']!r}"
    names = entry["coordinateNames"]
    if not isinstance(names, dict) or not all(isinstance(names.get(k), str) for k in ("lat", "lon")):
        return f"coordinateNames must be an object naming lat and lon, got {names!r}"
    if not isinstance(entry["location"], str):
        return f"location must be a path or s3:// URL, got {entry['location']!r}"
    for name in ("startDate", "endDate"):
        try:
            parse_time(entry[name])
        except ValueError as exc:
            return f"{name}: {exc}"
    block = entry.get("earthdata")
    if block is not None:
        if not isinstance(block, dict) or not all(str(block.get(k, "")).startswith("https://")
                                                  for k in ("s3credentials", "https")):
            return ("earthdata must be an object with s3credentials (the DAAC's https:// S3 credentials endpoint) "
                    f"and https (the https:// address its bucket is served at), got {block!r}")
        if not entry["location"].startswith("s3://"):
            return f"earthdata is for files on s3:// (the archive's bucket); location is {entry['location']!r}"
    return None


def load_catalog(paths: list[str] | None = None, builtin: str | None = None) -> dict[str, CatalogEntry]:
    """The built-in catalog (``builtin`` or the one found beside the package), then ``paths``."""
    found = builtin_catalog_path(builtin)
    paths = ([found] if found is not None else []) + [Path(p) for p in paths or []]
    catalog: dict[str, CatalogEntry] = {}
    for p in paths:
        catalog.update(_load_file(p))
    return catalog


def file_for(entry: CatalogEntry, t) -> str:
    """The file (path or URL) holding time ``t``: ``{time:FMT}``, ``{end:FMT}``, ``{minutes}``."""
    step = step_minutes(entry.time_step)
    end = t + (timedelta(minutes=step) if isinstance(step, int) else timedelta(days=1)) - timedelta(seconds=1)
    return entry.location.format(time=t, end=end, minutes=t.hour * 60 + t.minute)
