"""Job identity: job ids repeat (a re-created database, deployments sharing Redis, a bucket or a
store prefix); a job never reports, reuses or overwrites state or files of another job."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from helpers import run_job, write_cube

from tos2ca_batch.config import Config
from tos2ca_batch.stores import codec
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
        "start": "2020-01-01T00:00", "end": "2020-01-01T01:30", "bbox": [0.0, 0.0, 11.0, 9.0],
        "tracking": {"min_size": 2}, "chunking": {"block_steps": 2, "tile": [5, 6]}}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    base = tmp_path_factory.mktemp("identity")
    values = np.random.default_rng(4).uniform(0, 20, (4, 10, 12)).astype(np.float32)
    return write_cube(base / "data", "CUBE", values, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))


def masks_threshold(outputs: list[str]) -> float:
    path = next(o for o in outputs if o.endswith("-ForTraCC-Mask-Output.nc4"))
    with netCDF4.Dataset(path) as ds:
        return float(ds.threshold)


def test_a_new_job_1_after_the_database_was_deleted_gets_its_own_state_and_outputs(cube, tmp_path):
    work = tmp_path / "w"
    cfg1, first = run_job(work, SPEC, cube)
    assert first["status"] == "complete" and first["job_id"] == 1
    old_files = {p: p.read_bytes() for p in (work / "outputs" / "1").iterdir()}
    for f in work.glob("jobs.sqlite*"):  # the obvious reset
        f.unlink()
    cfg2, second = run_job(work, dict(SPEC, value=15.0), cube)
    assert second["job_id"] == 1 and second["status"] == "complete", second["message"]
    assert second["outputs"], "complete with no outputs must be impossible"
    uid = cfg2.db().job_uid(1)
    fresh = work / "outputs" / f"1-{uid[:8]}"
    assert all(Path(o).parent == fresh and Path(o).exists() for o in second["outputs"])
    assert sorted(o["location"] for o in cfg2.db().outputs(1)) == sorted(second["outputs"])
    assert masks_threshold(second["outputs"]) == 15.0 and masks_threshold(first["outputs"]) == 10.0
    assert {p: p.read_bytes() for p in (work / "outputs" / "1").iterdir()} == old_files, "old files untouched"
    assert f"outputs under {fresh}" in second["message"]
    # Each job has its own chunk store; the new one ran every task (nothing skipped).
    assert sorted(p.name for p in (work / "jobs").iterdir()) == sorted([f"1-{cfg1.store(1).identity}",
                                                                         f"1-{uid}"])
    assert all(c["attempts"] == 1 and c["status"] == "complete" for c in cfg2.db().chunks(1))
    # The ids dataset carries the identity of the job that wrote it.
    import xarray as xr

    with xr.open_dataset(next(o for o in second["outputs"] if o.endswith("anomaly-ids.nc4"))) as ds:
        assert ds.attrs["job_uid"] == uid and ds.attrs["threshold"] == 15.0


def test_a_folder_store_lists_its_keys_but_not_writes_in_flight(tmp_path):
    """What ``release`` deletes: every key, nested ones too, sorted; not a write's temp file."""
    from tos2ca_batch.stores.blobs import DirBlobs

    blobs = DirBlobs(tmp_path / "tables")
    assert blobs.keys() == []  # no folder yet
    for key in ("reduce:0:lookup", "map:1:pixels", "map:0:pixels", "sub/map:2:x"):
        blobs.put(key, b"v")
    (tmp_path / "tables" / ".map:3:pixels.tmp").write_bytes(b"half")
    (tmp_path / "tables" / "empty-folder").mkdir()
    assert blobs.keys() == ["map:0:pixels", "map:1:pixels", "reduce:0:lookup", "sub/map:2:x"]
    blobs.delete("sub/map:2:x")
    assert blobs.keys() == ["map:0:pixels", "map:1:pixels", "reduce:0:lookup"]


