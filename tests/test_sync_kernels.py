"""Property: linking continued from an earlier linking's last step (what a sync does) gives the
ids and tags of one linking over the whole range, for any split point and chunking."""

import numpy as np
from chunkdriver import tag_table, track_cube
from hypothesis import given, settings
from hypothesis import strategies as st
from tos2ca_batch.kernels.fortracc import CODE, INITIATION, TAGS, LinkStart


def start_from(res, last_step: int) -> LinkStart:
    """Step ``last_step`` (the last) of a resolved range as a ``LinkStart``."""
    c = res.components
    last = np.flatnonzero(c["step"] == last_step)
    return LinkStart(c["anomaly_id"][last], res.tag_code[last], res.n_anomalies)


@st.composite
def cases(draw):
    nt = draw(st.integers(2, 7))
    ny, nx = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    masks = np.random.default_rng(seed).random((nt, ny, nx)) < draw(st.sampled_from([0.3, 0.5, 0.7]))
    k = draw(st.integers(1, nt - 1))  # the first range is steps [0, k), the continuation [k - 1, nt)
    return {
        "masks": masks, "k": k,
        "tile_a": (draw(st.integers(1, ny)), draw(st.integers(1, nx))),
        "tile_b": (draw(st.integers(1, ny)), draw(st.integers(1, nx))),
        "block_a": draw(st.integers(1, k)), "block_b": draw(st.integers(1, nt - k + 1)),
        "kw": {"connectivity": draw(st.sampled_from([1, 2])), "min_size": draw(st.integers(1, 3)),
               "min_overlap": draw(st.sampled_from([0.1, 0.25, 0.5])), "wrap": draw(st.booleans()),
               "overlap_fraction": draw(st.sampled_from(["exact", "tos2ca"]))},
    }


@settings(max_examples=300, deadline=None)
@given(cases())
def test_a_continued_linking_equals_one_linking_over_the_whole_range(case):
    masks, k, kw = case["masks"], case["k"], case["kw"]
    whole_ids, whole = track_cube(masks, masks.shape[0], (99, 99), **kw)
    first_ids, first = track_cube(masks[:k], case["block_a"], case["tile_a"], **kw)
    more_ids, more = track_cube(masks[k - 1:], case["block_b"], case["tile_b"], start=start_from(first, k - 1), **kw)

    assert np.array_equal(first_ids, whole_ids[:k])  # an earlier step's ids never change
    assert np.array_equal(more_ids, whole_ids[k - 1:])
    assert more.n_anomalies == whole.n_anomalies
    expected = tag_table(whole)
    before = [row for row in tag_table(first) if row[0] < k - 1]
    after = [(s + k - 1, a, t) for s, a, t in tag_table(more)]
    assert sorted(before + after) == expected  # only the earlier last step's tags may change


def test_the_earlier_last_steps_tag_changes_when_the_anomaly_dissipates_after_it():
    masks = np.zeros((3, 4, 4), bool)
    masks[:2, 1:3, 1:3] = True  # one anomaly over steps 0 and 1; nothing at step 2
    _, first = track_cube(masks[:2], 2, (4, 4))
    assert first.tags[-1] == "continuation"
    _, more = track_cube(masks[1:], 2, (4, 4), start=start_from(first, 1))
    assert more.tags == ["dissipation"] and TAGS.index(more.tags[0]) == 4


def test_a_start_that_does_not_match_step_0_is_refused():
    masks = np.ones((2, 3, 3), bool)
    _, first = track_cube(masks, 2, (3, 3))
    bad = LinkStart(np.array([1, 2], np.int32), np.full(2, CODE[INITIATION]), 2)
    try:
        track_cube(masks, 2, (3, 3), start=bad)
    except ValueError as exc:
        assert "components" in str(exc)
    else:
        raise AssertionError("a start of another step was accepted")
