"""The README's worked example, end to end through the CLI: inject, run, score, sweep.

    python benchmarks/example_sweep.py [--out benchmarks/examples]

Synthetic IMERG-layout files (1 degree, 12 half-hourly steps) get five features of known truth
(a mover across 180, a merge, a split); one job is run and scored; then a 3 x 2 x 3 sweep of
value, tracking.min_size and tracking.min_overlap is run against the truth. Copies the score
and sweep plots into ``--out`` and prints one JSON line: the sweep's wall time, the time of one
separate job (so 18 separate jobs would take about 18 x that), and the best combination.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tos2ca_batch.inject import EXAMPLE_FEATURES


def cli(*args: str, cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"tos2ca-batch {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("examples")))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "features.json").write_text(json.dumps(EXAMPLE_FEATURES))
        cli("synth", "--kind", "imerg", "--out", "data", "--start", "2020-01-04T00:00", "--end", "2020-01-04T05:30",
            "--res", "1", cwd=here)
        cli("inject", "--catalog", "data/catalog-imerg.json", "--dataset", "GPM_3IMERGHH", "--start",
            "2020-01-04T00:00", "--end", "2020-01-04T05:30", "--features", "features.json", "--out", "injected",
            cwd=here)
        spec = {"dataset": "GPM_3IMERGHH_injected", "variable": "precipitation", "operator": "greaterThan",
                "value": 10, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180, -40, 180, 40],
                "tracking": {"min_size": 3, "min_overlap": 0.1}}
        (here / "spec.json").write_text(json.dumps(spec))
        catalogs = ["--catalog", "data/catalog-imerg.json", "--catalog", "injected/catalog.json"]
        one_s, stdout = cli("run", "spec.json", *catalogs, "--products", "masks,toc,ids,tables", cwd=here)
        job = json.loads(stdout.strip().splitlines()[-1])["job_id"]
        cli("score", str(job), "--truth", "injected/truth.json", "--out", "scores", *catalogs, cwd=here)
        shutil.copy(here / "scores" / f"{job}-scores.png", out / "score-per-step.png")
        sweep_s, stdout = cli("sweep", "spec.json", "--grid", "value=1,10,25", "--grid", "tracking.min_size=3,20",
                              "--grid", "tracking.min_overlap=0.1,0.25,0.5", "--truth", "injected/truth.json",
                              "--products", "masks,toc,ids,tables", *catalogs, cwd=here)
        res = json.loads(stdout.strip().splitlines()[-1])
        png = next(o for o in res["outputs"] if o.endswith(".png"))
        shutil.copy(png, out / "sweep-heatmap.png")
        best = max((r for r in res["rows"] if r["status"] == "complete"),
                   key=lambda r: (r["pixel_csi"] or 0, r["idf1"] or 0, -r["id_switches"]))
        print(json.dumps({"one_job_s": round(one_s, 2), "sweep_s": round(sweep_s, 2), "combinations": len(res["rows"]),
                          "best": best["combination"], "best_csi": best["pixel_csi"], "best_idf1": best["idf1"],
                          "plots": [str(out / "score-per-step.png"), str(out / "sweep-heatmap.png")]}))


if __name__ == "__main__":
    main()
