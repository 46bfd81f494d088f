"""AWS Batch backend against moto_server (Batch with use_docker off): register, submit, read back
with describe_jobs, and every child run as a real process with AWS_BATCH_JOB_ARRAY_INDEX."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from datetime import datetime

import boto3
import pytest
from helpers import assert_same_outputs, local_outputs, run_job

from tos2ca_batch.config import Config
from tos2ca_batch.synth import synthesize

SPEC = {"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T05:30", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 20}, "chunking": {"block_steps": 4, "tile": [60, 180]}}


def cli(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def batch_setup(aws, bucket, mysql_user, tmp_path):
    req = urllib.request.Request(f"{aws}/moto-api/config", data=json.dumps({"batch": {"use_docker": False}}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    tag = uuid.uuid4().hex[:6]
    role = iam.create_role(RoleName=f"tos2ca-{tag}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName=f"tos2ca-{tag}")["InstanceProfile"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"tos2ca-{tag}", Description="batch", VpcId=vpc)["GroupId"]
    user, password, dbname = mysql_user
    sid = f"tos2ca/batch/{tag}"
    boto3.client("secretsmanager").create_secret(Name=sid, SecretString=json.dumps(
        {"username": user, "password": password, "host": "127.0.0.1", "port": 3306, "db": dbname, "bucket": bucket}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOS2CA_")}
    env.update(TOS2CA_SECRET_ID=sid, TOS2CA_STORE_URL=f"s3://{bucket}/store")
    return {"tag": tag, "role": role, "profile": profile, "subnet": subnet, "sg": sg, "sid": sid,
            "password": password, "env": env, "bucket": bucket}


def register(setup, platform):
    return cli(["aws", "register", "--platform", platform, "--image", "example.org/tos2ca-batch:1",
                "--subnets", setup["subnet"], "--security-groups", setup["sg"], "--service-role-arn", setup["role"],
                "--execution-role-arn", setup["role"], "--job-role-arn", setup["role"], "--instance-role-arn",
                setup["profile"], "--secret-id", setup["sid"], "--store-url", f"s3://{setup['bucket']}/store",
                "--name-prefix", f"t2c-{setup['tag']}"], setup["env"])


def register_and_submit(setup, tmp_path, data_end: datetime, res: float, **spec) -> tuple[dict, dict, str]:
    """Register the EC2 manifests, write IMERG-layout files to ``data_end`` and ``aws submit`` the
    test spec with ``spec``'s changes; returns the registration, the submission and the client's
    work dir."""
    p = register(setup, "ec2")
    assert p.returncode == 0, p.stderr[-2000:]
    reg = json.loads(p.stdout.strip().splitlines()[-1])
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), data_end, res=res)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(dict(SPEC, **spec)))
    work = str(tmp_path / "client")
    p = cli(["aws", "submit", str(path), "--catalog", str(catalog), "--workdir", work,
             "--queue", reg["jobQueueArn"], "--job-definition", reg["jobDefinitionName"]], setup["env"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return reg, json.loads(p.stdout.strip().splitlines()[-1]), work


def test_register_submit_and_run_children(batch_setup, tmp_path, monkeypatch):
    setup = batch_setup
    env = setup["env"]
    for platform in ("fargate", "ec2"):
        p = register(setup, platform)
        assert p.returncode == 0, p.stderr[-2000:]
    reg = json.loads(p.stdout.strip().splitlines()[-1])
    batch = boto3.client("batch")
    jd = batch.describe_job_definitions(jobDefinitionName=f"t2c-{setup['tag']}-fargate")["jobDefinitions"][0]
    assert jd["platformCapabilities"] == ["FARGATE"] and jd["retryStrategy"]["attempts"] == 3
    assert jd["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    assert {r["type"] for r in jd["containerProperties"]["resourceRequirements"]} == {"VCPU", "MEMORY"}

    data = tmp_path / "data"
    catalog = synthesize("imerg", data, datetime(2020, 1, 4), datetime(2020, 1, 4, 5, 30), res=1.0)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    p = cli(["aws", "submit", str(spec), "--catalog", str(catalog), "--workdir", str(tmp_path / "client"),
             "--queue", reg["jobQueueArn"], "--job-definition", reg["jobDefinitionName"]], env)
    assert p.returncode == 0, p.stderr[-3000:]
    sub = json.loads(p.stdout.strip().splitlines()[-1])
    job = sub["job_id"]

    # Read back what AWS Batch holds.
    ids = sub["aws_jobs"]
    described = {j["jobName"]: j for j in batch.describe_jobs(jobs=list(ids.values()))["jobs"]}
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(str(tmp_path / "client")).db()
    stages = ["map", "reduce", "relabel", "publish", "finalize"]
    assert list(ids) == stages
    # publish reads the map and reduce, not relabel's ids: both wait for reduce; finalize for both
    waits_for = {"map": [], "reduce": ["map"], "relabel": ["reduce"], "publish": ["reduce"],
                 "finalize": ["relabel", "publish"]}
    for stage in stages:
        d = described[f"tos2ca-{job}-{stage}"]
        n = len(db.chunks(job, stage))
        assert d.get("arrayProperties", {}).get("size", 1) == n, stage
        assert ("arrayProperties" in d) == (n > 1)
        assert d["container"]["command"] == ["task", stage, "--job", str(job)]
        assert sorted(x["jobId"] for x in d.get("dependsOn", [])) == sorted(
            described[f"tos2ca-{job}-{before}"]["jobId"] for before in waits_for[stage]), stage
    assert setup["password"] not in json.dumps(described, default=str)
    assert setup["password"] not in p.stdout + p.stderr

    # Every child as its own process, array indices shuffled, one child run twice at once.
    child_env = dict(env)
    for var in jd["containerProperties"]["environment"]:
        child_env[var["name"]] = var["value"]
    child_env["TOS2CA_WORKDIR"] = str(tmp_path / "child")
    rng = random.Random(7)
    for stage in stages:
        d = described[f"tos2ca-{job}-{stage}"]
        size = d.get("arrayProperties", {}).get("size")
        indices = list(range(size)) if size else [None]
        rng.shuffle(indices)
        procs = []
        for k, idx in enumerate(indices):
            e = dict(child_env)
            if idx is not None:
                e["AWS_BATCH_JOB_ARRAY_INDEX"] = str(idx)
            copies = 2 if k == 0 and stage == "map" else 1
            for _ in range(copies):
                procs.append(subprocess.Popen([sys.executable, "-m", "tos2ca_batch", *d["container"]["command"]],
                                              env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for pr in procs:
            out, err = pr.communicate(timeout=300)
            state = json.loads(out.strip().splitlines()[-1])["state"] if out.strip() else None
            # the copy that found its twin holding the chunk says busy and exits 75, never 0
            assert (pr.returncode, state) in ((0, "done"), (0, "skipped"), (75, "busy")), err[-3000:]
    row = db.get_job(job)
    assert row["status"] == "complete", row["message"]
    status = cli(["aws", "status", str(job), "--workdir", str(tmp_path / "client")], dict(env))
    st = json.loads(status.stdout.strip().splitlines()[-1])
    assert st["status"] == "complete" and st["stages"]["map"]["chunks"] == {"complete": len(db.chunks(job, "map"))}
    assert st["stages"]["map"]["arraySize"] == len(db.chunks(job, "map"))

    outputs = [o["location"] for o in db.outputs(job)]
    _, local = run_job(tmp_path / "local", SPEC, catalog, workers=2)
    assert_same_outputs(local_outputs(local, tmp_path), local_outputs({"job_id": job, "outputs": outputs}, tmp_path))


def test_aws_cancel_terminates_the_batch_jobs_and_children_stop(batch_setup, tmp_path, monkeypatch):
    setup = batch_setup
    env = setup["env"]
    _, sub, work = register_and_submit(setup, tmp_path, datetime(2020, 1, 4, 1, 30), 2.0,
                                       end="2020-01-04T01:30", chunking={"block_steps": 2})
    p = cli(["aws", "cancel", str(sub["job_id"]), "--workdir", work, "--reason", "wrong box"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["status"] == "cancelled" and out["terminated"] == sorted(sub["aws_jobs"].values())
    # moto without Docker finishes Batch jobs at once, so TerminateJob finds them done; the calls
    # themselves were accepted for every Batch job of the job (listed above).
    # A child that starts anyway stops at once and changes nothing.
    child = dict(env, AWS_BATCH_JOB_ARRAY_INDEX="1", TOS2CA_WORKDIR=str(tmp_path / "child"))
    p = cli(["task", "map", "--job", str(sub["job_id"])], child)
    assert p.returncode == 3 and json.loads(p.stdout.splitlines()[-1])["state"] == "cancelled", p.stderr[-2000:]
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(work).db()
    assert db.get_job(sub["job_id"])["message"] == "wrong box"
    assert all(c["status"] == "pending" for c in db.chunks(sub["job_id"]))


def test_a_stage_of_over_10000_chunks_is_split_into_arrays_that_depend_on_each_other(batch_setup, tmp_path,
                                                                                      monkeypatch):
    """A realistic array size through moto: 16 steps of global 1-degree data in 10 x 10 tiles and
    one-step blocks make 10,368 map (and relabel) chunks, past AWS Batch's 10,000 a array. The
    stage goes out as arrays of 10,000 and 368 whose second starts at chunk 10,000; every part
    of a stage depends on every part of the stage before. Two children (the last of each part)
    run as processes, to show the offset reaches the right chunk rows."""
    setup = batch_setup
    env = setup["env"]
    reg, sub, work = register_and_submit(setup, tmp_path, datetime(2020, 1, 4, 7, 30), 1.0,
                                         end="2020-01-04T07:30", bbox=[-180.0, -90.0, 180.0, 90.0],
                                         chunking={"block_steps": 1, "tile": [10, 10]})
    job, ids = sub["job_id"], sub["aws_jobs"]
    assert isinstance(ids["map"], list) and len(ids["map"]) == 2 and isinstance(ids["reduce"], str)
    batch = boto3.client("batch")
    every = [j for v in ids.values() for j in ([v] if isinstance(v, str) else v)]
    described = {d["jobId"]: d for d in batch.describe_jobs(jobs=every)["jobs"]}
    sizes, offsets = {}, {}
    for stage in ("map", "relabel"):
        parts = [described[j] for j in ids[stage]]
        sizes[stage] = [d["arrayProperties"]["size"] for d in parts]
        offsets[stage] = [d["container"]["command"][4:] for d in parts]
    assert sizes == {"map": [10000, 368], "relabel": [10000, 368]}
    assert offsets["map"] == [[], ["--chunk-offset", "10000"]]
    for stage, before in (("reduce", "map"), ("relabel", "reduce"), ("publish", "reduce")):
        for jid in ids[stage] if isinstance(ids[stage], list) else [ids[stage]]:
            want = ids[before] if isinstance(ids[before], list) else [ids[before]]
            assert sorted(x["jobId"] for x in described[jid]["dependsOn"]) == sorted(want), stage
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(work).db()
    assert len(db.chunks(job, "map")) == 10368
    jd = batch.describe_job_definitions(jobDefinitionName=reg["jobDefinitionName"])["jobDefinitions"][-1]
    child_env = dict(env, TOS2CA_WORKDIR=str(tmp_path / "child"))
    for var in jd["containerProperties"]["environment"]:
        child_env[var["name"]] = var["value"]
    for part, index in ((0, 9999), (1, 367)):
        command = described[ids["map"][part]]["container"]["command"]
        p = cli(command, dict(child_env, AWS_BATCH_JOB_ARRAY_INDEX=str(index)))
        assert p.returncode == 0, p.stderr[-3000:]
        assert json.loads(p.stdout.strip().splitlines()[-1])["chunk"] == part * 10000 + index
    done = {c["chunkID"] for c in db.chunks(job, "map") if c["status"] == "complete"}
    assert done == {9999, 10367}
    status = cli(["aws", "status", str(job), "--workdir", work], dict(env))
    st = json.loads(status.stdout.strip().splitlines()[-1])
    assert st["stages"]["map"]["arraySize"] == 10368 and len(st["stages"]["map"]["batchJobId"]) == 2


def play_children(setup, reg: dict, aws_jobs: dict, tmp_path) -> None:
    """Run every child of a submitted chain as its own process, stage by stage (as Batch would)."""
    batch = boto3.client("batch")
    jd = batch.describe_job_definitions(jobDefinitionName=reg["jobDefinitionName"])["jobDefinitions"][-1]
    child_env = dict(setup["env"], TOS2CA_WORKDIR=str(tmp_path / "child"))
    for var in jd["containerProperties"]["environment"]:
        child_env[var["name"]] = var["value"]
    described = {d["jobId"]: d for d in batch.describe_jobs(jobs=list(aws_jobs.values()))["jobs"]}
    for stage, jid in aws_jobs.items():
        d = described[jid]
        size = d.get("arrayProperties", {}).get("size")
        for idx in range(size) if size else [None]:
            e = dict(child_env, **({"AWS_BATCH_JOB_ARRAY_INDEX": str(idx)} if idx is not None else {}))
            p = cli(d["container"]["command"], e)
            assert p.returncode == 0, (stage, p.stderr[-3000:])


def test_aws_sync_submits_only_the_new_chunks_and_the_synced_job_equals_a_fresh_one(batch_setup, tmp_path,
                                                                                    monkeypatch):
    setup = batch_setup
    reg, sub, work = register_and_submit(setup, tmp_path, datetime(2020, 1, 4, 5, 30), 2.0,
                                         end="2020-01-04T03:30", chunking={"block_steps": 3, "tile": [30, 90]})
    job = sub["job_id"]
    play_children(setup, reg, sub["aws_jobs"], tmp_path)
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(work).db()
    assert db.get_job(job)["status"] == "complete"
    p = cli(["aws", "sync", str(job), "--workdir", work, "--queue", reg["jobQueueArn"], "--job-definition",
             reg["jobDefinitionName"]], setup["env"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    synced = json.loads(p.stdout.strip().splitlines()[-1])
    assert synced["sync_of"] == job and list(synced["aws_jobs"]) == ["map", "reduce", "relabel", "publish", "commit"]
    child = synced["job_id"]
    # The job's last step and the 4 new ones (blocks of 3: 2) over its 2 x 2 tiles: 8 map chunks; the job had 12.
    assert len(db.chunks(child, "map")) == 8 and len(db.chunks(job, "map")) == 12
    play_children(setup, reg, synced["aws_jobs"], tmp_path)
    row = db.get_job(job)
    assert row["status"] == "complete" and row["version"] == 2 and row["endDate"] == "202001040530"
    assert db.get_sync(job)["status"] == "synced"
    spec = dict(SPEC, end="2020-01-04T05:30", chunking={"block_steps": 4, "tile": [60, 180]})
    catalog = tmp_path / "data" / "catalog-imerg.json"
    _, local = run_job(tmp_path / "local", spec, catalog, workers=2)
    outputs = [o["location"] for o in db.outputs(job)]
    assert_same_outputs(local_outputs(local, tmp_path), local_outputs({"job_id": job, "outputs": outputs}, tmp_path))


def test_register_with_a_sync_schedule_creates_the_rule_that_submits_sync_due(batch_setup):
    setup = batch_setup
    p = cli(["aws", "register", "--platform", "fargate", "--image", "example.org/tos2ca-batch:1",
             "--subnets", setup["subnet"], "--security-groups", setup["sg"], "--service-role-arn", setup["role"],
             "--execution-role-arn", setup["role"], "--job-role-arn", setup["role"], "--secret-id", setup["sid"],
             "--name-prefix", f"t2c-{setup['tag']}", "--sync-schedule", "rate(30 minutes)",
             "--events-role-arn", setup["role"]], setup["env"])
    assert p.returncode == 0, p.stderr[-2000:]
    reg = json.loads(p.stdout.strip().splitlines()[-1])
    events = boto3.client("events")
    rule = events.describe_rule(Name=f"t2c-{setup['tag']}-sync-due")
    assert rule["ScheduleExpression"] == "rate(30 minutes)" and rule["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule=f"t2c-{setup['tag']}-sync-due")["Targets"]
    assert target["Arn"] == reg["jobQueueArn"] and target["RoleArn"] == setup["role"]
    assert target["BatchParameters"]["JobDefinition"] == reg["syncDue"]["syncJobDefinitionArn"]
    jd = boto3.client("batch").describe_job_definitions(
        jobDefinitionName=f"t2c-{setup['tag']}-fargate-sync-due")["jobDefinitions"][-1]
    assert jd["containerProperties"]["command"] == ["sync", "--due"]
    assert {"name": "TOS2CA_SECRET_ID", "value": setup["sid"]} in jd["containerProperties"]["environment"]


def play_graph(setup, reg: dict, batch_ids: list[str], tmp_path, seed: int) -> list[str]:
    """Run every child of the given Batch jobs as its own process, a Batch job once all it depends
    on has run (as Batch would), picking among the ready ones at random; returns the order."""
    batch = boto3.client("batch")
    jd = batch.describe_job_definitions(jobDefinitionName=reg["jobDefinitionName"])["jobDefinitions"][-1]
    child_env = dict(setup["env"], TOS2CA_WORKDIR=str(tmp_path / "child"))
    for var in jd["containerProperties"]["environment"]:
        child_env[var["name"]] = var["value"]
    described = {}
    for k in range(0, len(batch_ids), 100):
        described.update({d["jobId"]: d for d in batch.describe_jobs(jobs=batch_ids[k:k + 100])["jobs"]})
    rng = random.Random(seed)
    done: list[str] = []
    while len(done) < len(described):
        ready = sorted(j for j, d in described.items() if j not in done
                       and all(x["jobId"] in done for x in d.get("dependsOn", [])))
        assert ready, "a dependency cycle or a dependency outside the submission"
        jid = rng.choice(ready)
        d = described[jid]
        size = d.get("arrayProperties", {}).get("size")
        indices = list(range(size)) if size else [None]
        rng.shuffle(indices)
        for idx in indices:
            e = dict(child_env, **({"AWS_BATCH_JOB_ARRAY_INDEX": str(idx)} if idx is not None else {}))
            p = cli(d["container"]["command"], e)
            assert p.returncode == 0, (d["jobName"], p.stderr[-3000:])
        done.append(jid)
    return [described[j]["jobName"] for j in done]


def test_aws_sweep_submits_chains_sharing_each_map_and_the_last_job_writes_the_table(batch_setup, tmp_path,
                                                                                     monkeypatch):
    """2 x 2 combinations as AWS Batch chains: one map per binarization (the followers have no
    map stage; their reduce depends on the lead's share job), children played in a random order
    that Batch's dependencies allow, the sweep's table written by whichever job ended last, and
    each combination equal to a separate local job."""
    setup = batch_setup
    p = register(setup, "ec2")
    assert p.returncode == 0, p.stderr[-2000:]
    reg = json.loads(p.stdout.strip().splitlines()[-1])
    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 3, 30), res=2.0)
    spec = dict(SPEC, end="2020-01-04T03:30", chunking={"block_steps": 4, "tile": [60, 180]})  # 2 map chunks
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    work = str(tmp_path / "client")
    p = cli(["aws", "sweep", str(path), "--grid", "value=5,10", "--grid", "tracking.min_size=5,20",
             "--catalog", str(catalog), "--workdir", work, "--queue", reg["jobQueueArn"],
             "--job-definition", reg["jobDefinitionName"]], setup["env"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    sub = json.loads(p.stdout.strip().splitlines()[-1])
    assert sub["status"] == "running" and list(sub["jobs"]) == [
        "value=5,min_size=5", "value=5,min_size=20", "value=10,min_size=5", "value=10,min_size=20"]
    jobs = {name: j["job_id"] for name, j in sub["jobs"].items()}
    leads, followers = ("value=5,min_size=5", "value=10,min_size=5"), ("value=5,min_size=20", "value=10,min_size=20")
    for lead, follower in zip(leads, followers):
        lead_ids, follower_ids = sub["jobs"][lead]["aws_jobs"], sub["jobs"][follower]["aws_jobs"]
        assert list(lead_ids) == ["map", "share", "reduce", "relabel", "publish", "finalize"]
        assert list(follower_ids) == ["reduce", "relabel", "publish", "finalize"]
        first = boto3.client("batch").describe_jobs(jobs=[follower_ids["reduce"]])["jobs"][0]
        assert [x["jobId"] for x in first["dependsOn"]] == [lead_ids["share"]]
    every = [j for res in sub["jobs"].values() for v in res["aws_jobs"].values()
             for j in ([v] if isinstance(v, str) else v)]
    order = play_graph(setup, reg, every, tmp_path, seed=3)
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(work).db()
    row = db.get_job(sub["sweep_id"])
    assert row["status"] == "complete" and "4 of 4 combinations complete" in row["message"], (row, order)
    for name in followers:
        assert not db.chunks(jobs[name], "map")  # it read no file
    st = json.loads(cli(["aws", "status", str(sub["sweep_id"]), "--workdir", work], setup["env"]).stdout)
    assert st["status"] == "complete" and st["combinations"][leads[0]]["stages"]["share"]["chunks"] == {"complete": 1}
    # cancel reaches every combination's Batch jobs; an ended sweep and its jobs stay as they are
    p = cli(["aws", "cancel", str(sub["sweep_id"]), "--workdir", work, "--reason", "late"], setup["env"])
    cancelled = json.loads(p.stdout.strip().splitlines()[-1])
    assert cancelled["status"] == "complete" and cancelled["terminated"] == sorted(every), p.stderr[-2000:]
    assert {db.get_job(j)["status"] for j in jobs.values()} == {"complete"}
    outputs = {o["type"]: o["location"] for o in db.outputs(sub["sweep_id"])}
    assert set(outputs) == {"sweep-csv", "sweep-json", "sweep-png"} and outputs["sweep-csv"].startswith("s3://")
    table = json.loads(boto3.client("s3").get_object(Bucket=setup["bucket"], Key=outputs["sweep-json"].split(
        "/", 3)[3])["Body"].read())
    assert [r["combination"] for r in table["rows"]] == list(jobs) and {r["status"] for r in table["rows"]} == {
        "complete"}
    for name in ("value=10,min_size=20",):  # a follower: its map was the lead's
        min_size = int(name.rsplit("=", 1)[1])
        _, alone = run_job(tmp_path / name, dict(spec, value=10, tracking={"min_size": min_size}), catalog)
        swept = {"job_id": jobs[name], "outputs": [o["location"] for o in db.outputs(jobs[name])]}
        assert_same_outputs(local_outputs(alone, tmp_path), local_outputs(swept, tmp_path))


def test_a_wave_of_more_arrays_than_a_job_may_depend_on_is_refused_by_name():
    """AWS Batch lets a job depend on 20 jobs: finalize depends on every array of relabel and of
    publish (one wave), so their parts count together."""
    from tos2ca_batch.aws_batch import too_many_arrays

    order = ["map", "reduce", "relabel", "publish", "finalize"]
    fits = {"map": 190_000, "reduce": 1, "relabel": 190_000, "publish": 5_000, "finalize": 1}
    assert too_many_arrays(order, fits.get) is None  # 19 + 1 arrays
    problem = too_many_arrays(order, dict(fits, publish=25_000).get)  # 19 + 3
    assert problem == ("relabel has 190000 chunks and publish has 25000 chunks: 22 arrays of up to 10000, more "
                       "than the 20 the next stage can depend on; use longer blocks or larger tiles")
    assert too_many_arrays(order, dict(fits, map=210_000).get).startswith("map has 210000 chunks: 21 arrays")


def moto_recorder(aws, action: str) -> str:
    return urllib.request.urlopen(urllib.request.Request(f"{aws}/moto-api/recorder/{action}",
                                                         method="GET" if action.startswith("download") else "POST")
                                  ).read().decode()


def submitted_jobs(aws) -> list[dict]:
    """What SubmitJob calls moto's server saw since the recording started (its request recorder)."""
    import base64

    out = []
    for line in moto_recorder(aws, "download-recording").splitlines():
        entry = json.loads(line)
        if entry["url"].endswith("/v1/submitjob"):
            body = base64.b64decode(entry["body"]).decode() if entry["body_encoded"] else entry["body"]
            out.append(json.loads(body))
    return out


def test_a_fair_share_queue_gets_each_users_jobs_under_their_share(batch_setup, aws, tmp_path):
    setup = batch_setup
    prefix = f"t2c-{setup['tag']}"
    args = ["aws", "register", "--platform", "fargate", "--image", "example.org/tos2ca-batch:1", "--subnets",
            setup["subnet"], "--security-groups", setup["sg"], "--service-role-arn", setup["role"],
            "--execution-role-arn", setup["role"], "--job-role-arn", setup["role"], "--secret-id", setup["sid"],
            "--name-prefix", prefix]
    p = cli([*args, "--scheduling-policy", "fair-share"], setup["env"])
    assert p.returncode == 0, p.stderr[-2000:]
    reg = json.loads(p.stdout.strip().splitlines()[-1])
    batch = boto3.client("batch")
    [queue] = batch.describe_job_queues(jobQueues=[f"{prefix}-fargate-queue"])["jobQueues"]
    assert queue["schedulingPolicyArn"] == reg["schedulingPolicyArn"]
    [policy] = batch.describe_scheduling_policies(arns=[reg["schedulingPolicyArn"]])["schedulingPolicies"]
    assert policy["name"] == f"{prefix}-fair-share" and policy["fairsharePolicy"]["shareDecaySeconds"] == 3600
    again = cli([*args, "--scheduling-policy", "fair-share"], setup["env"])  # found again, not made twice
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["schedulingPolicyArn"] == \
        reg["schedulingPolicyArn"]
    assert len([a for a in batch.list_scheduling_policies()["schedulingPolicies"] if prefix in a["arn"]]) == 1
    fifo = cli(args, setup["env"])  # the queue is fair-share: a FIFO registration of it is refused
    assert fifo.returncode == 2 and "Batch cannot change a queue's kind" in fifo.stdout, fifo.stdout
    bad = cli([*args, "--scheduling-policy", "round-robin"], setup["env"])
    assert bad.returncode == 2 and "--scheduling-policy must be fair-share or" in bad.stdout

    catalog = synthesize("imerg", tmp_path / "data", datetime(2020, 1, 4), datetime(2020, 1, 4, 3), res=2.0)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(SPEC, end="2020-01-04T03:00", email="scientist@example.org")))
    work = str(tmp_path / "client")

    def submit(*extra) -> tuple[subprocess.CompletedProcess, list[dict]]:
        moto_recorder(aws, "reset-recording")
        moto_recorder(aws, "start-recording")
        try:
            p = cli(["aws", "submit", str(spec), "--catalog", str(catalog), "--workdir", work, "--queue",
                     reg["jobQueueArn"], "--job-definition", reg["jobDefinitionName"], *extra], setup["env"])
        finally:
            moto_recorder(aws, "stop-recording")
        return p, submitted_jobs(aws)

    p, jobs = submit()
    assert p.returncode == 0, p.stderr[-3000:]
    stages = json.loads(p.stdout.strip().splitlines()[-1])["aws_jobs"]
    assert len(jobs) == len(stages) >= 5 and {j.get("shareIdentifier") for j in jobs} == {"user1"}, jobs
    p, jobs = submit("--share-identifier", "hydrologyTeam")
    assert p.returncode == 0 and {j.get("shareIdentifier") for j in jobs} == {"hydrologyTeam"}
    p, jobs = submit("--share-identifier", "hydrology-team")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 1 and res["status"] == "failed" and jobs == []
    assert res["message"].startswith("share_identifier: 'hydrology-team': a share identifier is 1 to 255 letters")
    # a first-in-first-out queue gets no share (Batch refuses one there)
    fifo_reg = register(setup, "ec2")
    assert fifo_reg.returncode == 0, fifo_reg.stderr[-2000:]
    fifo_queue = json.loads(fifo_reg.stdout.strip().splitlines()[-1])
    assert "schedulingPolicyArn" not in fifo_queue
    moto_recorder(aws, "reset-recording")
    moto_recorder(aws, "start-recording")
    p = cli(["aws", "submit", str(spec), "--catalog", str(catalog), "--workdir", work, "--queue",
             fifo_queue["jobQueueArn"], "--job-definition", fifo_queue["jobDefinitionName"]], setup["env"])
    moto_recorder(aws, "stop-recording")
    assert p.returncode == 0 and [j for j in submitted_jobs(aws) if "shareIdentifier" in j] == []