def test_a_table_is_one_compressed_frame_and_tables_of_earlier_versions_still_decode():
    """The chunk store's tables: every column back with its dtype, shape and values, aligned; the
    columns not stored as they are share one zstd frame; a table an earlier version wrote (one
    frame a column: a job resumed after an upgrade) decodes the same."""
    import struct

    import numcodecs

    table = {"step": np.arange(40, dtype=np.int32), "area": np.arange(40, dtype=np.int64) * 3,
             "empty": np.zeros((0, 3), np.float32), "scalar": np.array(2.5), "flags": np.array([True, False, True]),
             "grid": np.arange(12, dtype=np.int16).reshape(3, 4).T, "chunk": np.frombuffer(b"deflated", np.uint8)}
    data = codec.encode(table, "job-a", stored=("chunk",))
    assert data.count(b"\x28\xb5\x2f\xfd") == 1  # zstd frames (their magic number): one for six columns
    assert codec.identity(data) == "job-a" and data.endswith(b"deflated")  # the stored column as it is
    for blob in (data, codec.encode(table)):
        back = codec.decode(blob)
        assert list(back) == list(table)
        for name, arr in table.items():
            assert back[name].dtype == arr.dtype and back[name].shape == arr.shape, name
            assert np.array_equal(back[name], arr) and back[name].flags.aligned, name
    zstd = numcodecs.Zstd(level=3)
    blobs = {n: (a.tobytes() if n == "chunk" else bytes(zstd.encode(np.ascontiguousarray(a))) if a.size else b"")
             for n, a in table.items() if n != "scalar"}
    header = [{"name": n, "dtype": table[n].dtype.str, "shape": list(table[n].shape), "nbytes": len(b),
               **({"codec": "none"} if n == "chunk" else {})} for n, b in blobs.items()]
    old = json.dumps({"identity": "job-a", "arrays": header}).encode()
    earlier = codec.decode(struct.pack("<I", len(old)) + old + b"".join(blobs.values()))
    for name in blobs:
        assert earlier[name].shape == table[name].shape and np.array_equal(earlier[name], table[name]), name


def test_completed_job_releases_its_scratch(cube, tmp_path):
    cfg, res = run_job(tmp_path / "w", SPEC, cube, reduce_rows=1)  # two time blocks: each keeps its tables
    assert res["status"] == "complete"
    store = cfg.store(res["job_id"])
    root = tmp_path / "w" / "jobs" / f"{res['job_id']}-{store.identity}"
    tables = sorted(p.name for p in (root / "tables").iterdir())
    assert tables == ["job:0:anomalies", "job:0:plan", "plan:0:grid", "reduce:0:components", "reduce:0:events",
                      "reduce:1:components", "reduce:1:events", "sync:0:last", "tables:0:steps"]
    assert store.reduce_blocks() == [(0, 2), (2, 4)]
    assert not (root / "store.zarr" / "scratch").exists()
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.startswith("tmp")], "no temp folders left"
    import xarray as xr

    with xr.open_zarr(store.zarr_store()) as ds:  # the ids stay, and open as before
        assert ds["anomaly_id"].values.any() and "scratch" not in ds


def test_a_task_refuses_a_marker_or_table_of_another_identity(cube, tmp_path, monkeypatch):
    from tos2ca_batch.runner import plan_job, submit
    from tos2ca_batch.tasks import run_task

    monkeypatch.setenv("TOS2CA_CATALOG", str(cube))
    cfg = Config.from_env(str(tmp_path / "w"), [str(cube)])
    job, error = submit(cfg, SPEC, status="running")
    assert error is None
    plan_job(cfg, job)
    store = cfg.store(job)
    other = uuid.uuid4().hex
    # A done marker written by another identity where this job's would be: not trusted, the task runs.
    store.blobs.put("map:0:done", other.encode())
    assert not store.is_done("map", 0)
    assert run_task(cfg, "map", job, 0) == "done"
    assert store.is_done("map", 0)
    # A table of another identity: refused, the job fails naming both identities.
    for c in range(1, len(cfg.db().chunks(job, "map"))):
        assert run_task(cfg, "map", job, c) == "done"
    table = store.get_table("map", 1, "components")
    store.blobs.put("map:1:components", codec.encode(table, other))
    with pytest.raises(RuntimeError, match=f"written by job identity {other}, not by this job"):
        run_task(cfg, "reduce", job, 0)
    row = cfg.db().get_job(job)
    assert row["status"] == "failed" and other in row["message"] and store.identity in row["message"]
    # JSON documents likewise.
    store.blobs.put("job:0:plan", json.dumps({"identity": other, "value": {}}).encode())
    with pytest.raises(RuntimeError, match="written by job identity"):
        store.get_json("plan")


