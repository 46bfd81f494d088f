"""AWS Batch's retries and registration as a real account meets them: the job definition's
retry strategy evaluated as documented, children killed (SIGKILL, SIGTERM) and retried as
attempt 2 that take their chunk over at once, the next stage started only when Batch would;
``register`` waits for VALID, gives each platform its own queue and makes the log group."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime

import boto3
import pytest
from helpers import assert_same_outputs, local_outputs, run_job
from test_aws_batch import SPEC, batch_setup, register, register_and_submit  # noqa: F401 (a fixture)

from tos2ca_batch.aws_batch import retry_action, wait_valid
from tos2ca_batch.config import Config

MANIFESTS = __import__("pathlib").Path(__file__).resolve().parents[1] / "manifests"


def strategy(platform: str) -> dict:
    return json.loads((MANIFESTS / f"job-definition-{platform}.json").read_text())["retryStrategy"]


@pytest.mark.parametrize("platform", ["ec2", "fargate"])
def test_the_retry_strategy_retries_kills_and_lost_hosts_and_never_bad_input(platform):
    rules = strategy(platform)
    assert len(rules["evaluateOnExit"]) <= 5  # Batch's most
    for rule in rules["evaluateOnExit"]:  # a pattern may only end with '*'
        assert all("*" not in v[:-1] for k, v in rule.items() if k.startswith("on")), rule
    exited = "Essential container in task exited"
    assert retry_action(rules, 143, exited) == "RETRY"  # SIGTERM: Spot reclaim, Fargate Spot interruption
    assert retry_action(rules, 137, exited, "OutOfMemoryError: Container killed due to memory usage") == "RETRY"
    assert retry_action(rules, None, "", "CannotPullContainerError: pull rate limit") == "RETRY"
    for code in (1, 2, 3, 75):  # failed, bad usage, cancelled, busy / not ready: retrying changes nothing
        assert retry_action(rules, code, exited) == "EXIT", code
    if platform == "ec2":
        assert retry_action(rules, None, "Host EC2 (instance i-0abc) terminated.") == "RETRY"


def test_retry_action_follows_the_documented_rules():
    rules = {"evaluateOnExit": [{"onExitCode": "1*", "onReason": "A*", "action": "exit"},
                                {"onStatusReason": "Host EC2*", "action": "RETRY"}]}
    assert retry_action(rules, 13, "", "Abc") == "EXIT"  # every given pattern matches; action any case
    assert retry_action(rules, 13, "", "Bcd") == "RETRY"  # no entry matches: retried
    assert retry_action({}, 1) == "RETRY"


def test_wait_valid_waits_through_creating_and_names_an_invalid_resource():
    states = iter([{"status": "CREATING"}, {"status": "UPDATING"}, {"status": "VALID", "arn": "x"}])
    slept = []
    assert wait_valid(lambda: next(states), "ce", "compute environment", sleep=slept.append)["arn"] == "x"
    assert len(slept) == 2
    with pytest.raises(RuntimeError, match="compute environment ce is INVALID: CLIENT_ERROR - bad subnet"):
        wait_valid(lambda: {"status": "INVALID", "statusReason": "CLIENT_ERROR - bad subnet"}, "ce",
                   "compute environment", sleep=slept.append)
    with pytest.raises(RuntimeError, match="job queue q is still CREATING after 10 s"):
        wait_valid(lambda: {"status": "CREATING"}, "q", "job queue", timeout=10, interval=5, sleep=slept.append)


def test_register_gives_each_platform_its_queue_and_makes_the_log_group(batch_setup):  # noqa: F811
    setup = batch_setup
    regs = {}
    for platform in ("ec2", "fargate"):
        p = register(setup, platform)
        assert p.returncode == 0, p.stderr[-2000:]
        regs[platform] = json.loads(p.stdout.strip().splitlines()[-1])
    batch = boto3.client("batch")
    assert regs["ec2"]["jobQueueArn"] != regs["fargate"]["jobQueueArn"]
    for platform, ce in (("ec2", "spot"), ("fargate", "fargate")):
        queue = batch.describe_job_queues(jobQueues=[regs[platform]["jobQueueArn"]])["jobQueues"][0]
        assert queue["jobQueueName"] == f"t2c-{setup['tag']}-{platform}-queue"
        assert [c["computeEnvironment"].rsplit("/", 1)[-1] for c in queue["computeEnvironmentOrder"]] == [
            f"t2c-{setup['tag']}-{ce}"]
        jd = batch.describe_job_definitions(jobDefinitionName=regs[platform]["jobDefinitionName"])["jobDefinitions"]
        assert jd[-1]["containerProperties"]["linuxParameters"]["initProcessEnabled"] is True
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/batch/t2c-{setup['tag']}")
    assert [g["logGroupName"] for g in groups["logGroups"]] == [f"/aws/batch/t2c-{setup['tag']}"]
    ce = batch.describe_compute_environments(computeEnvironments=[f"t2c-{setup['tag']}-fargate"])
    assert ce["computeEnvironments"][0]["computeResources"]["maxvCpus"] == 2000


def container_exit(returncode: int) -> int:
    """The exit code Batch reports for a process: 128 + N when signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


