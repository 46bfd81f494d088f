"""Union-find over integer nodes: which nodes end up joined by a list of edges."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def join(n_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root id per node after uniting every pair ``(a[i], b[i])``.

    Roots are numbered by the smallest node of each set, in ascending order, so the result
    does not depend on the order of the edges.
    """
    if n_nodes == 0:
        return np.zeros(0, np.int64)
    graph = coo_matrix(
        (np.ones(a.size, np.int8), (np.asarray(a, np.int64), np.asarray(b, np.int64))),
        shape=(n_nodes, n_nodes),
    )
    _, roots = connected_components(graph, directed=False)
    # connected_components numbers sets by first node met in node order: canonical already,
    # but make it explicit: root = rank of the set's smallest node.
    first_node = np.full(roots.max() + 1, n_nodes, np.int64)
    np.minimum.at(first_node, roots, np.arange(n_nodes))
    rank = np.argsort(np.argsort(first_node, kind="stable"), kind="stable")
    return rank[roots]
