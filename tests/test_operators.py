"""The operator registry: hysteresis holds across tile seams, spec refusals, a plugin operator
installed through the ``tos2ca_batch.operators`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime

import numpy as np
import pytest
from chunkdriver import tag_table, track_cube
from helpers import assert_same_outputs, local_outputs, run_job, write_cube
from hypothesis import given, settings
from hypothesis import strategies as st
from tos2ca_batch.kernels.binarize import hysteresis_core_kept, hysteresis_extent

from tos2ca_batch.catalog import load_catalog
from tos2ca_batch.errors import SpecError
from tos2ca_batch.spec import validate


def hysteresis_cube(values, core, extent, block, tile, connectivity=2):
    return track_cube(hysteresis_extent(values, core, extent), block, tile, connectivity, values=values,
                      keep=lambda vmin, vmax: hysteresis_core_kept(vmin, vmax, core, extent))


def test_a_cold_core_cut_away_from_its_extent_by_a_seam_still_keeps_the_whole_extent():
    t = np.full((2, 6, 8), 260.0, np.float32)  # warm background
    t[:, 1:5, 0:6] = 235.0  # an extent (< 241 K) across the seam at column 4 ...
    t[:, 2, 5] = 220.0  # ... whose only cold-core pixel (< 225 K) is right of the seam
    t[:, 1:3, 7] = 238.0  # a second extent, never cold enough: no core, never counts
    one_ids, one = hysteresis_cube(t, 225.0, 241.0, 2, (6, 8))
    cut_ids, cut = hysteresis_cube(t, 225.0, 241.0, 1, (3, 4))  # the core's tile holds none of the rest
    assert np.array_equal(one_ids, cut_ids) and tag_table(one) == tag_table(cut)
    assert set(np.unique(one_ids)) == {0, 1}
    assert (one_ids[0] > 0).sum() == 4 * 6  # the whole first extent, the second dropped


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(1, 7), st.integers(1, 9), st.booleans())
def test_hysteresis_is_the_same_for_every_chunking(seed, block, th, tw, below):
    rng = np.random.default_rng(seed)
    values = rng.random((4, 7, 9)).astype(np.float32) * 10
    core, extent = (1.0, 4.0) if below else (9.0, 6.0)
    one_ids, one = hysteresis_cube(values, core, extent, 4, (7, 9))
    ids, res = hysteresis_cube(values, core, extent, block, (th, tw))
    assert np.array_equal(one_ids, ids) and tag_table(one) == tag_table(res)




def test_a_hysteresis_job_is_the_same_for_a_tiling_that_cuts_its_cores_away(tmp_path):
    rng = np.random.default_rng(4)
    lat, lon = np.linspace(-20, 20, 30), np.linspace(-40, 40, 60)
    t = (250 + 20 * rng.random((6, 30, 60))).astype(np.float32)
    t[:, 5:20, 10:40] = 235.0
    t[2:5, 12, 38] = 215.0  # a core near the edge of a big extent
    t[:, 22:28, 45:55] = 237.0  # an extent without a core
    catalog = write_cube(tmp_path / "d", "ir", t, lat, lon, datetime(2020, 1, 1))
    spec = {"dataset": "ir", "variable": "v", "operator": "hysteresis", "value": 225, "value2": 241,
            "start": "2020-01-01T00:00", "end": "2020-01-01T02:30", "bbox": [-40, -20, 40, 20],
            "tracking": {"min_size": 5}}
    with pytest.raises(SpecError) as e:
        validate({k: v for k, v in spec.items() if k != "value2"}, load_catalog([str(catalog)], None))
    assert e.value.field == "value2"
    with pytest.raises(SpecError) as e:
        validate(dict(spec, operator="greaterThan"), load_catalog([str(catalog)], None))
    assert e.value.field == "value2" and "hysteresis" in str(e.value)
    _, one = run_job(tmp_path / "one", spec, catalog, block_steps=6, tile=(30, 60))
    _, cut = run_job(tmp_path / "cut", spec, catalog, block_steps=2, tile=(8, 13))
    assert one["status"] == cut["status"] == "complete", one["message"]
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(cut, tmp_path))
    toc = json.loads(next(p for n, p in local_outputs(one, tmp_path).items() if n.endswith("TOC.json")).read_text())
    assert len(toc) == 1 and toc[0]["start_date"] == "202001010100"  # only while the core exists


def test_a_plugin_operator_is_listed_and_runs_a_job(tmp_path):
    site = tmp_path / "site"
    (site / "warmops-0.1.dist-info").mkdir(parents=True)
    (site / "warmops-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: warmops\nVersion: 0.1\n")
    (site / "warmops-0.1.dist-info" / "entry_points.txt").write_text(
        "[tos2ca_batch.operators]\nband = warmops:BAND\n")
    (site / "warmops.py").write_text(textwrap.dedent('''
        from tos2ca_batch.operators import Operator

        def band(values, value, value2, baseline):
            return (values > value) & (values < value2)

        BAND = Operator("band", "pixels between value and value2", band,
                        {"value": "lower bound", "value2": "upper bound"}, "band")
    '''))
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "operators", "--json"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    listed = {d["name"]: d for d in map(json.loads, p.stdout.splitlines())}
    assert listed["band"]["source"] == "warmops (warmops:BAND)" and "hysteresis" in listed
    values = np.zeros((3, 10, 10), np.float32)
    values[:, 2:6, 2:6] = 5.0
    values[:, 7:9, 7:9] = 9.0  # above the band
    catalog = write_cube(tmp_path / "d", "b", values, np.linspace(0, 9, 10), np.linspace(0, 9, 10),
                         datetime(2020, 1, 1))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"dataset": "b", "variable": "v", "operator": "band", "value": 4, "value2": 6,
                                "start": "2020-01-01T00:00", "end": "2020-01-01T01:00", "bbox": [0, 0, 9, 9],
                                "tracking": {"min_size": 2}}))
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--catalog", str(catalog),
                        "--workdir", str(tmp_path / "w"), "--workers", "1", "--products", "toc,masks"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    toc_file = next(o for o in res["outputs"] if o.endswith("TOC.json"))
    with open(toc_file) as f:
        assert len(json.load(f)) == 1  # the band's square, not the hotter one


def test_a_builtin_operator_is_found_without_reading_the_installed_plugins(monkeypatch):
    """Reading every distribution's entry points costs ~5 ms a process: a job on a built-in
    operator never pays it; a name that is not built in is looked up among the plugins."""
    import importlib.metadata

    from tos2ca_batch import operators

    looked: list[dict] = []
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: looked.append(kw) or [])
    operators.registry.cache_clear()
    try:
        assert operators.get("greaterThan").name == "greaterThan"
        assert operators.find("hysteresis").takes_value2
        assert looked == []
        assert operators.find("band") is None
        with pytest.raises(KeyError, match="unknown operator 'band'; known: .*greaterThan"):
            operators.get("band")
        assert looked == [{"group": operators.ENTRY_POINT_GROUP}]  # looked once, then cached
    finally:
        operators.registry.cache_clear()


def test_nan_percentile_is_numpys_own_definition_bit_for_bit():
    from tos2ca_batch.kernels.stats import nan_percentile

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 31):
        x = rng.normal(size=(n, 6, 5)).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = np.nan
        x[:, 0, 0] = np.nan  # a pixel without any sample
        for q in (0.5, 5, 33.3, 50, 90, 99):
            with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
                expected = np.nanpercentile(x.astype(np.float64), q, axis=0)
            assert np.array_equal(nan_percentile(x, q), expected, equal_nan=True), (n, q)
    # the steps' order never matters: a pixel's samples are sorted
    assert np.array_equal(nan_percentile(x, 90), nan_percentile(x[::-1], 90), equal_nan=True)


def test_a_percentile_job_masks_each_pixel_beyond_its_own_baseline_percentile_for_every_chunking(
        tmp_path, monkeypatch):
    import tos2ca_batch.algorithm as algorithm
    from tos2ca_batch.config import Config

    rng = np.random.default_rng(11)
    lat, lon = np.linspace(-10, 10, 12), np.linspace(0, 30, 20)
    # a climate that varies from pixel to pixel: one threshold for the whole field would not do
    values = (rng.gamma(2.0, 1.0, (16, 12, 20)) * np.linspace(1, 5, 20)).astype(np.float32)
    values[3, 2:5, 4:9] = np.nan  # missing pixels are never in a mask and not in the baseline
    catalog = write_cube(tmp_path / "d", "pr", values, lat, lon, datetime(2020, 1, 1), fill=None)
    spec = {"dataset": "pr", "variable": "v", "operator": "percentile", "value": 90,
            "start": "2020-01-01T04:00", "end": "2020-01-01T07:30", "bbox": [0, -10, 30, 10],
            "baseline": {"start": "2020-01-01T00:00", "end": "2020-01-01T07:30"},
            "tracking": {"min_size": 1, "connectivity": 2}}
    for bad, field in (({"value": 100}, "value"), ({"value": 0}, "value"),
                       ({"operator": "greaterThan", "value": 1}, "baseline")):
        with pytest.raises(SpecError) as e:
            validate(dict(spec, **bad), load_catalog([str(catalog)], None))
        assert e.value.field == field
    _, one = run_job(tmp_path / "one", spec, catalog, block_steps=8, tile=(12, 20))
    monkeypatch.setattr(algorithm, "PERCENTILE_BYTES", 4 * 16 * 7 * 8 * 3)  # bands of 4 rows in 7-column tiles
    cfg, cut = run_job(tmp_path / "cut", spec, catalog, block_steps=3, tile=(5, 7))
    assert one["status"] == cut["status"] == "complete", (one["message"], cut["message"])
    assert cfg.db().chunks(cut["job_id"], "stats").__len__() == 3 * 3  # 3 bands of rows x 3 column tiles
    assert_same_outputs(local_outputs(one, tmp_path), local_outputs(cut, tmp_path))
    p90 = np.nanpercentile(values.astype(np.float64), 90, axis=0)
    store = Config.from_env(str(tmp_path / "one"), [str(catalog)]).store(one["job_id"])
    for s in range(8):
        expected = values[8 + s] > p90
        assert np.array_equal(store.read_ids(s) > 0, expected), s
    assert 0.05 < np.mean(values[8:] > p90) < 0.2  # about a tenth of each pixel's record
