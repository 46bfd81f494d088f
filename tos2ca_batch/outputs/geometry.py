"""Exact pixel-cell polygons of an anomaly, in (lon, lat), split at the antimeridian, wound as
RFC 7946 asks; and the spherical area of pixel cells."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.affinity import translate


def runs(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of pixels given in row-major order: (row, first col, last col + 1)."""
    brk = np.flatnonzero((np.diff(rows) != 0) | (np.diff(cols) != 1)) + 1
    starts = np.r_[0, brk]
    ends = np.r_[brk, rows.size]
    return rows[starts], cols[starts], cols[ends - 1] + 1


def pixel_geometry(rows, cols, lat_edges: np.ndarray, lon_edges: np.ndarray):
    """Union of pixel cells in index space, mapped to edge coordinates (lon may exceed 180)."""
    r, c0, c1 = runs(np.asarray(rows), np.asarray(cols))
    rects = shapely.box(c0, r, c1, r + 1)
    geom = shapely.union_all(rects, grid_size=1)
    xi = np.arange(lon_edges.size, dtype=np.float64)
    yi = np.arange(lat_edges.size, dtype=np.float64)

    def to_lonlat(coords: np.ndarray) -> np.ndarray:
        return np.column_stack([np.interp(coords[:, 0], xi, lon_edges), np.interp(coords[:, 1], yi, lat_edges)])

    return shapely.transform(geom, to_lonlat)


EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


def pixel_area_km2(rows: np.ndarray, cols: np.ndarray, lat_edges: np.ndarray, lon_edges: np.ndarray) -> float:
    """Summed spherical area of pixel cells: R^2 * |d(sin lat)| * |d lon| per cell (exact on a sphere)."""
    sin_e = np.sin(np.radians(np.clip(lat_edges, -90.0, 90.0)))
    dsin = np.abs(np.diff(sin_e))
    dlon = np.abs(np.radians(np.diff(lon_edges)))
    return float(EARTH_RADIUS_KM**2 * np.sum(dsin[rows] * dlon[cols]))


def rfc7946(geom):
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946 section 3.1.6)."""
    return shapely.orient_polygons(geom, exterior_cw=False)


def split_antimeridian(geom):
    """Cut at +-180 and shift the parts into [-180, 180] (RFC 7946 section 3.1.9)."""
    minx, _, maxx, _ = geom.bounds
    if minx >= -180 and maxx <= 180:
        return geom
    parts = []
    for k in range(int(np.floor((minx + 180) / 360)), int(np.floor((maxx + 180) / 360)) + 1):
        window = shapely.box(-180 + 360 * k, -90.0, 180 + 360 * k, 90.0)
        piece = shapely.intersection(geom, window, grid_size=None)
        for poly in getattr(piece, "geoms", [piece]):
            if poly.geom_type == "Polygon" and not poly.is_empty:
                parts.append(translate(poly, xoff=-360 * k))
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
