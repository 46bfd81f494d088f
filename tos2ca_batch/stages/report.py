"""The job's report (``J-report.html``, ``outputs.report``), written last by finalize and by a
sync's commit: its summary, tracks map, anomalies, each of the largest anomalies at the steps
where it exists (cropped from the ids, read once per step shown), links to its files, its log."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tos2ca_batch.plans import PhDefPlan
from tos2ca_batch.stages.products import anomaly_rows

MAX_PANELS = 40  # anomalies shown step by step (the largest)
MAX_FRAMES = 8  # steps shown of each (evenly spread over its life)


def _iso(ts: str) -> str:
    return f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T{ts[8:10]}:{ts[10:]}Z"


def _shown(table: dict, n: int) -> dict[int, list[int]]:
    """The steps shown of each anomaly shown: the MAX_PANELS largest, up to MAX_FRAMES steps each."""
    if n == 0:
        return {}
    largest = np.zeros(n + 1, np.int64)
    np.maximum.at(largest, table["anomaly_id"], table["area"])
    chosen = sorted(np.argsort(-largest[1:], kind="stable")[:MAX_PANELS] + 1)
    out = {}
    for a in chosen:
        steps = np.unique(table["step"][table["anomaly_id"] == a])
        pick = np.unique(np.linspace(0, steps.size - 1, min(MAX_FRAMES, steps.size)).round().astype(int))
        out[int(a)] = [int(s) for s in steps[pick]]
    return out


def _boxes(plan: PhDefPlan, shown: dict[int, list[int]], read_ids) -> dict[int, list[int]]:
    """Each shown anomaly's ``[r0, r1, c0, c1]`` over its shown steps (columns may run past the
    grid's last one on a grid that wraps, when it crosses the edge), with a margin."""
    from scipy import ndimage  # 0.15 s of imports: only jobs with a report pay them

    width, height = plan.layout.width, plan.layout.height
    boxes: dict[int, list[int]] = {}
    for s in sorted({s for steps in shown.values() for s in steps}):
        ids = read_ids(s)
        found = ndimage.find_objects(ids)
        for a, steps in shown.items():
            if s not in steps or a > len(found) or found[a - 1] is None:
                continue
            rows, cols = found[a - 1]
            c0, c1 = cols.start, cols.stop
            if plan.wraps and c1 - c0 > width / 2:  # across the grid's edge: east of it continues past
                c = np.unique(np.nonzero(ids[rows] == a)[1])
                c = np.where(c < width / 2, c + width, c)
                c0, c1 = int(c.min()), int(c.max()) + 1
            b = boxes.setdefault(a, [rows.start, rows.stop, c0, c1])
            boxes[a] = [min(b[0], rows.start), max(b[1], rows.stop), min(b[2], c0), max(b[3], c1)]
    for a, (r0, r1, c0, c1) in boxes.items():
        m = max(3, (max(r1 - r0, c1 - c0) + 4) // 5)
        c0, c1 = (c0 - m, c1 + m) if plan.wraps else (max(0, c0 - m), min(width, c1 + m))
        boxes[a] = [max(0, r0 - m), min(height, r1 + m), c0, c1]
    return boxes


def panels(plan: PhDefPlan, table: dict, n: int, read_ids, tmp: str) -> list[tuple[int, str, bytes]]:
    """(anomaly, caption, PNG) of each shown anomaly at its shown steps."""
    from tos2ca_batch.outputs.plots import anomaly_steps_png

    shown = _shown(table, n)
    boxes = _boxes(plan, shown, read_ids)
    lat_e, lon_e, _ = plan.grid.edges()
    span = lon_e[-1] - lon_e[0]
    width = plan.layout.width
    frames: dict[int, list] = {a: [] for a in boxes}
    for s in sorted({s for a in boxes for s in shown[a]}):
        ids = read_ids(s)
        for a in boxes:
            if s not in shown[a]:
                continue
            r0, r1, c0, c1 = boxes[a]
            crop = np.take(ids[r0:r1], np.arange(c0, c1) % width, axis=1)
            cells = np.where(crop == a, 2, np.where(crop > 0, 1, 0)).astype(np.int8)
            x0 = lon_e[c0 % width] + span * (c0 // width)
            x1 = lon_e[(c1 - 1) % width + 1] + span * ((c1 - 1) // width)
            ts = plan.timestamps[s]
            frames[a].append((f"{ts[:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:]}", cells,
                              (x0, x1, lat_e[r0], lat_e[r1])))
    out = []
    for a, fr in frames.items():
        path = f"{tmp}/anomaly-{a}.png"
        anomaly_steps_png(path, fr)
        steps = np.unique(table["step"][table["anomaly_id"] == a]).size
        out.append((a, f"{steps} steps, {'all' if steps == len(fr) else f'{len(fr)} of them'} shown",
                    Path(path).read_bytes()))
    return out


def job_log(db, job_id: int) -> dict:
    """The job's record as the report shows it: its row's states and times, and per stage its
    chunks, attempts, workers and first start and last end (no spec: the report has it)."""
    row = db.get_job(job_id) or {}
    stages: dict[str, dict] = {}
    for c in db.chunks(job_id):
        st = stages.setdefault(c["stage"], {"chunks": 0, "complete": 0, "attempts": 0, "workers": set(),
                                            "first_start": None, "last_end": None})
        st["chunks"] += 1
        st["complete"] += c["status"] == "complete"
        st["attempts"] += int(c.get("attempts") or 0)
        if c.get("worker"):
            st["workers"].add(c["worker"])
        if c.get("jobStart") and (st["first_start"] is None or c["jobStart"] < st["first_start"]):
            st["first_start"] = c["jobStart"]
        if c.get("jobEnd") and (st["last_end"] is None or c["jobEnd"] > st["last_end"]):
            st["last_end"] = c["jobEnd"]
    for st in stages.values():
        st["workers"] = len(st["workers"])
    keep = ("jobID", "stage", "phdefJobID", "status", "phase", "submitTime", "version", "message")
    return {"job": {k: row.get(k) for k in keep if k in row}, "stages": stages}


def write_report(plan: PhDefPlan, spec: dict, table: dict, n: int, read_ids, files: list[str], log: dict,
                 publish) -> None:
    """``J-report.html`` with ``publish(name, kind, write)``."""
    from tos2ca_batch.outputs.plots import tracks_png
    from tos2ca_batch.outputs.report import write_report as write_html

    job = plan.output_job
    rows, paths = anomaly_rows(plan, table, n)
    lat_e, lon_e, _ = plan.grid.edges()
    anomalies = [{"anomaly_id": r["anomaly_id"], "start": _iso(r["start_date"]), "end": _iso(r["end_date"]),
                  "steps": r["n_steps"], "max_area_px": r["max_area_pixels"], "merges": r["merges"],
                  "splits": r["splits"], "first_tag": r["first_tag"], "last_tag": r["last_tag"]} for r in rows]
    summary = {
        "dataset": plan.dataset,
        "variable": f"{plan.variable} ({plan.units})", "operator": f"{plan.operator} {plan.threshold}"
        + (f", value2 {plan.value2}" if plan.value2 is not None else ""),
        "time range": f"{_iso(plan.timestamps[0])} to {_iso(plan.timestamps[-1])} ({len(plan.timestamps)} steps)",
        "box": f"lon {plan.bbox[0]}..{plan.bbox[2]}, lat {plan.bbox[1]}..{plan.bbox[3]}",
        "grid": f"{plan.layout.height} x {plan.layout.width} cells",
        "anomalies (tracks)": n, "anomaly-steps": int(table["step"].size),
        "tracking": f"connectivity {plan.tracking.connectivity}, min_size {plan.tracking.min_size} px, "
                    f"min_overlap {plan.tracking.min_overlap}",
    }
    meta = {"job": job, "version": plan.version, "software": f"tos2ca-batch {plan.software_version}",
            "dataset": plan.entry.full_name}  # the catalog's description: where the data came from
    with tempfile.TemporaryDirectory() as tmp:
        tracks = None
        if n:
            spans = {r["anomaly_id"]: f"{r['start']} to {r['end']}" for r in anomalies}
            tracks_png(f"{tmp}/tracks.png", paths, (lon_e[0], lat_e[0], lon_e[-1], lat_e[-1]),
                       f"{n} anomalies of {plan.dataset} {plan.variable}", spans)
            tracks = Path(f"{tmp}/tracks.png").read_bytes()
        shown = panels(plan, table, n, read_ids, tmp)
        note = (f"the {len(shown)} largest of {n} anomalies are shown step by step" if n > len(shown) else "")
        publish(f"{job}-report.html", "report", lambda p: write_html(
            p, f"TOS2CA job {job}: {plan.dataset} {plan.variable} {plan.operator} {plan.threshold}", summary,
            meta, spec, tracks, anomalies, shown, [f for f in files if f != f"{job}-report.html"], log, note))
