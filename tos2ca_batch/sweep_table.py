"""A sweep's end: the table of its combinations and the heat map, written once every
combination has ended (complete or failed), by whichever process ends the last one.

A sweep on AWS Batch has no process that waits for it: its combinations are chains of Batch
jobs that end on their own (or fail: a Batch job whose dependency failed never runs), so the
job lifecycle calls :func:`finish` each time one of a sweep's combinations ends; the call that
finds every combination ended claims the sweep's ``table`` phase (a conditional UPDATE: of two
last combinations ending at once, one writes) and writes the table. A local sweep calls it too
at its end, which then finds the table written. ``resume S`` takes the sweep over and calls it
again, so a writer that died mid-table is finished.

The rows come from the jobs DB, the combinations' stored tables and, with a truth file, their
scores (``score``); nothing here depends on the order the combinations ended in.
"""

from __future__ import annotations

import csv
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

from tos2ca_batch.config import Config
from tos2ca_batch.kernels.fortracc import MERGE, SPLIT, TAGS
from tos2ca_batch.stores.jobsdb import now_iso

ENDED = ("complete", "failed")


METRICS_WITH_TRUTH = ("pixel_csi", "pixel_pod", "pixel_far", "hits", "misses", "false_alarms", "mota", "idf1",
                      "id_switches", "fragmentations", "merge_recall", "split_recall")
METRICS = ("n_anomalies", "mean_lifetime_steps", "mean_area_px", "max_area_px", "merges", "splits")


def combination_row(cfg: Config, entry: dict, truth: str | None, truth_doc: dict | None = None) -> dict:
    """One combination's row: its settings, job, status, outputs folder and numbers."""
    job = entry["job"]
    row = cfg.db().get_job(job)
    outputs = [o["location"] for o in cfg.db().outputs(job)]
    out = {**entry["settings"], "combination": entry["name"], "job_id": job, "status": row["status"],
           "outputs": str(Path(outputs[0]).parent) if outputs else None}
    if row["status"] != "complete":
        return dict(out, message=row["message"])
    table = cfg.store(job).reduce_table("components")
    ids, counts = np.unique(table["anomaly_id"], return_counts=True)
    out.update(n_anomalies=int(ids.size), mean_lifetime_steps=round(float(counts.mean()), 4) if ids.size else 0.0,
               mean_area_px=round(float(table["area"].mean()), 4) if table["area"].size else 0.0,
               max_area_px=int(table["area"].max()) if table["area"].size else 0,
               merges=int(np.sum(table["tag"] == TAGS.index(MERGE))),
               splits=int(np.sum(table["tag"] == TAGS.index(SPLIT))))
    if truth is not None:
        from tos2ca_batch.score import score_job

        s = score_job(cfg, job, truth, truth=truth_doc)
        events = s.get("events", {})
        out.update(pixel_csi=s["pixels"]["csi"], pixel_pod=s["pixels"]["pod"], pixel_far=s["pixels"]["far"],
                   **{k: s["objects"][k] for k in ("hits", "misses", "false_alarms")},
                   **{k: s["tracking"][k] for k in ("mota", "idf1", "id_switches", "fragmentations")},
                   merge_recall=(events.get("merge") or {}).get("recall"),
                   split_recall=(events.get("split") or {}).get("recall"))
    return out


