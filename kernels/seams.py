"""Which local labels of neighbouring tiles touch across a seam.

Strips hold *node ids* (a global number per (step, tile, local label); -1 = background).
Lines are concatenated over the whole seam, so a diagonal touch across a tile corner shows
up as a shifted pair on the vertical seam and needs no special case.
"""

from __future__ import annotations

import numpy as np


def line_edges(a: np.ndarray, b: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs touching across two facing lines ``a`` and ``b`` of shape (steps, length)."""
    shifts = [(a, b)]
    if connectivity == 2:
        shifts += [(a[:, :-1], b[:, 1:]), (a[:, 1:], b[:, :-1])]
    ea, eb = [], []
    for x, y in shifts:
        hit = (x >= 0) & (y >= 0)
        ea.append(x[hit])
        eb.append(y[hit])
    return np.concatenate(ea), np.concatenate(eb)


def seam_edges(
    strips: dict[tuple[int, int], dict[str, np.ndarray]],
    n_tile_rows: int,
    n_tile_cols: int,
    connectivity: int,
    wrap: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """All touching node pairs across every seam of the tile layout.

    ``strips[(i, j)]`` gives tile (i, j)'s ``top``, ``bottom``, ``left``, ``right`` node-id
    strips over all steps. With ``wrap`` the east edge of the last tile column touches the
    west edge of the first (also when there is a single tile column).
    """
    col_pairs = [(j, j + 1) for j in range(n_tile_cols - 1)]
    if wrap:
        col_pairs.append((n_tile_cols - 1, 0))
    ea, eb = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for j, k in col_pairs:
        a = np.concatenate([strips[(i, j)]["right"] for i in range(n_tile_rows)], axis=1)
        b = np.concatenate([strips[(i, k)]["left"] for i in range(n_tile_rows)], axis=1)
        x, y = line_edges(a, b, connectivity)
        ea.append(x)
        eb.append(y)
    for i in range(n_tile_rows - 1):
        a = np.concatenate([strips[(i, j)]["bottom"] for j in range(n_tile_cols)], axis=1)
        b = np.concatenate([strips[(i + 1, j)]["top"] for j in range(n_tile_cols)], axis=1)
        x, y = line_edges(a, b, connectivity)
        ea.append(x)
        eb.append(y)
    return np.concatenate(ea).astype(np.int64), np.concatenate(eb).astype(np.int64)
