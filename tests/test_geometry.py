"""GeoJSON geometry: RFC 7946 winding (with holes and across the antimeridian) and spherical areas."""

import numpy as np
import pytest
import shapely

from tos2ca_batch.algorithm import cell_edges
from tos2ca_batch.outputs.geometry import EARTH_RADIUS_KM, pixel_area_km2, pixel_geometry, rfc7946, split_antimeridian


def _signed_area(ring) -> float:
    x, y = np.asarray(ring.coords).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))  # shoelace: > 0 counter-clockwise


def test_donut_across_the_antimeridian_is_wound_per_rfc7946():
    lat = np.arange(-5.5, 6.0, 1.0)  # 12 rows
    lon = np.arange(170.5, 190.0, 1.0)  # 19 columns, unwrapped past 180
    square = np.zeros((lat.size, lon.size), bool)
    square[2:9, 5:14] = True
    square[4:7, 8:11] = False  # a hole
    rows, cols = np.nonzero(square)
    geom = rfc7946(split_antimeridian(pixel_geometry(rows, cols, cell_edges(lat), cell_edges(lon))))
    assert geom.is_valid
    exteriors = holes = 0
    for poly in getattr(geom, "geoms", [geom]):
        assert _signed_area(poly.exterior) > 0
        exteriors += 1
        for hole in poly.interiors:
            assert _signed_area(hole) < 0
            holes += 1
    assert exteriors == 2, "split at 180 into two parts"
    assert holes == 0, "the hole straddles 180 too, so each half's outline takes it in"
    assert geom.area == pytest.approx(square.sum())
    # The unsplit geometry keeps the hole: check that one too.
    whole = rfc7946(pixel_geometry(rows, cols, cell_edges(lat), cell_edges(lon)))
    assert len(whole.interiors) == 1
    assert _signed_area(whole.exterior) > 0 > _signed_area(whole.interiors[0])


def test_spherical_cell_areas_add_up_to_the_globe():
    lat = -90 + 2.0 * (np.arange(90) + 0.5)
    lon = -180 + 2.5 * (np.arange(144) + 0.5)
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(lat.size), np.arange(lon.size), indexing="ij"))
    total = pixel_area_km2(rows, cols, cell_edges(lat), cell_edges(lon))
    assert total == pytest.approx(4 * np.pi * EARTH_RADIUS_KM**2, rel=1e-12)
    # One equatorial 1-degree cell: R^2 * (pi/180) * 2 sin(0.5 deg).
    one = pixel_area_km2(np.array([0]), np.array([0]), np.array([-0.5, 0.5]), np.array([0.0, 1.0]))
    assert one == pytest.approx(EARTH_RADIUS_KM**2 * np.radians(1) * 2 * np.sin(np.radians(0.5)), rel=1e-12)
    assert one == pytest.approx(12363.7, rel=1e-4)  # the textbook 111.2 km x 111.2 km


def test_orientation_is_fixed_whatever_the_input_winding():
    cw = shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    assert _signed_area(cw.exterior) < 0
    assert _signed_area(rfc7946(cw).exterior) > 0
