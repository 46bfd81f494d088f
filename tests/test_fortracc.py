"""ForTraCC linking: the worked cases of SPEC section 5 and every tag and tie-break."""

import numpy as np
import pytest
from chunkdriver import tag_table, track_cube
from hypothesis import given, settings
from hypothesis import strategies as st
from tos2ca_batch.kernels.fortracc import StepOverlaps, link


def frames_to_masks(frames):
    return np.array([[[ch == "#" for ch in row] for row in f] for f in frames])


def anomalies_of(ids, res, timestamps):
    tags = {(int(s), int(a)): t for s, a, t in zip(res.components["step"], res.components["anomaly_id"], res.tags)}
    out = []
    for a in range(1, res.n_anomalies + 1):
        steps = []
        for s in range(ids.shape[0]):
            px = np.argwhere(ids[s] == a).tolist()
            if px:
                steps.append({"t": timestamps[s], "tag": tags[(s, a)], "pixels": px})
        out.append({"id": a, "steps": steps})
    return out


CHUNKINGS = [(100, (100, 100)), (1, (1, 1)), (1, (2, 2)), (2, (1, 3)), (3, (3, 2)), (1, (4, 1))]


@pytest.mark.parametrize("reduce_steps", [None, 1, 2])
@pytest.mark.parametrize("mode", ["exact", "tos2ca"])
@pytest.mark.parametrize("block,tile", CHUNKINGS)
@pytest.mark.parametrize("cases", ["fortracc_cases", "fragmented_cases"])
def test_worked_cases_every_chunking(request, cases, block, tile, mode, reduce_steps):
    """Single-piece overlaps (fortracc-cases.json): both fractions give the published result.
    Overlaps in several pieces (the fragmented cases): each mode's own expected anomalies. Also
    linked in time blocks of 1 and 2 steps and stitched, as the reduce stage does."""
    for name, case in request.getfixturevalue(cases).items():
        masks = frames_to_masks(case["frames"])
        ids, res = track_cube(masks, block, tile, case["connectivity"], case["min_size"], case["min_overlap"],
                              overlap_fraction=mode, reduce_steps=reduce_steps)
        expected = case["expected_anomalies"]
        expected = expected[mode] if isinstance(expected, dict) else expected
        assert anomalies_of(ids, res, case["timestamps"]) == expected, (name, mode)


def test_fragmented_cases_differ_between_modes(fragmented_cases):
    for name, case in fragmented_cases.items():
        assert case["expected_anomalies"]["exact"] != case["expected_anomalies"]["tos2ca"], name


def test_tos2ca_fractions_by_hand():
    from tos2ca_batch.kernels.fortracc import tos2ca_fractions

    # p of 16 px overlapping c in two pieces of 4 (first) and 4: forward 8/(2*16), backward 8/(16+8-4).
    fwd, back = tos2ca_fractions(np.array([8]), np.array([16]), np.array([2]), np.array([4]))
    assert fwd[0] == 0.25 and back[0] == 0.4
    # One piece: both are the exact fraction.
    fwd, back = tos2ca_fractions(np.array([7]), np.array([16]), np.array([1]), np.array([7]))
    assert fwd[0] == back[0] == 7 / 16


def ov(prev, cur, overlap, first):
    return StepOverlaps(np.array(prev), np.array(cur), np.array(overlap), np.array(first))


def entries(tracks):
    return [(s, i, int(a), t) for s, (ids, tags) in enumerate(zip(tracks.anomaly_id, tracks.tag))
            for i, (a, t) in enumerate(zip(ids, tags))]


def test_initiation_continuation_dissipation():
    tr = link([np.array([10]), np.array([12]), np.array([])], [None, ov([0], [0], [8], [3]), ov([], [], [], [])], 0.25)
    assert entries(tr) == [(0, 0, 1, "initiation"), (1, 0, 1, "dissipation")]


def test_merge_largest_frac_continues_others_end():
    # Two earlier components (areas 10 and 20) merge into one; frac 8/10 beats 9/20.
    tr = link([np.array([10, 20]), np.array([40])], [None, ov([0, 1], [0, 0], [8, 9], [5, 1])], 0.25)
    assert entries(tr) == [(0, 0, 2, "initiation"), (0, 1, 1, "dissipation - merge"),
                           (1, 0, 2, "continuation - merge")]


def test_merge_tie_first_in_partner_order_wins():
    # Equal fracs: the partner whose overlap comes first in raster order continues.
    tr = link([np.array([10, 10]), np.array([30])], [None, ov([0, 1], [0, 0], [5, 5], [9, 2])], 0.25)
    assert dict(((s, i), t) for s, i, _, t in entries(tr))[(0, 1)] == "initiation"
    got = entries(tr)
    cont = [e for e in got if e[3] == "continuation - merge"][0]
    ended = [e for e in got if e[3] == "dissipation - merge"][0]
    assert (ended[0], ended[1]) == (0, 0)  # comp 0's overlap starts at index 9, after comp 1's
    assert cont[2] == [e for e in got if (e[0], e[1]) == (0, 1)][0][2]


def test_split_largest_overlap_continues_others_initiate():
    tr = link([np.array([40]), np.array([10, 25])], [None, ov([0, 0], [0, 1], [12, 20], [0, 4])], 0.25)
    assert entries(tr) == [(0, 0, 1, "initiation"), (1, 0, 2, "initiation - split"),
                           (1, 1, 1, "continuation - split")]


def test_split_tie_first_in_partner_order():
    tr = link([np.array([40]), np.array([12, 12])], [None, ov([0, 0], [0, 1], [12, 12], [30, 7])], 0.25)
    got = {(s, i): (a, t) for s, i, a, t in entries(tr)}
    assert got[(1, 1)] == (1, "continuation - split")  # its overlap starts first (index 7)
    assert got[(1, 0)] == (2, "initiation - split")


