"""Production services against real servers: MariaDB, Redis, S3/Secrets Manager/SES (moto_server
over HTTP) and SMTP (aiosmtpd), all on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import boto3
import pytest
import xarray as xr
from helpers import assert_same_outputs, local_outputs, run_job

from tos2ca_batch.config import Config
from tos2ca_batch.synth import synthesize

START, END = datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30)
SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 20}, "chunking": {"block_steps": 4, "tile": [60, 180]}}


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    base = tmp_path_factory.mktemp("svc-data")
    return base, synthesize("imerg", base, START, END, res=1.0)


def upload_data(base: Path, catalog: Path, bucket: str, tmp: Path) -> Path:
    """Copy the synthetic files to S3 and write a catalog whose location is s3://."""
    s3 = boto3.client("s3")
    for path in (base / "imerg").rglob("*.HDF5"):
        s3.upload_file(str(path), bucket, f"data/{path.relative_to(base)}")
    entries = json.loads(catalog.read_text())
    for entry in entries.values():
        entry["location"] = f"s3://{bucket}/data/{entry['location']}"
    out = tmp / "s3-catalog.json"
    out.write_text(json.dumps(entries))
    return out


def production_env(monkeypatch, mysql_url, redis_url, bucket) -> None:
    monkeypatch.setenv("TOS2CA_DB_URL", mysql_url)
    monkeypatch.setenv("TOS2CA_REDIS_URL", redis_url)
    monkeypatch.setenv("TOS2CA_STORE_URL", f"s3://{bucket}/store")
    monkeypatch.setenv("TOS2CA_OUTPUT_URL", f"s3://{bucket}")


def test_production_services_give_identical_outputs(local_data, tmp_path, monkeypatch, mysql_url,
                                                    redis_namespace, bucket):
    base, catalog = local_data
    cfg_a, embedded = run_job(tmp_path / "embedded", SPEC, catalog, workers=2)
    assert embedded["status"] == "complete", embedded["message"]

    redis_url, ns, client = redis_namespace
    s3_catalog = upload_data(base, catalog, bucket, tmp_path)
    production_env(monkeypatch, mysql_url, redis_url, bucket)
    monkeypatch.setenv("TOS2CA_REDIS_PART_BYTES", "300")  # exercise values split into parts
    monkeypatch.setenv("TOS2CA_REDIS_TTL", "3600")
    cfg_b, prod = run_job(tmp_path / "prod", dict(SPEC, chunking={"block_steps": 5, "tile": [40, 100]}),
                          s3_catalog, workers=2)
    assert prod["status"] == "complete", prod["message"]
    assert cfg_b.db().describe().startswith("mysql://")

    # Every output is on S3, has its row, and holds the same data as the embedded run.
    assert prod["outputs"] and all(o.startswith(f"s3://{bucket}/{prod['job_id']}/") for o in prod["outputs"])
    db = cfg_b.db()
    assert sorted(o["location"] for o in db.outputs(prod["job_id"])) == sorted(prod["outputs"])
    assert db.get_job(prod["job_id"])["status"] == "complete"
    assert all(c["status"] == "complete" for c in db.chunks(prod["job_id"]))
    assert_same_outputs(local_outputs(embedded, tmp_path), local_outputs(prod, tmp_path))

    # Tables went through Redis (with TTL, split into parts; after completion only what curation and
    # sync read is left), ids to durable Zarr on S3 (no tables there).
    key = f"{prod['job_id']}-{db.job_uid(prod['job_id'])}"
    keys = [k.decode() for k in client.scan_iter(f"{ns}:{key}:*", count=1000)]
    assert {k.split(":", 2)[2].split(":part")[0] for k in keys} == {
        "job:0:plan", "plan:0:grid", "reduce:0:components", "job:0:anomalies", "sync:0:last",
        "reduce:0:events", "tables:0:steps"}
    assert any(":part" in k for k in keys)
    assert 0 < client.ttl(f"{ns}:{key}:reduce:0:components") <= 3600
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"store/{key}/")["Contents"]
    assert any(o["Key"].endswith("store.zarr/anomaly_id/zarr.json") for o in listed)
    assert not any("/tables/" in o["Key"] or "/scratch/" in o["Key"] for o in listed)
    ids_b = xr.open_zarr(cfg_b.store(prod["job_id"]).zarr_store())["anomaly_id"].values
    ids_a = xr.open_zarr(cfg_a.store(embedded["job_id"]).zarr_store())["anomaly_id"].values
    assert ids_a.tobytes() == ids_b.tobytes() and ids_a.any()


