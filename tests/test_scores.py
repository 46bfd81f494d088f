"""The scores of ``kernels.scores`` on small cases whose every number is worked out by hand."""

import numpy as np
import pytest
from tos2ca_batch.kernels.scores import Frame, event_scores, match_frame, score


def frame(objects: dict[int, list[int]]) -> Frame:
    index = np.array([i for px in objects.values() for i in px], np.int64)
    ids = np.array([a for a, px in objects.items() for _ in px], np.int32)
    order = np.argsort(index)
    return Frame(index[order], ids[order])


EMPTY = frame({})


def test_one_step_pixels_and_objects():
    # truth: feature 1 = 4 pixels, feature 2 = 2 pixels; detected: anomaly 7 covers 3 of feature 1's
    # pixels (IoU 3 / (4 + 3 - 3) = 0.75), anomaly 8 one pixel elsewhere.
    truth = frame({1: [0, 1, 4, 5], 2: [10, 11]})
    detected = frame({7: [0, 1, 4], 8: [15]})
    matches, pixels = match_frame(truth, detected, 0.5)
    assert matches == {1: 7} and pixels == {"hits": 3, "misses": 3, "false_alarms": 1}
    assert match_frame(truth, detected, 0.76)[0] == {}  # 0.75 < 0.76: no pair
    assert match_frame(truth, detected, 0.75)[0] == {1: 7}  # the threshold itself counts
    s = score([truth], [detected], 0.5)
    assert s["pixels"]["pod"] == 3 / 6 and s["pixels"]["far"] == 1 / 4 and s["pixels"]["csi"] == 3 / 7
    assert s["objects"] == {"hits": 1, "misses": 1, "false_alarms": 1}
    assert s["tracking"]["mota"] == 1 - (1 + 1 + 0) / 2
    assert s["tracking"]["idf1"] == 2 * 1 / (2 + 2)
    assert s["per_step"] == [{"step": 0, "hits": 1, "misses": 1, "false_alarms": 1, "csi": 1 / 3}]


def test_a_track_lost_for_a_step_and_found_under_another_id():
    # feature 1 at steps 0-3; detected as anomaly 5 at steps 0 and 1, missed at 2, anomaly 6 at 3.
    truth = [frame({1: [0, 1]})] * 4
    detected = [frame({5: [0, 1]}), frame({5: [0, 1]}), EMPTY, frame({6: [0, 1]})]
    t = score(truth, detected, 0.5)["tracking"]
    assert t["id_switches"] == 1 and t["fragmentations"] == 1
    assert t["mota"] == 1 - (1 + 0 + 1) / 4  # one miss, no false alarm, one switch, four truth objects
    # One-to-one for the whole run: feature 1 pairs with anomaly 5 (2 steps) rather than 6 (1 step).
    assert (t["idtp"], t["idfn"], t["idfp"]) == (2, 2, 1)
    assert t["idf1"] == 4 / 7


def test_a_split_that_keeps_the_bigger_part_is_no_switch():
    truth = [frame({1: [0, 1, 2, 3]}), frame({1: [0, 1, 2], 2: [3]})]
    detected = [frame({4: [0, 1, 2, 3]}), frame({4: [0, 1, 2], 5: [3]})]
    s = score(truth, detected, 0.5)
    assert s["tracking"]["id_switches"] == 0 and s["tracking"]["mota"] == 1.0 and s["tracking"]["idf1"] == 1.0
    assert s["pixels"]["csi"] == 1.0


def test_merge_and_split_events_match_within_one_step():
    matches_at = [{}, {3: 9}, {}, {1: 9}]
    ev = event_scores([("merge", 2, 1), ("split", 5, 3)], [("merge", 3, 9), ("split", 1, 9)], matches_at)
    assert ev["merge"] == {"truth": 1, "detected": 1, "hits": 1, "precision": 1.0, "recall": 1.0}
    # the detected split at step 1 is of the anomaly matched to feature 3, but feature 3 splits at 5
    assert ev["split"] == {"truth": 1, "detected": 1, "hits": 0, "precision": 0.0, "recall": 0.0}
    ev = event_scores([("merge", 2, 1)], [("merge", 3, 9), ("merge", 3, 9)], matches_at)
    assert ev["merge"]["hits"] == 1 and ev["merge"]["precision"] == 0.5  # one truth event matches once


def test_no_objects_gives_no_ratio_and_mismatched_lengths_are_refused():
    s = score([EMPTY], [EMPTY])
    assert s["pixels"]["pod"] is None and s["tracking"]["mota"] is None and s["tracking"]["idf1"] is None
    with pytest.raises(ValueError, match="steps"):
        score([EMPTY], [])
