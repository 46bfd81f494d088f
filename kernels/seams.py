"""Which local labels of neighbouring tiles touch across a seam.

A tile's seam lines are its edges' labelled pixels, sparse (``components.seam_lines``): per
side ``<side>_step``, ``<side>_pos``, ``<side>_label`` and ``<side>_length``. Lines of the tiles
along a seam are concatenated (positions offset by the lengths before them), so a diagonal touch
across a tile corner shows up as a shifted pair on the vertical seam and needs no special case.
Entries here carry *node ids* (a global number per (step, tile, local label)).
"""

from __future__ import annotations

import numpy as np


def line_edges(a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray],
               length: int, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs touching across two facing lines, each ``(step, pos, node)`` of its labelled
    pixels, ``length`` long: the same position, and with 8-connectivity one position either
    side. Each (step, pos) appears once in a line, so a key lookup finds every touch."""
    (sa, pa, na), (sb, pb, nb) = a, b
    if sa.size == 0 or sb.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    kb = sb.astype(np.int64) * (length + 2) + pb
    order = np.argsort(kb, kind="stable")
    kb, nb = kb[order], nb[order]
    ka = sa.astype(np.int64) * (length + 2) + pa
    ea, eb = [], []
    for shift in ((0, -1, 1) if connectivity == 2 else (0,)):
        want = ka + shift
        valid = (pa + shift >= 0) & (pa + shift < length)
        where = np.minimum(np.searchsorted(kb, want), kb.size - 1)
        hit = valid & (kb[where] == want)
        ea.append(na[hit])
        eb.append(nb[where[hit]])
    return np.concatenate(ea), np.concatenate(eb)


def _line(lines: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]) -> tuple[tuple, int]:
    """Tiles' lines ``(step, pos, node, length)`` along a seam joined into one line."""
    offset, parts = 0, []
    for step, pos, node, length in lines:
        parts.append((step, pos.astype(np.int64) + offset, node))
        offset += length
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3)), offset


def seam_edges(
    lines: dict[tuple[int, int], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]],
    n_tile_rows: int,
    n_tile_cols: int,
    connectivity: int,
    wrap: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """All touching node pairs across every seam of the tile layout.

    ``lines[(i, j)][side]`` is tile (i, j)'s ``(step, pos, node id, length)`` for ``top``,
    ``bottom``, ``left`` and ``right`` over all steps. With ``wrap`` the east edge of the last
    tile column touches the west edge of the first (also when there is a single tile column).
    """
    col_pairs = [(j, j + 1) for j in range(n_tile_cols - 1)]
    if wrap:
        col_pairs.append((n_tile_cols - 1, 0))
    ea, eb = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for j, k in col_pairs:
        a, n = _line([lines[(i, j)]["right"] for i in range(n_tile_rows)])
        b, _ = _line([lines[(i, k)]["left"] for i in range(n_tile_rows)])
        x, y = line_edges(a, b, n, connectivity)
        ea.append(x)
        eb.append(y)
    for i in range(n_tile_rows - 1):
        a, n = _line([lines[(i, j)]["bottom"] for j in range(n_tile_cols)])
        b, _ = _line([lines[(i + 1, j)]["top"] for j in range(n_tile_cols)])
        x, y = line_edges(a, b, n, connectivity)
        ea.append(x)
        eb.append(y)
    return np.concatenate(ea).astype(np.int64), np.concatenate(eb).astype(np.int64)
