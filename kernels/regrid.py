"""Values of a (curation) grid at the pixels of another (mask) grid, and footprints.

Grids are regular: ``lat`` ascending cell centres, ``lon`` ascending cell centres (a global
grid wraps around). Missing values are NaN and never enter a result: a bilinear value with a
missing neighbour is NaN, an area mean averages only the valid cells.
"""

from __future__ import annotations

import numpy as np


def spacing(centres: np.ndarray) -> float:
    return float(centres[1] - centres[0]) if centres.size > 1 else 1.0


def fractional_index(x: np.ndarray, centres: np.ndarray, wrap: bool) -> np.ndarray:
    """Position of ``x`` in units of grid steps from the first centre (wrapped into [0, n) if global)."""
    d = spacing(centres)
    f = (np.asarray(x, np.float64) - centres[0]) / d
    if wrap:
        f = np.mod(f, centres.size)
    return f


def bilinear(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, plat: np.ndarray, plon: np.ndarray,
             wrap: bool) -> np.ndarray:
    """Bilinear interpolation of ``field[lat, lon]`` at points; NaN outside or next to a missing value.

    Points beyond the first/last latitude centre (within half a cell) take the edge row.
    """
    ny, nx = field.shape
    fy = np.clip(fractional_index(plat, lat, False), 0, ny - 1)
    fx = fractional_index(plon, lon, wrap)
    inside_y = (plat >= lat[0] - spacing(lat) / 2) & (plat <= lat[-1] + spacing(lat) / 2)
    if not wrap:
        inside_x = (fx >= -0.5) & (fx <= nx - 0.5)
        fx = np.clip(fx, 0, nx - 1)
    else:
        inside_x = np.ones(fx.shape, bool)
    y0 = np.minimum(np.floor(fy).astype(np.int64), max(ny - 2, 0))
    x0 = np.floor(fx).astype(np.int64)
    if not wrap:
        x0 = np.minimum(x0, max(nx - 2, 0))
    y1 = np.minimum(y0 + 1, ny - 1)
    x1 = (x0 + 1) % nx if wrap else np.minimum(x0 + 1, nx - 1)
    wy = fy - y0
    wx = fx - x0
    v = ((1 - wy) * (1 - wx) * field[y0, x0 % nx] + (1 - wy) * wx * field[y0, x1]
         + wy * (1 - wx) * field[y1, x0 % nx] + wy * wx * field[y1, x1])
    return np.where(inside_y & inside_x, v, np.nan)


def nearest(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, plat: np.ndarray, plon: np.ndarray,
            wrap: bool) -> np.ndarray:
    """The value of the cell containing each point (categorical variables); NaN outside."""
    ny, nx = field.shape
    iy = np.floor(fractional_index(plat, lat, False) + 0.5).astype(np.int64)
    ix = np.floor(fractional_index(plon, lon, wrap) + 0.5).astype(np.int64)
    if wrap:
        ix %= nx
    ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    out = np.full(plat.shape, np.nan)
    out[ok] = field[iy[ok], ix[ok]]
    return out


def cover_ranges(pc: np.ndarray, half: float, centres: np.ndarray, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """For cells centred at ``pc`` (half-width ``half``), the first and last index (inclusive, possibly
    beyond [0, n) before wrapping) of the grid cells they overlap with positive area."""
    d = spacing(centres)
    lo_edge = (pc - half - centres[0]) / d + 0.5  # in units where grid cell k spans [k, k+1)
    hi_edge = (pc + half - centres[0]) / d + 0.5
    eps = 1e-9
    first = np.floor(lo_edge + eps).astype(np.int64)
    last = np.ceil(hi_edge - eps).astype(np.int64) - 1
    return first, np.maximum(last, first)


def footprint_cells(plat, plon, half_lat, half_lon, lat, lon, wrap: bool) -> np.ndarray:
    """Unique (row, col) of the grid cells overlapping any of the pixel cells, sorted row-major."""
    r0, r1 = cover_ranges(plat, half_lat, lat, False)
    c0, c1 = cover_ranges(plon, half_lon, lon, wrap)
    r0, r1 = np.clip(r0, 0, lat.size - 1), np.clip(r1, 0, lat.size - 1)
    if not wrap:
        c0, c1 = np.clip(c0, 0, lon.size - 1), np.clip(c1, 0, lon.size - 1)
    nr, nc = r1 - r0 + 1, c1 - c0 + 1
    counts = nr * nc
    owner = np.repeat(np.arange(plat.size), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = r0[owner] + k // nc[owner]
    cols = c0[owner] + k % nc[owner]
    if wrap:
        cols %= lon.size
    cells = np.unique(rows * lon.size + cols)
    return np.column_stack([cells // lon.size, cells % lon.size])


def area_mean(field, lat, lon, plat, plon, half_lat, half_lon, wrap: bool) -> np.ndarray:
    """Mean of the valid grid cells whose centres lie inside each pixel cell (finer grids).

    Uses summed-area tables of the valid values and of the valid count, so the cost does not
    depend on how many grid cells a pixel covers.
    """
    if wrap:  # unroll the circle once so every pixel's columns are one contiguous run
        field = np.concatenate([field, field], axis=1)
        lon = np.r_[lon, lon + 360.0]
        plon = lon[0] + np.mod(plon - lon[0], 360.0)
    ny, nx = field.shape
    eps = 1e-9

    def span(p, half, centres, n):
        d = spacing(centres)
        lo = np.ceil((p - half - centres[0]) / d - eps).astype(np.int64)
        hi = np.floor((p + half - centres[0]) / d + eps).astype(np.int64)
        return np.clip(lo, 0, n), np.clip(hi, -1, n - 1)

    r0, r1 = span(plat, half_lat, lat, ny)
    c0, c1 = span(plon, half_lon, lon, nx)
    valid = ~np.isnan(field)
    sums = np.zeros((ny + 1, nx + 1))
    sums[1:, 1:] = np.where(valid, field, 0.0).cumsum(0).cumsum(1)
    counts = np.zeros((ny + 1, nx + 1), np.int64)
    counts[1:, 1:] = valid.cumsum(0).cumsum(1)
    empty = (r0 > r1) | (c0 > c1)
    r0, r1, c0, c1 = (np.where(empty, 0, x) for x in (r0, r1, c0, c1))

    def box(t):
        return t[r1 + 1, c1 + 1] - t[r0, c1 + 1] - t[r1 + 1, c0] + t[r0, c0]

    n = np.where(empty, 0, box(counts))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, box(sums) / np.maximum(n, 1), np.nan)


def statistics(values: np.ndarray) -> dict[str, float]:
    """Statistics of the valid values (NaN ignored); ``count`` counts all, ``valid_count`` the valid."""
    v = np.asarray(values, np.float64)
    ok = v[~np.isnan(v)]
    out = {"count": int(v.size), "valid_count": int(ok.size)}
    if ok.size == 0:
        nan = float("nan")
        out.update(Min=nan, Max=nan, Mean=nan, Std_dev=nan, **{f"percentile_{p}": nan for p in (10, 25, 50, 75, 90)})
        return out
    p = np.percentile(ok, [10, 25, 50, 75, 90])
    out.update(Min=float(ok.min()), Max=float(ok.max()), Mean=float(ok.mean()), Std_dev=float(ok.std()),
               **{f"percentile_{q}": float(x) for q, x in zip((10, 25, 50, 75, 90), p)})
    return out