def test_an_output_location_of_another_job_is_never_written(tmp_path):
    from tos2ca_batch.stores.objectstore import claim_output_prefix

    base = str(tmp_path / "outputs" / "7")
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    assert claim_output_prefix(base, a) == base
    assert claim_output_prefix(base, a) == base  # a job resuming keeps its place
    assert claim_output_prefix(base, b) == f"{base}-{b[:8]}"
    legacy = tmp_path / "outputs" / "8"
    legacy.mkdir()
    (legacy / "8-ForTraCC-TOC.json").write_text("[]")  # files without an owner marker (older versions)
    assert claim_output_prefix(str(legacy), a) == f"{legacy}-{a[:8]}"


def test_two_databases_sharing_redis_bucket_and_store_prefix(tmp_path, monkeypatch, mysql_url, redis_namespace,
                                                             bucket):
    """Reproduction 2: a job 1 in a new database while Redis, the bucket and the store prefix still
    hold an earlier deployment's job 1."""
    import boto3

    from tos2ca_batch.stores.mysql import MySQLJobsDB

    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 2, 30), res=2.0)
    spec = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
            "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T02:30", "bbox": [-180, -60, 180, 60],
            "tracking": {"min_size": 5}, "chunking": {"block_steps": 3, "tile": [30, 90]}}
    redis_url, ns, client = redis_namespace
    monkeypatch.setenv("TOS2CA_REDIS_URL", redis_url)
    monkeypatch.setenv("TOS2CA_STORE_URL", f"s3://{bucket}/store")
    monkeypatch.setenv("TOS2CA_OUTPUT_URL", f"s3://{bucket}")
    second_db = f"{mysql_url}_b"
    results = []
    try:
        for url, value in ((mysql_url, 10.0), (second_db, 15.0)):
            monkeypatch.setenv("TOS2CA_DB_URL", url)
            cfg, res = run_job(tmp_path / f"w{value}", dict(spec, value=value), catalog, workers=2)
            assert res["job_id"] == 1 and res["status"] == "complete", res["message"]
            results.append((cfg, res))
        (cfg_a, a), (cfg_b, b) = results
        s3 = boto3.client("s3")
        for cfg, res, value in ((cfg_a, a, 10.0), (cfg_b, b, 15.0)):
            rows = cfg.db().outputs(1)
            assert rows and sorted(r["location"] for r in rows) == sorted(res["outputs"])
            for loc in res["outputs"]:
                s3.head_object(Bucket=bucket, Key=loc.split("/", 3)[3])  # every row's object exists
            masks = next(o for o in res["outputs"] if o.endswith("Mask-Output.nc4"))
            body = s3.get_object(Bucket=bucket, Key=masks.split("/", 3)[3])["Body"].read()
            with netCDF4.Dataset("m.nc4", memory=body) as ds:
                assert float(ds.threshold) == value
        uid_a, uid_b = cfg_a.db().job_uid(1), cfg_b.db().job_uid(1)
        assert uid_a != uid_b
        assert all(o.startswith(f"s3://{bucket}/1/") for o in a["outputs"])
        assert all(o.startswith(f"s3://{bucket}/1-{uid_b[:8]}/") for o in b["outputs"])
        # Redis after both completed: each identity keeps only the documented keys.
        for uid in (uid_a, uid_b):
            keys = {k.decode().split(":", 2)[2] for k in client.scan_iter(f"{ns}:1-{uid}:*", count=1000)}
            assert keys == {"job:0:plan", "plan:0:grid", "reduce:0:components", "job:0:anomalies",
                            "sync:0:last", "reduce:0:events", "tables:0:steps"}
    finally:
        MySQLJobsDB(second_db).drop_database()
