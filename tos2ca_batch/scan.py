"""Scan a dataset's files over a range before a big job: present, missing, unreadable, on
another grid, all fill; the value range of each. A file scanned before and unchanged since
(``stores.scancache``: path and size plus mtime or ETag) is not read again. Writes a report
table (CSV, one row per step), a JSON log (counts and every problem) and a plot of each file
with a problem that can be drawn (all fill, another grid); the planner refuses a job whose
files a scan found unreadable or on another grid (``stages/plan.py``).
"""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tos2ca_batch.catalog import CatalogEntry, file_for
from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.readers import StepReader, describe_grid, same_grid
from tos2ca_batch.stores.scancache import versions
from tos2ca_batch.timeutil import axis

STATUSES = ("ok", "missing", "unreadable", "other grid", "all fill")
PROBLEMS = ("missing", "unreadable", "other grid", "all fill")
COLUMNS = ("time", "path", "status", "detail", "min", "max", "mean", "missing_fraction", "cached")


def _read(entry: CatalogEntry, variable: str, t: datetime, grid) -> tuple[dict, np.ndarray | None, tuple | None]:
    """One step's result, its field and its grid (None when it could not be read)."""
    try:
        with StepReader(entry, variable) as reader:
            found = reader.grid(t)
            values = reader.read(t, np.arange(found[0].size), np.arange(found[1].size))
    except Exception as exc:  # any failure to open or decode is what the scan reports
        return {"status": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:300]}, None, None
    if grid is not None and not same_grid(found, grid):
        return {"status": "other grid", "detail": f"{describe_grid(*found)}; the first good file's: "
                                                  f"{describe_grid(*grid)}"}, values, found
    finite = values[np.isfinite(values)]
    missing = round(1 - finite.size / values.size, 6)
    if not finite.size:
        return {"status": "all fill", "detail": "every pixel is missing", "missing_fraction": 1.0}, values, found
    return {"status": "ok", "detail": "", "min": float(finite.min()), "max": float(finite.max()),
            "mean": round(float(finite.mean()), 6), "missing_fraction": missing}, values, found


def scan(cfg: Config, dataset: str, start: datetime, end: datetime, out: Path, variable: str | None = None,
         progress: bool = True) -> dict:
    """Scan ``dataset``'s steps from ``start`` to ``end``; write ``<dataset>-scan.csv``,
    ``<dataset>-scan.json`` and problem plots in ``out``; returns the log."""
    catalog = cfg.catalog()
    if dataset not in catalog:
        raise SpecError("dataset", f"unknown dataset {dataset!r}; allowed: {', '.join(sorted(catalog))}")
    entry = catalog[dataset]
    variable = variable or entry.variables[0]
    if variable not in entry.variables:
        raise SpecError("variable", f"unknown variable {variable!r} for {dataset}; allowed: "
                                    f"{', '.join(entry.variables)}")
    lo, hi = max(start, entry.first), min(end, entry.last)
    times = axis(entry.first, entry.time_step, lo, hi) if hi >= lo else []
    if not times:
        raise SpecError("start", f"no time steps of {dataset} between {start:%Y-%m-%dT%H:%M} and "
                                 f"{end:%Y-%m-%dT%H:%M}; it covers {entry.start_date} to {entry.end_date}")
    paths = [file_for(entry, t) for t in times]
    tags = versions(sorted(set(paths)))
    cache = cfg.scan_cache()
    rows, fields, grid = [], {}, None
    for t, path in tqdm(list(zip(times, paths)), desc=f"scan {dataset}", unit="file", disable=not progress,
                        leave=False):
        key = f"{path}#{t:%Y%m%d%H%M}"  # a file may hold many steps
        if path not in tags:
            result, cached = {"status": "missing", "detail": "no such file"}, False
        elif (hit := cache.get(key, tags[path])) is not None and (grid is not None or hit["status"] != "ok"):
            result, cached = hit, True
        else:
            result, values, found = _read(entry, variable, t, grid)
            cached = False
            fields[key] = values if result["status"] in PROBLEMS else None
            cache.put(key, tags[path], {**result, "variable": variable})
            if grid is None and result["status"] == "ok":  # the first good file's grid is the dataset's
                grid = found
        rows.append({"time": f"{t:%Y-%m-%dT%H:%M}", "path": path, "status": result["status"],
                     "detail": result.get("detail", ""), "min": result.get("min"), "max": result.get("max"),
                     "mean": result.get("mean"), "missing_fraction": result.get("missing_fraction"),
                     "cached": cached})
    cache.save()
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"{dataset}-scan.csv"
    with open(report, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    plots = _plots(dataset, rows, fields, out)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    log = {"dataset": dataset, "variable": variable, "start": rows[0]["time"], "end": rows[-1]["time"],
           "steps": len(rows), "counts": counts, "from_cache": sum(r["cached"] for r in rows),
           "problems": [r for r in rows if r["status"] in PROBLEMS], "report": str(report), "plots": plots}
    (out / f"{dataset}-scan.json").write_text(json.dumps(log, indent=1))
    return log


def _plots(dataset: str, rows: list[dict], fields: dict, out: Path) -> list[str]:
    """A map of each problem file read in this scan (all fill, another grid): what it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for r in rows:
        key = f"{r['path']}#{r['time'].replace('-', '').replace('T', '').replace(':', '')}"
        values = fields.get(key)
        if r["status"] not in PROBLEMS or values is None:
            continue
        fig, ax = plt.subplots(figsize=(8, 4), dpi=80)
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.75")
        ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap=cmap, aspect="auto", interpolation="nearest")
        ax.set_title(f"{Path(r['path']).name}: {r['status']} ({r['detail'][:80]})", fontsize=8)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        with tempfile.NamedTemporaryFile(dir=out, suffix=".png", delete=False) as tmp:
            fig.savefig(tmp.name)
        plt.close(fig)
        path = out / f"{dataset}-scan-{r['time'].replace(':', '')}.png"
        Path(tmp.name).replace(path)
        paths.append(str(path))
    return paths