def test_secret_values_never_leak(local_data, tmp_path, monkeypatch, mysql_user, redis_namespace, bucket,
                                  smtp_server):
    """DB/Redis/bucket come from a Secrets Manager secret; its password shows up nowhere."""
    base, catalog = local_data
    redis_url, ns, _ = redis_namespace
    user, password, dbname = mysql_user
    secret = {"username": user, "password": password, "host": "127.0.0.1", "port": 3306, "db": dbname,
              "rhost": "127.0.0.1", "rport": 6379, "bucket": bucket}
    sid = f"tos2ca/test/{uuid.uuid4().hex[:6]}"
    boto3.client("secretsmanager").create_secret(Name=sid, SecretString=json.dumps(secret))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, email="scientist@example.org")))
    smtp_url, received = smtp_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOS2CA_")}
    env.update(TOS2CA_SECRET_ID=sid, TOS2CA_REDIS_PREFIX=ns, TOS2CA_SMTP_URL=smtp_url)
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "-v", "run", str(spec), "--catalog",
                        str(catalog), "--workdir", str(tmp_path / "w"), "--workers", "2"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["outputs"][0].startswith(f"s3://{bucket}/")
    # A failing job (wrong port in an override) must not print the password either.
    bad = subprocess.run([sys.executable, "-m", "tos2ca_batch", "run", str(spec), "--catalog", str(catalog),
                          "--workdir", str(tmp_path / "w2")], capture_output=True, text=True, timeout=300,
                         env=dict(env, TOS2CA_DB_URL=f"mysql://{user}:{password}x@127.0.0.1:1/{dbname}"))
    assert bad.returncode != 0
    monkeypatch.setenv("TOS2CA_SECRET_ID", sid)
    cfg = Config.from_env(str(tmp_path / "w"))
    haystack = [p.stdout, p.stderr, bad.stdout, bad.stderr, repr(cfg), json.dumps(cfg.describe())]
    db = cfg.db()
    haystack += [json.dumps(r, default=str) for r in db.query("SELECT * FROM jobs")]
    haystack += [json.dumps(r, default=str) for r in db.query("SELECT * FROM chunks")]
    haystack += [m["data"] for m in received]
    for path in local_outputs(res, tmp_path).values():
        haystack.append(path.read_bytes().decode("latin-1"))
    assert len(haystack) > 10 and not [h for h in haystack if password in h]


def test_email_names_job_and_outputs(local_data, tmp_path, monkeypatch, smtp_server):
    base, catalog = local_data
    smtp_url, received = smtp_server
    monkeypatch.setenv("TOS2CA_SMTP_URL", smtp_url)
    cfg, res = run_job(tmp_path / "w", dict(SPEC, email="scientist@example.org"), catalog,
                       products=["masks", "toc"])
    assert res["status"] == "complete"
    assert len(received) == 1 and received[0]["to"] == ["scientist@example.org"]
    msg = received[0]["data"]
    assert f"Subject: TOS2CA job {res['job_id']} complete" in msg
    assert str(cfg.outputs(res["job_id"]).prefix) in msg and "ForTraCC-Mask-Output.nc4" in msg
    cfg, bad = run_job(tmp_path / "w", dict(SPEC, email="scientist@example.org", operator="bigger"), catalog)
    assert bad["status"] == "failed" and len(received) == 2
    assert f"TOS2CA job {bad['job_id']} failed" in received[1]["data"] and "operator:" in received[1]["data"]


def test_email_by_ses(local_data, tmp_path, monkeypatch, aws):
    base, catalog = local_data
    ses = boto3.client("ses")
    ses.verify_email_identity(EmailAddress="tos2ca@example.org")
    monkeypatch.setenv("TOS2CA_SES_SENDER", "tos2ca@example.org")
    before = ses.get_send_quota()["SentLast24Hours"]
    _, res = run_job(tmp_path / "w", dict(SPEC, email="scientist@example.org"), catalog, products=["toc"])
    assert res["status"] == "complete"
    assert ses.get_send_quota()["SentLast24Hours"] == before + 1


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "tos2ca_batch", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_two_workers_three_jobs_each_runs_once(local_data, tmp_path, mysql_url):
    base, catalog = local_data
    env = dict(os.environ, TOS2CA_DB_URL=mysql_url, TOS2CA_CATALOG=str(catalog))
    spec = tmp_path / "spec.json"
    ids = []
    for k in range(3):
        spec.write_text(json.dumps(dict(SPEC, value=10.0 + k)))
        p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "submit", str(spec), "--workdir",
                            str(tmp_path / "w")], env=env, capture_output=True, text=True, timeout=120)
        ids.append(json.loads(p.stdout.splitlines()[-1])["job_id"])
    workers = [_cli(["worker", "--once", "--workers", "1", "--workdir", str(tmp_path / "w")], env)
               for _ in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outs]
    ran = [json.loads(line)["job_id"] for out, _ in outs for line in out.strip().splitlines() if line]
    assert sorted(ran) == sorted(ids), "each job ran exactly once"
    cfg = Config.from_env(str(tmp_path / "w"))
    cfg.db_url = mysql_url
    db = cfg.db()
    for j in ids:
        assert db.get_job(j)["status"] == "complete"
        assert all(c["attempts"] == 1 and c["status"] == "complete" for c in db.chunks(j))


