"""The rain-like synthetic field: busy, intermittent, advected, in the IMERG layout; and the whole
pipeline on it, identical for every chunking and every reduce blocking."""

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from helpers import assert_same_outputs, local_outputs, run_job
from tos2ca_batch.kernels.components import label

from tos2ca_batch.catalog import load_catalog
from tos2ca_batch.readers import StepReader
from tos2ca_batch.synth import FractalRain, grid, step_counts, synthesize

T0 = datetime(2020, 1, 4)


def test_fractal_rain_is_intermittent_busy_persistent_and_drifts_east():
    lat, lon = grid(0.5)
    rain = FractalRain(lat, lon, 3, T0, 30)
    steps = [rain.at(T0 + timedelta(minutes=30 * k)) for k in range(9)]
    for v in steps:
        counts = step_counts(v)
        assert 0.08 < counts["wet"] < 0.16  # most pixels dry
        assert 0.004 < counts["above"] < 0.025  # the wettest ~1 % above 10 mm/hr
        assert counts["components"] > 40  # many cells, not a few blobs (hundreds at 0.1 degree)
        assert v.dtype == np.float32 and v.min() == 0.0
    sizes = np.bincount(label(steps[0] > 10, 2)[0].ravel())[1:]
    assert np.median(sizes) < 10 and sizes.max() > 50  # mostly small cells, a few large systems
    a, b = steps[0] > 0, steps[1] > 0
    assert (a & b).sum() / (a | b).sum() > 0.5  # AR(1): consecutive steps much alike...
    c = steps[8] > 0
    assert (a & c).sum() / (a | c).sum() < (a & b).sum() / (a | b).sum()  # ...and less so 4 hours on
    # The drift: step 8 matches step 0 moved east (0.15 degree a step: 8 steps = 2.4 px at 0.5).
    match = [float((np.roll(steps[0], d, axis=1) * steps[8]).sum()) for d in range(-6, 7)]
    assert int(np.argmax(match)) - 6 in (2, 3)
    again = FractalRain(lat, lon, 3, T0, 30)
    assert again.at(T0 + timedelta(hours=4)).tobytes() == steps[8].tobytes()  # a function of seed and time


def test_fractal_files_carry_the_field_and_its_counts(tmp_path):
    seen = []
    catalog = synthesize("imerg", tmp_path, T0, T0 + timedelta(minutes=60), res=1.0, field="fractal",
                         progress=lambda stamp, counts: seen.append(stamp))
    assert seen == ["202001040000", "202001040030", "202001040100"]
    truth = json.loads((tmp_path / "truth-imerg.json").read_text())
    assert truth["field"] == "fractal" and [s["t"] for s in truth["steps"]] == seen
    assert all(set(s) == {"t", "wet", "above", "components"} for s in truth["steps"])
    entry = load_catalog([str(catalog)])["GPM_3IMERGHH"]
    lat, lon = grid(1.0)
    expected = FractalRain(lat, lon, 0, T0, 30).at(T0 + timedelta(minutes=30))
    with StepReader(entry, "precipitation") as r:
        got = r.read(T0 + timedelta(minutes=30), np.arange(lat.size), np.arange(lon.size))
    missing = np.isnan(got)
    assert 0 < missing.sum() < 100  # the IMERG fill (-9999.9) reads as missing, as in the blob files
    assert np.array_equal(got[~missing], expected[~missing])
    with pytest.raises(ValueError, match="field must be one of"):
        synthesize("imerg", tmp_path, T0, T0, res=1.0, field="noise")


SPEC = {
    "stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
    "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30",
    "bbox": [-180.0, -90.0, 180.0, 90.0],
    "tracking": {"connectivity": 2, "min_size": 12, "min_overlap": 0.25},
}
NO_PLOTS = ["masks", "toc", "hierarchy", "geojson", "tracks", "ids", "tables"]


def test_a_job_on_rain_like_data_is_the_same_for_every_chunking_and_reduce_blocking(tmp_path):
    catalog = synthesize("imerg", tmp_path / "data", T0, T0 + timedelta(hours=5, minutes=30), res=0.5,
                         field="fractal")
    cfg1, one = run_job(tmp_path / "w", SPEC, catalog, block_steps=12, tile=(360, 720), products=NO_PLOTS)
    cfg2, many = run_job(tmp_path / "w", SPEC, catalog, block_steps=3, tile=(97, 130), products=NO_PLOTS,
                         workers=2, reduce_rows=1)
    assert one["status"] == many["status"] == "complete", (one["message"], many["message"])
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(many, tmp_path))
    assert cfg2.store(many["job_id"]).reduce_blocks() == [(0, 3), (3, 6), (6, 9), (9, 12)]
    table = cfg1.store(one["job_id"]).reduce_table("components")
    assert table["step"].size > 50 and int(table["anomaly_id"].max()) > 20  # a busy job
    tags = set(table["tag"].tolist())
    assert {0, 1, 2, 3} <= tags  # initiations, continuations, merges and splits


def test_reading_only_what_can_pass_the_threshold_changes_no_output(tmp_path, monkeypatch):
    """A ``> 10`` job's map reads only the values whose exponent can reach 10 (most of a rain-like
    step is never unshuffled nor decoded); the same job with every value read gives every file
    byte for byte, on a tiling that cuts the IMERG chunks and the longitude wrap."""
    import dataclasses

    from tos2ca_batch import operators
    from tos2ca_batch.readers import StepReader as Reader

    catalog = synthesize("imerg", tmp_path / "data", T0, T0 + timedelta(hours=2), res=0.5, field="fractal")
    whole_reads, skipping_reads = [], []
    monkeypatch.setattr(Reader, "read_at_least", _counted(Reader.read_at_least, skipping_reads))
    spec = dict(SPEC, end="2020-01-04T02:00")
    _, skipping = run_job(tmp_path / "a", spec, catalog, block_steps=2, tile=(97, 130), products=NO_PLOTS)
    read_all = dataclasses.replace(operators.get("greaterThan"), floor=None)
    monkeypatch.setitem(operators._BUILTIN_BY_NAME, "greaterThan", read_all)
    monkeypatch.setattr(Reader, "read", _counted(Reader.read, whole_reads))
    _, whole = run_job(tmp_path / "b", spec, catalog, block_steps=2, tile=(97, 130), products=NO_PLOTS)
    assert skipping["status"] == whole["status"] == "complete", (skipping["message"], whole["message"])
    assert len(skipping_reads) >= 5 * 8 and len(whole_reads) >= 5 * 8  # every map read took its path
    assert_same_outputs(local_outputs(skipping, tmp_path), local_outputs(whole, tmp_path))


def _counted(method, calls: list):
    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return method(self, *args, **kwargs)

    return counting
