"""J-report.html opened in a real headless Chromium (Debian's, driven by Playwright): no console
errors, every image loads, every link is a file of the job; and the maps' coastlines come from
installed data."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
from helpers import run_job
from services import unavailable

from tos2ca_batch.synth import synthesize

SPEC = {"dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan", "value": 10.0,
        "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 5}}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        unavailable("chromium", FileNotFoundError("apt-get install chromium (.ci/run installs it)"))
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        unavailable("playwright", exc)
    return found


def test_the_report_opens_in_a_real_browser_with_every_image_and_link(tmp_path):
    browser = chromium()
    from playwright.sync_api import sync_playwright

    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)
    _, res = run_job(tmp_path / "w", SPEC, catalog, block_steps=4, tile=(60, 180), workers=2)
    assert res["status"] == "complete", res["message"]
    report = next(Path(o) for o in res["outputs"] if o.endswith("-report.html"))
    text = report.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched
    n = json.loads(next(Path(o) for o in res["outputs"] if o.endswith("TOC.json")).read_text())
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=CHROMIUM_FLAGS)
        try:
            page = b.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            links = page.evaluate("Array.from(document.links).map(a => a.getAttribute('href'))")
            rows = page.locator("table tbody tr").count()
            log = json.loads(page.locator("#job-log pre").inner_text())
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            b.close()
    assert errors == []
    assert len(images) >= 2 and all(ok and width > 0 for _, ok, width in images), images
    assert images[0][0] == "the tracks of every anomaly"
    panels = [alt for alt, _, _ in images[1:]]
    assert len(panels) == min(len(n), 40) and all("at each step where it exists" in a for a in panels)
    assert rows == len(n)
    names = {Path(o).name for o in res["outputs"]}
    assert links and set(links) <= names and f"{res['job_id']}-ForTraCC-Mask-Output.nc4" in links
    assert log["job"]["jobID"] == res["job_id"] and log["stages"]["map"]["complete"] == 3 * 4  # 3 blocks x 4 tiles
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_coastlines_come_from_the_installed_gshhs_data_and_wrap_past_the_antimeridian():
    from matplotlib.figure import Figure

    from tos2ca_batch.outputs import coastlines

    found = coastlines.polygons("c")
    assert len(found) > 1000
    africa = max(found, key=lambda p: np.sum((p[:, 0] > -20) & (p[:, 0] < 52) & (p[:, 1] < 0)))
    cape = africa[np.argmin(np.hypot(africa[:, 0] - 18.5, africa[:, 1] + 34.4))]
    assert np.hypot(cape[0] - 18.5, cape[1] + 34.4) < 0.5  # the Cape of Good Hope where it is
    ax = Figure().subplots()
    assert coastlines.draw(ax, 160.0, 200.0, -50.0, -30.0)  # New Zealand, and east of 180
    lines = ax.collections[0].get_segments()
    assert any((seg[:, 0] > 165).any() and (seg[:, 0] < 179).any() for seg in lines)
    ax2 = Figure().subplots()
    coastlines.draw(ax2, 180.0, 220.0, 10.0, 30.0)  # Hawaii, as a map past 180 draws it
    assert any(((seg[:, 0] > 200) & (seg[:, 0] < 206)).any() for seg in ax2.collections[0].get_segments())
    assert coastlines._lon_label(200.0) == "160°W" and coastlines._lat_label(-20.0) == "20°S"
    assert coastlines._lon_label(30.0) == "30°E" and coastlines._lon_label(180.0) == "180°"


def test_two_runs_reports_compare_by_their_data_not_by_which_run_they_were(tmp_path):
    from tos2ca_batch.outputs.compare import differences
    from tos2ca_batch.outputs.report import write_report

    def report(job: int, version: int, area: int) -> Path:
        path = tmp_path / f"{job}" / f"{job}-report.html"
        path.parent.mkdir()
        write_report(path, f"TOS2CA job {job}: d v > 1", {"anomalies (tracks)": 1}, {"job": job, "version": version},
                     {"end": f"2020-01-0{version}"}, None, [{"anomaly_id": 1, "max_area_px": area}], [],
                     [f"{job}-ForTraCC-TOC.json"], {"job": {"jobID": job}, "stages": {}})
        return path

    one, synced, other = report(3, 1, 40), report(7, 2, 40), report(9, 1, 41)
    assert differences({"J-report.html": one}, {"J-report.html": synced}) == []
    assert differences({"J-report.html": one}, {"J-report.html": other}) == ["J-report.html"]
