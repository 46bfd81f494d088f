"""Streaming map of one chunk: label each step of a tile and keep its small tables.

Steps arrive one at a time (the halo step first, if any), so memory holds two steps of one
tile whatever the block length.
"""

from __future__ import annotations

import numpy as np
from tos2ca_batch.kernels.components import (
    component_table,
    concat_tables,
    empty_components,
    empty_overlaps,
    empty_pieces,
    join_lines,
    label,
    overlap_pairs,
    overlap_pieces,
    seam_lines,
)


class BlockMapper:
    """Accumulates component tables, overlap pairs and seam strips of one (block, tile).

    With ``pieces`` (the ``"tos2ca"`` overlap fraction) it also keeps every overlap's pieces and
    their seam strips, so the reduce can count pieces exactly whatever the chunking.

    ``min_size`` and ``seams`` (top, bottom, left, right: whether that edge of the tile is a seam,
    another tile or the longitude wrap beyond it): a component of fewer pixels that touches no
    seam is whole here and can never be kept (``min_size`` applies to joined components, and an
    operator's ``keeps`` rule only removes more), so it is dropped as if it were background: it
    leaves no row, overlap, seam pixel or pixel record, and the remaining labels are numbered
    1..n again. What is kept is the same for every chunking; at rain-like densities most
    components are such small cells.
    """

    def __init__(self, row0: int, col0: int, job_width: int, connectivity: int, pieces: bool = False,
                 min_size: int = 1, seams: tuple[bool, bool, bool, bool] = (True, True, True, True)):
        self.row0, self.col0, self.job_width = row0, col0, job_width
        self.connectivity = connectivity
        self.pieces = pieces
        self.min_size = min_size
        self.seams = seams
        self._prev: np.ndarray | None = None
        self._components: list[dict[str, np.ndarray]] = []
        self._overlaps: list[dict[str, np.ndarray]] = []
        self._strips: list[dict[str, np.ndarray]] = []  # seam lines (sparse edges) per step
        self._pieces: list[dict[str, np.ndarray]] = []
        self._piece_strips: list[dict[str, np.ndarray]] = []
        self.index: np.ndarray = np.zeros(0, np.int64)
        """Flat indices of the labelled pixels of the last step added (``np.flatnonzero``)."""

    def add_halo(self, mask: np.ndarray) -> None:
        """The step before the block: only its labels are kept, to link the first step."""
        self._prev, _ = self._label(mask)

    def _label(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels of a step with the small whole components dropped, and the flat indices of
        its labelled pixels."""
        mask = np.ascontiguousarray(mask, dtype=bool)
        labels, n = label(mask, self.connectivity)
        # Every masked pixel has a label and no other pixel does: the mask's nonzeros are the
        # labels' (4x faster on a bool array than on int32).
        index = np.flatnonzero(mask)
        if self.min_size <= 1 or n == 0:
            return labels, index
        flat = labels.ravel()
        lab = flat[index]
        drop = np.bincount(lab, minlength=n + 1) < self.min_size
        drop[0] = False
        if not drop.any():
            return labels, index
        for open_side, line in zip(self.seams, (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1])):
            if open_side:
                drop[line] = False
        if not drop.any():
            return labels, index
        renumber = np.zeros(n + 1, np.int32)
        renumber[1:] = np.cumsum(~drop[1:])
        renumber[drop] = 0
        flat[index] = renumber[lab]
        return labels, index[~drop[lab]]

    def add(self, step: int, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Label one step of the block; returns its local labels (int32)."""
        labels, self.index = self._label(mask)  # once per step, for the tables and the caller's records
        self._components.append(
            component_table(labels, values, step, self.row0, self.col0, self.job_width, self.index)
        )
        if self._prev is not None:
            self._overlaps.append(
                overlap_pairs(self._prev, labels, step, self.row0, self.col0, self.job_width, self.index)
            )
        if self.pieces:
            if self._prev is None:
                piece_labels = np.zeros_like(labels)
            else:
                piece_labels, table = overlap_pieces(self._prev, labels, step, self.row0, self.col0,
                                                     self.job_width, self.connectivity)
                self._pieces.append(table)
            self._piece_strips.append(seam_lines(piece_labels, step))
        self._strips.append(seam_lines(labels, step))
        self._prev = labels
        return labels

    def tables(self) -> dict[str, dict[str, np.ndarray]]:
        out = {
            "components": concat_tables(self._components, empty_components()),
            "overlaps": concat_tables(self._overlaps, empty_overlaps()),
            "strips": join_lines(self._strips),
        }
        if self.pieces:
            out["pieces"] = concat_tables(self._pieces, empty_pieces())
            out["piece_strips"] = join_lines(self._piece_strips)
        return out
