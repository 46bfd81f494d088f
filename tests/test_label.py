"""The labeller gives exactly scipy.ndimage's components (as a partition; numbering may differ)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from tos2ca_batch.kernels.components import label


def _partition(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered by first appearance in raster order (0 stays 0)."""
    flat = labels.ravel()
    values, first = np.unique(flat[flat > 0], return_index=True)
    order = np.argsort(np.flatnonzero(flat > 0)[first])
    rank = np.zeros(values.size, np.int64)
    rank[order] = np.arange(1, values.size + 1)
    out = np.zeros(flat.size, np.int64)
    out[flat > 0] = rank[np.searchsorted(values, flat[flat > 0])]
    return out.reshape(labels.shape)


@settings(max_examples=400, deadline=None)
@given(mask=arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))), connectivity=st.sampled_from([1, 2]))
def test_label_partition_equals_scipy(mask, connectivity):
    ours, n = label(mask, connectivity)
    want, m = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    assert ours.dtype == np.int32 and n == m
    assert np.array_equal(_partition(ours), _partition(want))


def test_label_of_a_sliced_and_empty_mask():
    rng = np.random.default_rng(3)
    big = rng.random((60, 80)) < 0.4
    view = big[5:50:2, ::3]  # not contiguous
    ours, n = label(view, 2)
    want, m = ndimage.label(view, structure=np.ones((3, 3), bool))
    assert n == m and np.array_equal(_partition(ours), _partition(want))
    assert label(np.zeros((4, 5), bool), 1)[1] == 0


def test_tables_from_a_given_index_equal_tables_from_the_whole_tile():
    """BlockMapper hands ``np.flatnonzero(labels)`` to the table kernels; same tables either way."""
    from tos2ca_batch.kernels.components import component_table, overlap_pairs

    rng = np.random.default_rng(7)
    prev, _ = label(rng.random((50, 70)) < 0.3, 2)
    cur, _ = label(rng.random((50, 70)) < 0.3, 2)
    values = rng.random((50, 70)).astype(np.float32)
    index = np.flatnonzero(cur)
    a, b = component_table(cur, values, 3, 10, 20, 200), component_table(cur, values, 3, 10, 20, 200, index)
    c, d = overlap_pairs(prev, cur, 3, 10, 20, 200), overlap_pairs(prev, cur, 3, 10, 20, 200, index)
    for x, y in ((a, b), (c, d)):
        assert x.keys() == y.keys() and all(x[k].tobytes() == y[k].tobytes() for k in x)
    assert c["step"].size > 0


@settings(max_examples=300, deadline=None)
@given(n_nodes=st.integers(1, 60), data=st.data())
def test_union_find_equals_scipy_connected_components(n_nodes, data):
    """The numpy union-find gives scipy.sparse.csgraph's sets, numbered by their smallest node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from tos2ca_batch.kernels.unionfind import join

    edges = data.draw(st.lists(st.tuples(st.integers(0, n_nodes - 1), st.integers(0, n_nodes - 1)), max_size=120))
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    _, sets = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(n_nodes, n_nodes)), directed=False)
    smallest = np.array([np.flatnonzero(sets == s).min() for s in range(sets.max() + 1)])
    want = np.argsort(np.argsort(smallest))[sets]
    got = join(n_nodes, a, b)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert np.array_equal(join(n_nodes, b[::-1], a[::-1]), want)  # edge order and direction do not matter


def test_the_map_drops_small_components_whole_in_their_tile_and_keeps_those_at_a_seam():
    from tos2ca_batch.kernels.blockmap import BlockMapper

    m = np.zeros((8, 8), bool)
    m[3, 3] = True  # 1 px, inside: dropped
    m[0, 5] = True  # 1 px on the top edge, a seam: kept (its other part may be across it)
    m[7, 0:2] = True  # 2 px on the bottom and left edges, the job's border here: dropped
    m[4:7, 5:8] = True  # 9 px: kept
    mapper = BlockMapper(0, 0, 8, 2, min_size=3, seams=(True, False, False, True))
    labels = mapper.add(0, m, np.ones(m.shape, np.float32))
    tables = mapper.tables()
    assert sorted(tables["components"]["area"].tolist()) == [1, 9]
    assert tables["components"]["label"].tolist() == [1, 2]  # numbered 1..n again
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    assert labels[3, 3] == 0 and labels[7, 0] == labels[7, 1] == 0 and labels[0, 5] > 0
    assert np.array_equal(mapper.index, np.flatnonzero(labels))  # no record of a dropped pixel
    assert tables["strips"]["bottom_label"].size == 0 and tables["strips"]["left_label"].size == 0
    # A min_size of 1 drops nothing.
    keep_all = BlockMapper(0, 0, 8, 2, seams=(True, False, False, True))
    assert keep_all.add(0, m, np.ones(m.shape, np.float32)).max() == 4
