"""The README's pictures of a job's maps and report: a 12-step 1-degree synthetic IMERG job with
every product and the animation, its report shot in Debian's headless Chromium.

    python benchmarks/example_report.py [--out benchmarks/examples]

Writes report.png (the page's top), report-panels.png (the anomalies step by step), step.png,
tracks.png and animation.gif into ``--out``; prints one JSON line with the paths and the
browser's console errors (none expected).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import tos2ca_batch as tb
from tos2ca_batch.synth import synthesize

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("examples")))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = synthesize("imerg", Path(tmp) / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)
        spec = {"dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan", "value": 10.0,
                "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180, -60, 180, 60],
                "tracking": {"min_size": 5}}
        products = ["masks", "toc", "hierarchy", "geojson", "plots", "tracks", "ids", "tables", "report", "animation"]
        job = tb.run(spec, workdir=Path(tmp) / "w", catalog=catalog, workers=2, products=products)
        files = {Path(o).name.split("-", 1)[1]: o for o in job.outputs}
        shutil.copy(files["202001040300.png"], out / "step.png")
        shutil.copy(files["tracks.png"], out / "tracks.png")
        shutil.copy(files["animation.gif"], out / "animation.gif")
        from playwright.sync_api import sync_playwright

        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(Path(files["report.html"]).as_uri())
            page.screenshot(path=str(out / "report.png"))
            page.locator("h2:has-text('Anomalies step by step')").scroll_into_view_if_needed()
            page.screenshot(path=str(out / "report-panels.png"))
            browser.close()
    print(json.dumps({"job": job.id, "status": job.status, "console_errors": errors,
                      "pictures": sorted(str(p) for p in out.glob("*") if p.stem in
                                         ("report", "report-panels", "step", "tracks", "animation"))}))


if __name__ == "__main__":
    main()
