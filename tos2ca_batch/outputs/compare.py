"""Are two jobs' outputs the same data? (``replay`` checks a synced job against a one-shot one;
the tests check chunkings, backends and resumed jobs.)

netCDF files are compared variable by variable, every group (values and dtypes, not attributes:
production time, job id and version are attributes); JSON files of two different jobs as
documents with the job ids taken out; a report without what says which run it was
(``outputs.report.data_of``); every other file (CSV, PNG) byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _netcdf_differences(x, y, where: str) -> list[str]:
    if sorted(x.groups) != sorted(y.groups) or sorted(x.variables) != sorted(y.variables):
        return [f"{where}: other groups or variables"]
    out = []
    for v in x.variables:
        xv, yv = x[v][:], y[v][:]
        if xv.dtype != yv.dtype or xv.shape != yv.shape or \
                np.ma.getdata(xv).tobytes() != np.ma.getdata(yv).tobytes():
            out.append(f"{where}/{v}")
    for g in x.groups:
        out += _netcdf_differences(x[g], y[g], f"{where}/{g}")
    return out


def _without_job(doc, prefix: str):
    """A JSON document with its ``job_id`` keys dropped and the job's file prefix ``J-`` made neutral."""
    if isinstance(doc, dict):
        return {k: _without_job(v, prefix) for k, v in doc.items() if k != "job_id"}
    if isinstance(doc, list):
        return [_without_job(v, prefix) for v in doc]
    if isinstance(doc, str) and doc.startswith(prefix):
        return "J-" + doc[len(prefix):]
    return doc


def differences(a: dict[str, Path], b: dict[str, Path], job_a: int | None = None,
                job_b: int | None = None) -> list[str]:
    """What differs between two jobs' outputs, by name (the job id prefix replaced by ``J-``);
    an empty list: the same data."""
    import netCDF4

    missing = sorted(set(a) ^ set(b))
    out = [f"{name}: only in one job" for name in missing]
    for name in sorted(set(a) & set(b)):
        if name.endswith(".nc4") or name.endswith(".nc"):
            with netCDF4.Dataset(a[name]) as x, netCDF4.Dataset(b[name]) as y:
                out += _netcdf_differences(x, y, name)
        elif name.endswith(".json") and job_a != job_b:
            if _without_job(json.loads(a[name].read_text()), f"{job_a}-") != \
                    _without_job(json.loads(b[name].read_text()), f"{job_b}-"):
                out.append(name)
        elif name.endswith(".html"):
            from tos2ca_batch.outputs.report import data_of

            def job_of(path: Path, given: int | None) -> int | None:  # J-report.html is <J>-report.html
                head = path.name.split("-", 1)[0]
                return given if given is not None else (int(head) if head.isdigit() else None)

            if data_of(a[name].read_text(), job_of(a[name], job_a)) != data_of(b[name].read_text(),
                                                                             job_of(b[name], job_b)):
                out.append(name)
        elif a[name].read_bytes() != b[name].read_bytes():
            out.append(name)
    return out
