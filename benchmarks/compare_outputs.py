"""Compare two jobs' output folders file by file: ``python benchmarks/compare_outputs.py A B``.

JSON, CSV and PNG files must be byte-identical. netCDF-4 files must hold the same groups,
dimensions, variables (dtype, shape, bytes) and attributes in every group, except the attributes
that record which run made the file and when (production time, creation date, history, the job's
random identity) and the output folder's owner marker. Run both jobs in the same work dir: paths
to inputs are recorded in the files. Exit status 0 when
the folders agree, 1 with one line per difference otherwise. Used to show that a refactoring
changed no output (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import netCDF4
import numpy as np

WHEN_MADE = {"production_time", "ProductionTime", "date_created", "history", "job_uid"}
OWNER_MARKER = ".tos2ca-job"


def _attrs(obj) -> dict:
    return {k: obj.getncattr(k) for k in obj.ncattrs() if k not in WHEN_MADE}


def _same_value(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


def _group_differences(x, y, where: str) -> list[str]:
    out = []
    if sorted(x.groups) != sorted(y.groups):
        return [f"{where}: groups differ"]
    if {k: len(d) for k, d in x.dimensions.items()} != {k: len(d) for k, d in y.dimensions.items()}:
        out.append(f"{where}: dimensions differ")
    ax, ay = _attrs(x), _attrs(y)
    out += [f"{where}: attribute {k} differs" for k in sorted(set(ax) | set(ay))
            if k not in ax or k not in ay or not _same_value(ax[k], ay[k])]
    if sorted(x.variables) != sorted(y.variables):
        return [*out, f"{where}: variables differ"]
    for name in x.variables:
        vx, vy = x[name], y[name]
        vx.set_auto_maskandscale(False)
        vy.set_auto_maskandscale(False)
        a, b = vx[:], vy[:]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            out.append(f"{where}/{name}: data differ")
        bx, by = _attrs(vx), _attrs(vy)
        out += [f"{where}/{name}: attribute {k} differs" for k in sorted(set(bx) | set(by))
                if k not in bx or k not in by or not _same_value(bx[k], by[k])]
    for g in x.groups:
        out += _group_differences(x[g], y[g], f"{where}/{g}")
    return out


def differences(a: Path, b: Path) -> list[str]:
    """Every difference between the files of folders ``a`` and ``b`` (empty when they agree)."""
    names_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != OWNER_MARKER}
    names_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != OWNER_MARKER}
    out = [f"only in {a}: {n}" for n in sorted(names_a - names_b)]
    out += [f"only in {b}: {n}" for n in sorted(names_b - names_a)]
    for name in sorted(names_a & names_b):
        if name.suffix == ".nc4":
            with netCDF4.Dataset(a / name) as x, netCDF4.Dataset(b / name) as y:
                out += _group_differences(x, y, str(name))
        elif (a / name).read_bytes() != (b / name).read_bytes():
            out.append(f"{name}: bytes differ")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    a, b = Path(argv[0]), Path(argv[1])
    diffs = differences(a, b)
    n = sum(1 for p in a.rglob("*") if p.is_file() and p.name != OWNER_MARKER)
    for line in diffs:
        print(line)
    print(f"{n} files under {a} compared with {b}: {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