def write_table(cfg: Config, sweep_id: int, prefix: str, grid: dict[str, list], rows: list[dict],
           scored: bool) -> list[str]:
    """``S-sweep.csv``, ``S-sweep.json`` and ``S-sweep.png`` under the sweep's folder (recorded)."""
    outputs = cfg.outputs(sweep_id, prefix)
    columns = [*grid, "combination", "job_id", "status", *(METRICS_WITH_TRUTH if scored else ()), *METRICS,
               "outputs"]
    written = []
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        paths = {name: Path(tmp) / f"{sweep_id}-sweep.{name}" for name in ("csv", "json", "png")}
        with open(paths["csv"], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        paths["json"].write_text(json.dumps({"sweep_id": sweep_id, "grid": grid, "rows": rows}, indent=1))
        heat_map(rows, grid, ("pixel_csi", "idf1") if scored else ("n_anomalies", "mean_lifetime_steps"),
                 paths["png"], f"sweep {sweep_id}")
        for kind, path in paths.items():
            location = outputs.put(path, path.name)
            cfg.db().add_output(sweep_id, location, f"sweep-{kind}", now_iso())
            written.append(location)
    return written


def heat_map(rows: list[dict], grid: dict[str, list], metrics: tuple[str, ...], path: Path, title: str) -> None:
    """Each of ``metrics`` (a row of panels) over the last two swept settings (cells), one panel
    per value of the others, each cell labelled with its value; failed combinations are blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(grid)
    x_key = keys[-1]
    y_key = keys[-2] if len(keys) > 1 else None
    panel_keys = keys[:-2]
    panels = list(itertools.product(*(grid[k] for k in panel_keys))) or [()]
    ys = grid[y_key] if y_key else [None]
    width = 1.6 + (0.8 * len(grid[x_key]) + 0.9) * len(panels)
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(width, 0.6 + (1.2 + 0.45 * len(ys)) * len(metrics)),
                             squeeze=False, dpi=100, layout="constrained")
    for m, metric in enumerate(metrics):
        values = [r[metric] for r in rows if r.get(metric) is not None]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1
        image = None
        for p, panel in enumerate(panels):
            ax = axes[m][p]
            cells = np.full((len(ys), len(grid[x_key])), np.nan)
            for r in rows:
                if all(r[k] == v for k, v in zip(panel_keys, panel)) and r.get(metric) is not None:
                    cells[ys.index(r[y_key]) if y_key else 0, grid[x_key].index(r[x_key])] = r[metric]
            image = ax.imshow(cells, cmap="viridis", vmin=lo, vmax=hi, aspect="auto", origin="lower")
            for (i, j), v in np.ndenumerate(cells):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                            color="white" if v < (lo + hi) / 2 else "black")
            ax.set_xticks(range(len(grid[x_key])), [str(v) for v in grid[x_key]], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(v) for v in ys] if y_key else [""], fontsize=8)
            if m == len(metrics) - 1:
                ax.set_xlabel(x_key, fontsize=8)
            if p == 0 and y_key:
                ax.set_ylabel(y_key, fontsize=8)
            ax.set_title(", ".join(f"{k}={v}" for k, v in zip(panel_keys, panel)) or metric, fontsize=9)
        fig.colorbar(image, ax=list(axes[m]), shrink=0.9, label=metric)
    fig.suptitle(f"{title}: {', '.join(metrics)}", fontsize=10)
    fig.savefig(path)
    plt.close(fig)


def finish(cfg: Config, sweep_id: int) -> dict | None:
    """End the sweep if every combination has ended: write its table and heat map, then mark it
    ``complete`` (every combination complete) or ``failed``. Returns its end (status, message,
    rows, outputs), also when it had ended before; None while a combination runs, while the sweep
    is not running (cancelled: ``resume`` finishes it) or while another process writes it."""
    db = cfg.db()
    store = cfg.store(sweep_id)
    row = db.get_job(sweep_id)
    if row["status"] in ENDED and store.has_json("table"):
        return dict(store.get_json("table"), status=row["status"], message=row["message"])
    manifest = store.get_json("sweep") if store.has_json("sweep") else None
    if row["status"] != "running" or manifest is None:
        return None
    entries = manifest["combinations"]
    if any(db.get_job(e["job"])["status"] not in ENDED for e in entries):
        return None
    if not db.claim_phase(sweep_id, "table"):
        return None
    truth = store.get_json("truth") if store.has_json("truth") else None  # the file may be on another machine
    rows = [combination_row(cfg, e, manifest["truth"], truth) for e in entries]
    outputs = write_table(cfg, sweep_id, manifest["prefix"], manifest["grid"], rows, manifest["truth"] is not None)
    store.put_json("table", {"rows": rows, "outputs": outputs})
    done = sum(r["status"] == "complete" for r in rows)
    status = "complete" if done == len(rows) else "failed"
    message = f"{done} of {len(rows)} combinations complete; outputs under {manifest['prefix']}"
    if status == "failed":
        message += "; finish the failed ones with: tos2ca-batch resume " + str(sweep_id)
    db.transition(sweep_id, status, ("running",), phase="done", message=message, leaseUntil=None)
    return {"rows": rows, "outputs": outputs, "status": status, "message": message}
