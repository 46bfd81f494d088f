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

from tos2ca_batch.timeutil import step_minutes

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
        missing = [f for f in REQUIRED_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"catalog {path}: dataset {name!r} lacks {', '.join(missing)}")
        if entry["format"] not in FORMATS:
            raise ValueError(f"catalog {path}: dataset {name!r} format must be one of {FORMATS}")
        entry = dict(entry)
        loc = entry["location"]
        if "://" not in loc and not os.path.isabs(loc):
            entry["location"] = str((path.parent / loc).resolve())
        entry.setdefault("group", None)
        entry.setdefault("units", {})
        entry.setdefault("stages", ["phdef", "curation"])
        out[name] = entry
    return out


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