def test_pool_order_first_step_later_component_first():
    # Equal areas on the first step: the later component (in step order) is taken first -> id 1.
    tr = link([np.array([5, 5, 7])], [None], 0.25)
    assert [int(a) for a in tr.anomaly_id[0]] == [3, 2, 1]


def test_pool_order_current_step_before_previous_on_equal_area():
    # P (area 4) overlaps C0 and C1 (area 4 each). C1 is taken first (step s before s-1, later
    # first) and continues P; then C0 finds P gone and initiates. A split would be wrong here.
    tr = link([np.array([4]), np.array([4, 4])], [None, ov([0, 0], [0, 1], [2, 2], [0, 2])], 0.25)
    got = {(s, i): (a, t) for s, i, a, t in entries(tr)}
    assert got[(1, 1)] == (1, "continuation")
    assert got[(1, 0)] == (2, "initiation")


def test_overlap_below_threshold_is_no_link():
    tr = link([np.array([16]), np.array([10])], [None, ov([0], [0], [3], [0])], 0.25)
    assert entries(tr) == [(0, 0, 1, "dissipation"), (1, 0, 2, "initiation")]


def test_frac_is_relative_to_earlier_component():
    # 5 px of a 10 px earlier component (0.5) links even though it is 5/100 of the later one.
    tr = link([np.array([10]), np.array([100])], [None, ov([0], [0], [5], [0])], 0.25)
    assert tag_table_like(tr) == [(0, 1, "initiation"), (1, 1, "continuation")]


def tag_table_like(tr):
    return [(s, int(a), t) for s, (ids, tags) in enumerate(zip(tr.anomaly_id, tr.tag)) for a, t in zip(ids, tags)]


def test_min_size_is_applied_after_seams_are_joined():
    # A 4-px component cut by a tile seam into 2 + 2 must survive min_size 3.
    masks = np.zeros((1, 2, 4), bool)
    masks[0, 0, 1:3] = masks[0, 1, 1:3] = True
    ids, res = track_cube(masks, 1, (2, 2), min_size=3)
    assert (ids[0] > 0).sum() == 4
    assert tag_table(res) == [(0, 1, "initiation")]


def test_link_names_the_partners_of_merges_and_splits():
    from tos2ca_batch.kernels.fortracc import StepOverlaps, link

    # step 0: A (area 10) and B (4); step 1: C (12) overlaps 8 of A and all of B: B's fraction (1.0)
    # beats A's (0.8), so C goes on as B's series and A merges into it.
    # step 2: D (8) and E (3) both overlap C: C's series goes on in D, E splits off.
    areas = [np.array([10, 4]), np.array([12]), np.array([8, 3])]
    ov = [None,
          StepOverlaps(np.array([0, 1]), np.array([0, 0]), np.array([8, 4]), np.array([0, 5])),
          StepOverlaps(np.array([0, 0]), np.array([0, 1]), np.array([8, 3]), np.array([0, 9]))]
    tracks = link(areas, ov, 0.25)
    assert [a.tolist() for a in tracks.anomaly_id] == [[1, 2], [2], [2, 3]]
    assert tracks.events == [(1, "merge", 2, 1), (2, "split", 2, 3)]


@st.composite
def step_graphs(draw):
    """Random steps of components and overlap pairs, dense enough for chains of merges and
    splits, with forward and backward fractions that may differ (the ``tos2ca`` mode)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_steps = draw(st.integers(1, 6))
    areas = [rng.integers(1, draw(st.sampled_from([3, 20])), rng.integers(0, 9)) for _ in range(n_steps)]
    overlaps = [None]
    asymmetric = draw(st.booleans())
    for s in range(1, n_steps):
        n_prev, n_cur = areas[s - 1].size, areas[s].size
        pairs = sorted({(int(p), int(c)) for p, c in zip(rng.integers(0, max(n_prev, 1), 12),
                                                           rng.integers(0, max(n_cur, 1), 12))}) \
            if n_prev and n_cur else []
        pairs = [pq for pq in pairs if rng.random() < 0.6]
        prev = np.array([p for p, _ in pairs], np.int64)
        cur = np.array([c for _, c in pairs], np.int64)
        o = np.minimum(areas[s - 1][prev], areas[s][cur]) if pairs else np.zeros(0, np.int64)
        o = np.maximum(1, (o * rng.random(o.size)).astype(np.int64)) if o.size else o
        first = rng.permutation(1000)[:o.size].astype(np.int64)
        fwd = back = None
        if asymmetric:
            fwd, back = rng.random(o.size), rng.random(o.size)
        overlaps.append(StepOverlaps(prev, cur, o, first, fwd, back))
    return areas, overlaps, draw(st.sampled_from([0.1, 0.25, 0.5]))


@settings(max_examples=400, deadline=None)
@given(step_graphs())
def test_the_shortcut_for_single_components_and_pairs_decides_as_the_pool_loop(graph):
    """Components alone or in a pair are decided with array operations; every other group goes
    through the pool loop. Sending every group through the loop gives the same ids, tags and
    events (ties of area and one-way fractions included)."""
    areas, overlaps, min_overlap = graph
    fast = link(areas, overlaps, min_overlap)
    loop = link(areas, overlaps, min_overlap, shortcut=False)
    assert fast.n_anomalies == loop.n_anomalies
    assert [a.tolist() for a in fast.anomaly_id] == [a.tolist() for a in loop.anomaly_id]
    assert fast.tag == loop.tag
    assert fast.events == loop.events
