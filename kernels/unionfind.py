"""Union-find over integer nodes: which nodes end up joined by a list of edges.

Plain numpy (hooking and pointer jumping over the whole edge list at once), not
``scipy.sparse.csgraph``: the edge lists here are small (seams and time links), and importing
scipy.sparse cost a job about 0.1-0.2 s, more than the joins themselves.
"""

from __future__ import annotations

import numpy as np


def join(n_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root id per node after uniting every pair ``(a[i], b[i])``.

    Roots are numbered by the smallest node of each set, in ascending order, so the result
    does not depend on the order of the edges.

    Why it is exact: ``parent[x] <= x`` always holds (a parent only moves to a smaller node of
    the same set), each round hooks both ends of every edge onto the smaller of their roots and
    then jumps pointers until every parent is a root; it stops when both ends of every edge
    share a root, which is then the smallest node of their set. Each round that does not stop
    lowers at least one root, so it ends.
    """
    if n_nodes == 0:
        return np.zeros(0, np.int64)
    parent = np.arange(n_nodes, dtype=np.int64)
    a = np.asarray(a, np.int64).ravel()
    b = np.asarray(b, np.int64).ravel()
    while a.size:
        ra, rb = parent[a], parent[b]
        split = ra != rb
        if not split.any():
            break
        ra, rb = ra[split], rb[split]
        low = np.minimum(ra, rb)
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while True:  # pointer jumping: every node straight to its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        a, b = a[split], b[split]
    # parent is now the smallest node of each set; number the sets in that order
    return np.unique(parent, return_inverse=True)[1].astype(np.int64)