def chunk_running(db, job: int, stage: str, chunk: int, attempt: int):
    row = next(c for c in db.chunks(job, stage) if c["chunkID"] == chunk)
    return row["status"] == "running" and f"#{attempt}@" in (row["worker"] or "")


def test_children_killed_and_retried_as_attempt_2_take_their_chunk_over(batch_setup, tmp_path, monkeypatch):  # noqa: F811
    setup = batch_setup
    reg, sub, work = register_and_submit(setup, tmp_path, datetime(2020, 1, 4, 5, 30), 1.0)
    job = sub["job_id"]
    monkeypatch.setenv("TOS2CA_SECRET_ID", setup["sid"])
    db = Config.from_env(work).db()
    batch = boto3.client("batch")
    jd = batch.describe_job_definitions(jobDefinitionName=reg["jobDefinitionName"])["jobDefinitions"][-1]
    rules = jd["retryStrategy"]
    child_env = dict(setup["env"], TOS2CA_WORKDIR=str(tmp_path / "child"))
    for var in jd["containerProperties"]["environment"]:
        child_env[var["name"]] = var["value"]
    kills = {("publish", 0): signal.SIGKILL, ("finalize", 0): signal.SIGTERM}
    described = {d["jobId"]: d for d in batch.describe_jobs(jobs=list(sub["aws_jobs"].values()))["jobs"]}
    ran = {}
    for stage, jid in sub["aws_jobs"].items():  # in order: a stage starts when the one before succeeded
        d = described[jid]
        size = d.get("arrayProperties", {}).get("size")
        for idx in range(size) if size else [None]:
            chunk = idx or 0
            for attempt in range(1, rules["attempts"] + 1):
                e = dict(child_env, AWS_BATCH_JOB_ID=f"{jid}:{idx}" if size else jid,
                         AWS_BATCH_JOB_ATTEMPT=str(attempt))
                if size:
                    e["AWS_BATCH_JOB_ARRAY_INDEX"] = str(idx)
                proc = subprocess.Popen([sys.executable, "-m", "tos2ca_batch", *d["container"]["command"]], env=e,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                kill = kills.get((stage, chunk)) if attempt == 1 else None
                if kill is not None:
                    end = time.monotonic() + 240
                    while not chunk_running(db, job, stage, chunk, attempt) and proc.poll() is None:
                        assert time.monotonic() < end, f"{stage} {chunk} never ran"
                        time.sleep(0.05)
                    proc.send_signal(kill)
                out, err = proc.communicate(timeout=300)
                code = container_exit(proc.returncode)
                ran[(stage, chunk)] = (attempt, code, out.strip().splitlines()[-1] if out.strip() else "")
                if code == 0 or retry_action(rules, code, "Essential container in task exited") == "EXIT":
                    break
            assert code == 0, (stage, idx, attempt, code, err[-3000:])  # else Batch fails the chain
    assert ran[("publish", 0)][0] == 2 and json.loads(ran[("publish", 0)][2])["state"] == "done"
    assert ran[("finalize", 0)][0] == 2 and json.loads(ran[("finalize", 0)][2])["state"] == "done"
    assert all(a == 1 for key, (a, _, _) in ran.items() if key not in kills)
    killed = next(c for c in db.chunks(job, "publish") if c["chunkID"] == 0)
    assert killed["worker"].startswith(f"batch:{sub['aws_jobs']['publish']}:0#2@")  # attempt 2 took it at once
    assert db.get_job(job)["status"] == "complete", db.get_job(job)["message"]
    _, local = run_job(tmp_path / "local", SPEC, tmp_path / "data" / "catalog-imerg.json", workers=2)
    outputs = [o["location"] for o in db.outputs(job)]
    assert_same_outputs(local_outputs(local, tmp_path), local_outputs({"job_id": job, "outputs": outputs}, tmp_path))
