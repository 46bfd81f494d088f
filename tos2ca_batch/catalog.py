"""The dataset catalog: the built-in ``manifests/datasets.json`` plus user catalogs.

User catalogs come from ``TOS2CA_CATALOG`` (paths separated by ``os.pathsep``) and then
``--catalog FILE`` (repeatable); a later entry replaces an earlier one of the same name.
Relative ``location`` paths are resolved against the directory of the catalog file.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from tos2ca_batch.timeutil import parse_time, step_minutes

REQUIRED_FIELDS = ("format", "location", "timeStep", "startDate", "endDate", "variables", "coordinateNames")
FORMATS = ("netcdf4", "hdf5")


def builtin_catalog_path() -> Path | None:
    env = os.environ.get("TOS2CA_BUILTIN_CATALOG")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for base in (here.parent, Path.cwd()):
        path = base / "manifests" / "datasets.json"
        if path.exists():
            return path
    return None


def _load_file(path: Path) -> dict[str, dict]:
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
        entry.setdefault("group", None)
        entry.setdefault("units", {})
        entry.setdefault("stages", ["phdef", "curation"])
        out[name] = entry
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
    for field in ("startDate", "endDate"):
        try:
            parse_time(entry[field])
        except ValueError as exc:
            return f"{field}: {exc}"
    return None


def load_catalog(extra: list[str] | None = None) -> dict[str, dict]:
    paths: list[Path] = []
    builtin = builtin_catalog_path()
    if builtin is not None:
        paths.append(builtin)
    env = os.environ.get("TOS2CA_CATALOG")
    if env:
        paths += [Path(p) for p in env.split(os.pathsep) if p]
    paths += [Path(p) for p in extra or []]
    catalog: dict[str, dict] = {}
    for p in paths:
        catalog.update(_load_file(p))
    return catalog


def file_for(entry: dict, t) -> str:
    """The file (path or URL) holding time ``t``: ``{time:FMT}``, ``{end:FMT}``, ``{minutes}``."""
    step = step_minutes(entry["timeStep"])
    end = t + (timedelta(minutes=step) if isinstance(step, int) else timedelta(days=1)) - timedelta(seconds=1)
    return entry["location"].format(time=t, end=end, minutes=t.hour * 60 + t.minute)