def test_killed_worker_job_finished_by_another(local_data, tmp_path, mysql_url):
    base, catalog = local_data
    # An uninterrupted run to compare with.
    _, ref = run_job(tmp_path / "ref", dict(SPEC, chunking={"block_steps": 1, "tile": [120, 360]}), catalog)
    env = dict(os.environ, TOS2CA_DB_URL=mysql_url, TOS2CA_CATALOG=str(catalog), TOS2CA_LEASE_SECONDS="4")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, chunking={"block_steps": 1, "tile": [120, 360]})))
    work = str(tmp_path / "w")
    subprocess.run([sys.executable, "-m", "tos2ca_batch", "submit", str(spec), "--workdir", work], env=env,
                   check=True, capture_output=True, timeout=120)
    first = _cli(["worker", "--once", "--workers", "1", "--workdir", work], env, start_new_session=True)
    cfg = Config.from_env(work)
    cfg.db_url = mysql_url
    db = cfg.db()
    deadline = time.time() + 120
    held: list[int] = []
    while not held and time.time() < deadline:
        rows = db.chunks(1, "map")
        if any(r["status"] == "complete" for r in rows) and any(r["status"] == "running" for r in rows):
            # Freeze the worker's whole group, then look: a chunk it holds now is held when it dies
            # (a fast worker may have finished the chunk seen running a moment ago).
            os.killpg(first.pid, signal.SIGSTOP)
            held = [r["chunkID"] for r in db.chunks(1, "map") if r["status"] == "running"]
            if not held:
                os.killpg(first.pid, signal.SIGCONT)
        time.sleep(0.02)
    if not held:
        pytest.fail("the first worker never held a chunk in the middle of the map stage")
    # The worker first (so it cannot see its pool break and record a failure), then its pool: as a
    # reclaimed instance loses them.
    os.kill(first.pid, signal.SIGKILL)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    assert db.get_job(1)["status"] == "running"
    while db.get_job(1)["leaseUntil"] > time.time():  # nobody renews it any more
        time.sleep(0.2)
    second = _cli(["worker", "--once", "--workers", "1", "--workdir", work], env)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["job_id"] == 1 and res["status"] == "complete"
    attempts = {c["chunkID"]: c["attempts"] for c in db.chunks(1, "map")}
    assert all(attempts[c] == 2 for c in held), (held, attempts)
    assert_same_outputs(local_outputs(ref, tmp_path), local_outputs(res, tmp_path))


def test_injection_with_mysql(local_data, tmp_path, monkeypatch, mysql_url):
    _, catalog = local_data
    monkeypatch.setenv("TOS2CA_DB_URL", mysql_url)
    name = "x'); DROP TABLE jobs;--"
    cfg, res = run_job(tmp_path / "w", dict(SPEC, dataset=name, variable="a'b"), catalog)
    assert res["status"] == "failed" and res["message"].startswith("dataset:")
    db = cfg.db()
    assert db.get_job(res["job_id"])["dataset"] == name and db.get_job(res["job_id"])["variable"] == "a'b"
    assert {r["n"] for r in db.query("SELECT COUNT(*) AS n FROM jobs")} == {1}


def test_a_failed_chunk_sends_one_email(local_data, tmp_path, monkeypatch, smtp_server):
    import shutil

    base, catalog = local_data
    broken = tmp_path / "data"
    shutil.copytree(base, broken)
    sorted(broken.rglob("*.HDF5"))[3].write_bytes(b"not HDF5")
    smtp_url, received = smtp_server
    monkeypatch.setenv("TOS2CA_SMTP_URL", smtp_url)
    cfg, res = run_job(tmp_path / "w", dict(SPEC, email="scientist@example.org"), broken / "catalog-imerg.json")
    assert res["status"] == "failed" and res["message"].startswith("map chunk 0: ")
    assert len(received) == 1 and f"TOS2CA job {res['job_id']} failed" in received[0]["data"]
