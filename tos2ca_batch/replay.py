"""Replay a spec's range as a stream: as if its data arrived N steps at a time.

The first batch is a normal job, every later one a sync of it; each batch reports its latency
and the anomalies it added and ended. At the end a one-shot job runs over the whole range and
the two jobs' outputs are compared: the batch-versus-stream answer users ask for, checked.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from tos2ca_batch.backends import Backend
from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.outputs.compare import differences
from tos2ca_batch.runner import run
from tos2ca_batch.spec import validate
from tos2ca_batch.sync import sync_job
from tos2ca_batch.timeutil import axis


def job_files(cfg: Config, job_id: int, tmp: Path) -> dict[str, Path]:
    """A job's outputs by name (its id prefix as ``J-``), ``s3://`` ones downloaded into ``tmp``."""
    return files_by_name(job_id, [row["location"] for row in cfg.db().outputs(job_id)], tmp)


def files_by_name(job_id: int, locations: list[str], tmp: Path) -> dict[str, Path]:
    """Output ``locations`` of a job by name (its id prefix as ``J-``), ``s3://`` ones downloaded."""
    from tos2ca_batch.stores.objectstore import read_bytes

    out = {}
    for loc in locations:
        name = Path(loc).name.replace(f"{job_id}-", "J-", 1)
        if loc.startswith("s3://"):
            path = tmp / f"{job_id}-{name}"
            path.write_bytes(read_bytes(loc))
            out[name] = path
        else:
            out[name] = Path(loc)
    return out


def replay(cfg: Config, raw: dict, batch_steps: int, backend: Backend, report=print) -> dict:
    """Run ``raw``'s range in batches of ``batch_steps`` steps, then one-shot; compare."""
    import tempfile

    if batch_steps < 1:
        raise SpecError("batch_steps", f"must be at least 1, got {batch_steps}")
    spec = validate({k: v for k, v in raw.items() if k != "products"}, cfg.catalog())
    if spec.stage != "phdef":
        raise SpecError("stage", "only a PhDef job is replayed")
    entry = cfg.catalog()[spec.dataset]
    times = axis(entry.first, entry.time_step, max(spec.start, entry.first), min(spec.end, entry.last))
    if not times:
        raise SpecError("start", f"no time steps of {spec.dataset} in the spec's range")
    batches = [times[k:k + batch_steps] for k in range(0, len(times), batch_steps)]
    rows = []

    def iso(t: datetime) -> str:
        return f"{t:%Y-%m-%dT%H:%M}"

    t0 = time.perf_counter()
    first = run(cfg, dict(raw, end=iso(batches[0][-1])), backend)
    job = first["job_id"]
    if first["status"] != "complete":
        return {"job_id": job, "same": False, "batches": rows, "message": f"the first batch {first['status']}: "
                                                                          f"{first['message']}"}
    n = cfg.store(job).get_json("anomalies")["n_anomalies"]
    rows.append({"batch": 1, "through": iso(batches[0][-1]), "steps": len(batches[0]),
                 "latency_s": round(time.perf_counter() - t0, 3), "added": n, "ended": None})
    report(_line(rows[-1]))
    for k, batch in enumerate(batches[1:], start=2):
        t0 = time.perf_counter()
        res = sync_job(cfg, job, backend, until=batch[-1])
        if res["sync"] != "synced":
            return {"job_id": job, "same": False, "batches": rows, "message": f"batch {k}: {res['message']}"}
        rows.append({"batch": k, "through": iso(batch[-1]), "steps": res["new_steps"],
                     "latency_s": round(time.perf_counter() - t0, 3), "added": res["added"], "ended": res["ended"]})
        report(_line(rows[-1]))
    t0 = time.perf_counter()
    one = run(cfg, raw, backend)
    one_shot_s = round(time.perf_counter() - t0, 3)
    if one["status"] != "complete":
        return {"job_id": job, "one_shot": one["job_id"], "same": False, "batches": rows,
                "message": f"the one-shot job {one['status']}: {one['message']}"}
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
        diff = differences(job_files(cfg, job, Path(tmp)), job_files(cfg, one["job_id"], Path(tmp)), job,
                           one["job_id"])
    streamed = sum(r["latency_s"] for r in rows)
    report(f"streamed in {len(rows)} batches: {streamed:.2f} s in all; one-shot job {one['job_id']}: "
           f"{one_shot_s:.2f} s; " + ("outputs identical" if not diff else f"outputs DIFFER: {', '.join(diff[:5])}"))
    return {"job_id": job, "one_shot": one["job_id"], "same": not diff, "differences": diff, "batches": rows,
            "streamed_s": round(streamed, 3), "one_shot_s": one_shot_s}


def _line(row: dict) -> str:
    ended = "" if row["ended"] is None else f", {row['ended']} ended"
    return (f"batch {row['batch']}: {row['steps']} steps through {row['through']} in {row['latency_s']:.2f} s: "
            f"{row['added']} anomalies added{ended}")
