"""Score a complete PhDef job against a truth file (``tos2ca-batch score J --truth T``).

The truth's pixels (on the files' grid) are taken onto the job grid; the job's anomalies are its
ids, step by step, and its merges and splits its ForTraCC tags (``continuation - merge`` of the
anomaly merged into, ``continuation - split`` of the one split from). The numbers are
``kernels.scores``; this module only reads and writes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tos2ca_batch.config import Config
from tos2ca_batch.kernels.fortracc import MERGE, SPLIT, TAGS
from tos2ca_batch.kernels.scores import Frame, score
from tos2ca_batch.plans import load_plan


def _truth_frames(truth: dict, plan) -> list[Frame]:
    """The truth of each job step on the job grid (pixels outside the job's box dropped)."""
    n_lat, n_lon = truth["grid"]
    row_of = np.full(n_lat, -1, np.int64)
    col_of = np.full(n_lon, -1, np.int64)
    row_of[plan.grid.src_rows] = np.arange(plan.grid.src_rows.size)
    col_of[plan.grid.src_cols] = np.arange(plan.grid.src_cols.size)
    width = plan.grid.src_cols.size
    by_time = {s["time"]: s["features"] for s in truth["steps"]}
    frames = []
    for ts in plan.timestamps:
        index, ids = [], []
        for feature, pixels in by_time.get(ts, {}).items():
            flat = np.asarray(pixels, np.int64)
            r, c = row_of[flat // n_lon], col_of[flat % n_lon]
            keep = (r >= 0) & (c >= 0)
            index.append(r[keep] * width + c[keep])
            ids.append(np.full(int(keep.sum()), int(feature), np.int32))
        index_a = np.concatenate(index) if index else np.zeros(0, np.int64)
        ids_a = np.concatenate(ids) if ids else np.zeros(0, np.int32)
        order = np.argsort(index_a, kind="stable")
        frames.append(Frame(index_a[order], ids_a[order]))
    return frames


def score_job(cfg: Config, job_id: int, truth_path: str | Path, iou_threshold: float = 0.5,
              truth: dict | None = None) -> dict:
    """Score job ``job_id`` against the truth file ``truth_path`` (or its document ``truth``,
    already read: a sweep keeps it in its store for tasks that cannot see the file)."""
    row = cfg.db().get_job(job_id)
    if row is None or row["stage"] != "phdef" or row["status"] != "complete":
        raise ValueError(f"job {job_id} must be a complete PhDef job to be scored")
    if truth is None:
        truth = json.loads(Path(truth_path).read_text())
    store = cfg.store(job_id)
    plan = load_plan(store)
    if truth.get("dataset") not in (plan.dataset, None):
        raise ValueError(f"the truth is of {truth['dataset']}, job {job_id} of {plan.dataset}")
    detected = []
    for s in range(len(plan.timestamps)):
        ids = store.read_ids(s).ravel()
        index = np.flatnonzero(ids)
        detected.append(Frame(index, ids[index]))
    table = store.reduce_table("components")
    kinds = {TAGS.index(MERGE): "merge", TAGS.index(SPLIT): "split"}
    detected_events = [(kinds[int(t)], int(s), int(a)) for t, s, a in
                       zip(table["tag"], table["step"], table["anomaly_id"]) if int(t) in kinds]
    step_of = {ts: k for k, ts in enumerate(plan.timestamps)}
    truth_events = [(e["kind"], step_of[e["time"]], int(e["feature"])) for e in truth.get("events", [])
                    if e["time"] in step_of]
    result = score(_truth_frames(truth, plan), detected, iou_threshold, truth_events, detected_events)
    for row_ in result["per_step"]:
        row_["time"] = plan.timestamps[row_["step"]]
    return {"job_id": job_id, "truth": str(truth_path), "iou_threshold": iou_threshold, **result}


def write_scores(result: dict, out: Path) -> list[str]:
    """``J-scores.json`` (everything), ``J-scores.csv`` (per step) and ``J-scores.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    job = result["job_id"]
    paths = [out / f"{job}-scores.json", out / f"{job}-scores.csv", out / f"{job}-scores.png"]
    paths[0].write_text(json.dumps(result, indent=1))
    with open(paths[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["time", "step", "hits", "misses", "false_alarms", "csi"])
        w.writeheader()
        w.writerows(result["per_step"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["per_step"]
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=100)
    steps = [r["step"] for r in rows]
    ax.bar(steps, [r["hits"] for r in rows], label="hits", color="tab:green")
    ax.bar(steps, [r["misses"] for r in rows], bottom=[r["hits"] for r in rows], label="misses", color="tab:red")
    ax.bar(steps, [r["false_alarms"] for r in rows], bottom=[r["hits"] + r["misses"] for r in rows],
           label="false alarms", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("objects")
    csi = [np.nan if r["csi"] is None else r["csi"] for r in rows]
    ax2 = ax.twinx()
    ax2.plot(steps, csi, "k.-", label="object CSI")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("CSI")
    t = result["tracking"]
    ax.set_title(f"job {job}: pixel CSI {result['pixels']['csi'] or 0:.2f}, MOTA {t['mota'] or 0:.2f}, "
                 f"IDF1 {t['idf1'] or 0:.2f}, {t['id_switches']} id switches")
    top = max([r["hits"] + r["misses"] + r["false_alarms"] for r in rows] or [1])
    ax.set_ylim(0, top * 1.35)  # room for the legend above the bars
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(paths[2])
    plt.close(fig)
    return [str(p) for p in paths]
