"""The worked ForTraCC cases run through the real pipeline (netCDF in, masks file out)."""

from datetime import datetime

import netCDF4
import numpy as np
import pytest
from helpers import read_masks, run_job, write_cube


def _cases(fortracc_cases, fragmented_cases, mode):
    for name, case in fortracc_cases.items():
        yield name, case, case["expected_anomalies"]
    for name, case in fragmented_cases.items():
        yield name, case, case["expected_anomalies"][mode]


@pytest.mark.parametrize("mode", ["exact", "tos2ca"])
@pytest.mark.parametrize("block,tile", [(None, None), (1, (2, 3)), (2, (1, 4))])
def test_cases_through_files(fortracc_cases, fragmented_cases, tmp_path, block, tile, mode):
    for name, case, expected in _cases(fortracc_cases, fragmented_cases, mode):
        frames = np.array([[[20.0 if ch == "#" else 0.0 for ch in row] for row in f] for f in case["frames"]],
                          np.float32)
        nt, ny, nx = frames.shape
        cat = write_cube(tmp_path / name, "CASE", frames, np.arange(ny, dtype=float), np.arange(nx, dtype=float),
                         datetime(2020, 1, 1))
        spec = {"stage": "phdef", "dataset": "CASE", "variable": "v", "operator": "greaterThan", "value": 10.0,
                "start": "2020-01-01T00:00", "end": f"2020-01-01T{(nt - 1) // 2:02d}:{30 * ((nt - 1) % 2):02d}",
                "bbox": [0.0, 0.0, float(nx - 1), float(ny - 1)],
                "tracking": {**{k: case[k] for k in ("connectivity", "min_size", "min_overlap")},
                             "overlap_fraction": mode}}
        cfg, res = run_job(tmp_path / f"w-{name}", spec, cat, block_steps=block, tile=tile,
                           products=["masks", "toc"])
        assert res["status"] == "complete", res["message"]
        masks_path = next(o for o in res["outputs"] if o.endswith("Mask-Output.nc4"))
        with netCDF4.Dataset(masks_path) as ds:
            assert ds.overlap_fraction == mode
        masks = read_masks(masks_path)
        assert sorted(masks) == case["timestamps"]
        table = cfg.store(res["job_id"]).reduce_table("components")
        from tos2ca_batch.kernels.fortracc import TAGS

        tags = {(case["timestamps"][int(s)], int(a)): TAGS[int(t)]
                for s, a, t in zip(table["step"], table["anomaly_id"], table["tag"])}
        got = []
        for a in range(1, 1 + max([int(mi[:, 2].max()) for mi, _ in masks.values() if mi.size] + [0])):
            steps = []
            for ts in case["timestamps"]:
                mi = masks[ts][0]
                px = sorted(mi[mi[:, 2] == a, :2].tolist()) if mi.size else []
                if px:
                    steps.append({"t": ts, "tag": tags[(ts, a)], "pixels": px})
            got.append({"id": a, "steps": steps})
        assert got == expected, (name, mode)
