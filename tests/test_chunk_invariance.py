"""Property: any chunking gives the same anomaly ids and tags as a single chunk."""

import numpy as np
from chunkdriver import tag_table, track_cube
from hypothesis import example, given, settings
from hypothesis import strategies as st


@st.composite
def jobs(draw):
    nt = draw(st.integers(1, 5))
    ny = draw(st.integers(1, 9))
    nx = draw(st.integers(1, 9))
    density = draw(st.sampled_from([0.2, 0.4, 0.6]))
    seed = draw(st.integers(0, 2**32 - 1))
    masks = np.random.default_rng(seed).random((nt, ny, nx)) < density
    return {
        "masks": masks,
        "block": draw(st.integers(1, nt)),
        "tile": (draw(st.integers(1, ny)), draw(st.integers(1, nx))),
        "connectivity": draw(st.sampled_from([1, 2])),
        "min_size": draw(st.integers(1, 4)),
        "min_overlap": draw(st.sampled_from([0.1, 0.25, 0.5])),
        "wrap": draw(st.booleans()),
        "overlap_fraction": draw(st.sampled_from(["exact", "tos2ca"])),
        "reduce_steps": draw(st.one_of(st.none(), st.integers(1, nt))),
    }


def _diagonal_only_across_seams():
    """Pixels that touch only diagonally, exactly at tile corners and across the wrap."""
    m = np.zeros((2, 4, 4), bool)
    m[0, 0, 0] = m[0, 1, 1] = m[0, 2, 2] = m[0, 3, 3] = True
    m[1, 1, 3] = m[1, 2, 0] = True  # touches only across the longitude wrap
    m[1, 0, 2] = True
    return m


@settings(max_examples=300, deadline=None)
@given(jobs())
@example({"masks": _diagonal_only_across_seams(), "block": 1, "tile": (1, 1), "connectivity": 2,
          "min_size": 1, "min_overlap": 0.25, "wrap": True, "overlap_fraction": "exact"})
@example({"masks": _diagonal_only_across_seams(), "block": 1, "tile": (2, 2), "connectivity": 2,
          "min_size": 2, "min_overlap": 0.25, "wrap": False, "overlap_fraction": "exact"})
@example({"masks": _diagonal_only_across_seams(), "block": 1, "tile": (1, 1), "connectivity": 2,
          "min_size": 1, "min_overlap": 0.25, "wrap": True, "overlap_fraction": "tos2ca"})
def test_any_chunking_matches_one_chunk(job):
    masks = job["masks"]
    params = {k: job[k] for k in ("connectivity", "min_size", "min_overlap", "wrap", "overlap_fraction")}
    # The reference keeps every component in the map; the chunked run drops the small whole ones.
    whole_ids, whole = track_cube(masks, masks.shape[0], masks.shape[1:], drop_small=False, **params)
    ids, res = track_cube(masks, job["block"], job["tile"], reduce_steps=job.get("reduce_steps"), **params)
    assert ids.tobytes() == whole_ids.tobytes()
    assert tag_table(res) == tag_table(whole)
    assert res.n_anomalies == whole.n_anomalies
    for col in ("step", "anomaly_id", "area", "first_index", "min_row", "min_col", "max_row", "max_col", "sum_row",
                "sum_col"):
        assert np.array_equal(res.components[col], whole.components[col]), col
    assert np.array_equal(res.tag_code, whole.tag_code)
    for col in ("step", "kind", "anomaly_id", "partner_id"):  # merges and splits, in the same order
        assert np.array_equal(res.events[col], whole.events[col]), col


def test_diagonal_touch_across_tile_corner_joins():
    m = np.zeros((1, 2, 2), bool)
    m[0, 0, 0] = m[0, 1, 1] = True
    ids8, _ = track_cube(m, 1, (1, 1), connectivity=2)
    ids4, _ = track_cube(m, 1, (1, 1), connectivity=1)
    assert len(np.unique(ids8[ids8 > 0])) == 1
    assert len(np.unique(ids4[ids4 > 0])) == 2


def test_wrap_joins_east_and_west_edges_only_when_global():
    m = np.zeros((1, 3, 6), bool)
    m[0, 1, 0] = m[0, 1, 5] = True
    wrapped, _ = track_cube(m, 1, (3, 2), wrap=True)
    plain, _ = track_cube(m, 1, (3, 2), wrap=False)
    assert wrapped[0, 1, 0] == wrapped[0, 1, 5] != 0
    assert plain[0, 1, 0] != plain[0, 1, 5]


def test_pieces_cut_by_seams_and_the_wrap_count_once():
    """A p/c overlap that is one piece across a tile seam and across the wrap, next to a second
    piece: the tos2ca fractions (hence the tags) must not see extra pieces from the cuts."""
    m = np.zeros((2, 4, 8), bool)
    m[0, 0:3, :] = True  # p: a band all around the globe (24 px)
    m[1, 1, :] = True  # c: a band too; overlap is one ring-shaped piece of 8 px, cut by every seam
    m[1, 2, 0:2] = True
    m[1, 3, 0:2] = True  # c extends below p: still one piece in p & c
    whole_ids, whole = track_cube(m, 2, (4, 8), wrap=True, overlap_fraction="tos2ca", min_overlap=0.4)
    ids, res = track_cube(m, 1, (1, 3), wrap=True, overlap_fraction="tos2ca", min_overlap=0.4)
    assert ids.tobytes() == whole_ids.tobytes() and tag_table(res) == tag_table(whole)
    # 10 of p's 24 px overlap in one piece: 10/24 >= 0.4 continues in both modes.
    assert tag_table(whole) == [(0, 1, "initiation"), (1, 1, "continuation")]
