"""AWS Batch / Fargate: register the manifests, submit a planned job as chained array jobs,
report their state, cancel them. Not a ``Backend``: Batch runs the tasks, this only submits.

The client plans (it needs the catalog and the data), stores the job, then submits one array
job per parallel stage (size = chunk count; one chunk = a plain job) and plain jobs for reduce
and finalize, chained with ``dependsOn``. A stage of more than 10,000 chunks (an array's most)
is split into several arrays of at most 10,000, each told its first chunk
(``--chunk-offset``); every part of a stage depends on every part of the stage before. Every
child runs ``tos2ca-batch task <stage> --job J [--chunk-offset K]`` and takes its chunk from
``AWS_BATCH_JOB_ARRAY_INDEX`` (plus K). Children get their configuration from
the job definition's environment and the secret it names; a submission never carries a
secret value (URLs with a password are not forwarded: ``Config.batch_env``).
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

from tos2ca_batch.config import Config
from tos2ca_batch.errors import SpecError
from tos2ca_batch.pipeline import waves

MAX_ARRAY = 10_000  # children of one AWS Batch array job
MAX_DEPENDS_ON = 20  # jobs one AWS Batch job may depend on
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def batch_client(cfg: Config, service: str = "batch"):
    """An AWS client (Batch by default) for ``cfg``'s endpoint and region, standard retries."""
    from tos2ca_batch.stores.awsclient import client

    return client(service, cfg.aws_endpoint_url, cfg.aws_region)


def manifests_dir(cfg: Config) -> Path:
    from tos2ca_batch.catalog import builtin_catalog_path

    path = builtin_catalog_path(cfg.builtin_catalog)
    if path is None:
        raise FileNotFoundError("manifests/ not found; set TOS2CA_BUILTIN_CATALOG to manifests/datasets.json")
    return path.parent


def fill(template, values: dict):
    """Replace ``${NAME}`` placeholders; a string that is only a placeholder takes the value's type."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            if whole.group(1) not in values:
                raise KeyError(whole.group(1))
            return copy.deepcopy(values[whole.group(1)])
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    return template


def load_manifest(cfg: Config, name: str, values: dict) -> dict:
    doc = json.loads((manifests_dir(cfg) / name).read_text())
    try:
        return fill(doc, values)
    except KeyError as exc:
        raise ValueError(f"manifests/{name} needs a value for {exc.args[0]}") from None


def wait_valid(describe, name: str, what: str, timeout: float = 600.0, interval: float = 5.0,
               sleep=time.sleep) -> dict:
    """Poll ``describe()`` (the resource's description) until its status is VALID; a resource
    that turns INVALID, or stays CREATING/UPDATING past ``timeout``, is an error naming it and
    Batch's ``statusReason``. A job queue made before its compute environment is VALID is refused
    or attached to nothing, so ``register`` waits for each in turn."""
    waited = 0.0
    while True:
        doc = describe()
        state = doc.get("status")
        if state == "VALID":
            return doc
        if state == "INVALID" or waited >= timeout:
            why = "is INVALID" if state == "INVALID" else f"is still {state} after {timeout:.0f} s"
            raise RuntimeError(f"{what} {name} {why}: {doc.get('statusReason') or 'no reason given'}")
        sleep(interval)
        waited += interval


def _log_group(cfg: Config, jobdef: dict) -> str | None:
    """Create the job definition's awslogs group when missing (the awslogs driver does not, and
    a child then dies at start with no log)."""
    options = jobdef.get("containerProperties", {}).get("logConfiguration", {}).get("options", {})
    group = options.get("awslogs-group")
    if group:
        logs = batch_client(cfg, "logs")
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            try:
                logs.create_log_group(logGroupName=group)
            except logs.exceptions.ResourceAlreadyExistsException:  # made meanwhile by another register
                pass
    return group


def scheduling_policy(cfg: Config, values: dict, policy: str) -> str:
    """The ARN of the queue's scheduling policy: ``policy`` itself when it is an ARN, else (the
    word ``fair-share``) ``manifests/scheduling-policy.json``'s, created when missing: every
    share (``aws submit --share-identifier``, by default one per user) gets the same weight, so
    one scientist's twenty-year job does not hold the queue while another's day waits."""
    if policy.startswith("arn:"):
        return policy
    if policy != "fair-share":
        raise ValueError(f"--scheduling-policy must be fair-share or a scheduling policy's ARN, got {policy!r}")
    client = batch_client(cfg)
    doc = load_manifest(cfg, "scheduling-policy.json", values)
    arns = client.list_scheduling_policies().get("schedulingPolicies", [])
    found = client.describe_scheduling_policies(arns=[a["arn"] for a in arns]).get("schedulingPolicies", []) \
        if arns else []
    for known in found:
        if known["name"] == doc["name"]:
            return known["arn"]
    return client.create_scheduling_policy(**doc)["arn"]


SHARE_ID = re.compile(r"[A-Za-z0-9]{1,255}")


def share_identifier(cfg: Config, job_id: int, queue: str) -> str | None:
    """The share the job's Batch jobs bill to when ``queue`` has a scheduling policy (Batch
    refuses a job without one there), None for a first-in-first-out queue:
    ``TOS2CA_SHARE_IDENTIFIER`` (``--share-identifier``), else ``user<N>`` of the job's user."""
    described = batch_client(cfg).describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
    if not described or not described[0].get("schedulingPolicyArn"):
        return None
    share = cfg.share_identifier or f"user{cfg.db().get_job(job_id).get('userID') or 0}"
    if not SHARE_ID.fullmatch(share):
        raise SpecError("share_identifier", f"{share!r}: a share identifier is 1 to 255 letters and digits")
    return share


def register(cfg: Config, values: dict, platform: str, sleep=time.sleep, policy: str | None = None) -> dict:
    """Create the platform's compute environment and then its own job queue (if missing), each
    once Batch reports it VALID, the awslogs group, and register the job definition. ``policy``:
    the queue is fair-share (:func:`scheduling_policy`); Batch cannot give one to a queue made
    without it."""
    client = batch_client(cfg)
    values = dict(values, PLATFORM=platform, PLATFORM_CE="spot" if platform == "ec2" else "fargate")
    ce = load_manifest(cfg, f"compute-environment-{platform}.json", values)
    queue = load_manifest(cfg, "job-queue.json", values)
    if policy:
        queue["schedulingPolicyArn"] = scheduling_policy(cfg, values, policy)
    jobdef = load_manifest(cfg, f"job-definition-{platform}.json", values)
    out = {}
    ce_name, queue_name = ce["computeEnvironmentName"], queue["jobQueueName"]

    def describe_ce() -> dict:
        return client.describe_compute_environments(computeEnvironments=[ce_name])["computeEnvironments"][0]

    def describe_queue() -> dict:
        return client.describe_job_queues(jobQueues=[queue_name])["jobQueues"][0]

    if not client.describe_compute_environments(computeEnvironments=[ce_name])["computeEnvironments"]:
        client.create_compute_environment(**ce)
    out["computeEnvironmentArn"] = wait_valid(describe_ce, ce_name, "compute environment",
                                              sleep=sleep)["computeEnvironmentArn"]
    existing = client.describe_job_queues(jobQueues=[queue_name])["jobQueues"]
    if not existing:
        client.create_job_queue(**queue)
    elif existing[0].get("schedulingPolicyArn") != queue.get("schedulingPolicyArn"):
        has = existing[0].get("schedulingPolicyArn") or "none (first in, first out)"
        raise ValueError(f"job queue {queue_name} exists with scheduling policy {has}, not the one asked for, and "
                         f"Batch cannot change a queue's kind: delete the queue or use another --name-prefix")
    out["jobQueueArn"] = wait_valid(describe_queue, queue_name, "job queue", sleep=sleep)["jobQueueArn"]
    if queue.get("schedulingPolicyArn"):
        out["schedulingPolicyArn"] = queue["schedulingPolicyArn"]
    out["logGroup"] = _log_group(cfg, jobdef)
    res = client.register_job_definition(**jobdef)
    out["jobDefinitionArn"] = res["jobDefinitionArn"]
    out["jobDefinitionName"] = res["jobDefinitionName"]
    return out


def register_sync_schedule(cfg: Config, values: dict, platform: str, schedule: str, events_role_arn: str,
                           job_queue_arn: str) -> dict:
    """An EventBridge rule that submits ``sync --due`` as a Batch job on ``schedule`` (e.g.
    ``rate(30 minutes)``): a job definition like the children's whose command is ``sync --due``,
    and the rule with the job queue as its target (``manifests/sync-due-rule.json``)."""
    values = dict(values, PLATFORM_CE="spot" if platform == "ec2" else "fargate")
    jobdef = load_manifest(cfg, f"job-definition-{platform}.json", values)
    jobdef["jobDefinitionName"] += "-sync-due"
    jobdef["containerProperties"]["command"] = json.loads(
        (manifests_dir(cfg) / "sync-due-rule.json").read_text())["jobDefinition"]["command"]
    registered = batch_client(cfg).register_job_definition(**jobdef)
    doc = load_manifest(cfg, "sync-due-rule.json", dict(
        values, SYNC_SCHEDULE=schedule, JOB_QUEUE_ARN=job_queue_arn, EVENTS_ROLE_ARN=events_role_arn,
        SYNC_JOB_DEFINITION_ARN=registered["jobDefinitionArn"]))
    events = batch_client(cfg, "events")
    rule = events.put_rule(**doc["rule"])
    events.put_targets(Rule=doc["rule"]["Name"], Targets=[doc["target"]])
    return {"ruleArn": rule["RuleArn"], "syncJobDefinitionArn": registered["jobDefinitionArn"],
            "schedule": schedule}


def retry_action(strategy: dict, exit_code: int | None, status_reason: str = "", reason: str = "") -> str:
    """What AWS Batch does with a failed attempt under ``strategy`` (a job definition's
    ``retryStrategy``), as documented: the first ``evaluateOnExit`` entry whose given patterns
    all match (``onExitCode``, ``onStatusReason``, ``onReason``; a pattern may end with ``*``)
    decides ``RETRY`` or ``EXIT``; when none matches (or there are none) the attempt is retried.
    Batch retries only while the attempt is below ``attempts``; that is the caller's count."""
    def matches(pattern: str | None, value: str) -> bool:
        if pattern is None:
            return True
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern

    code = "" if exit_code is None else str(exit_code)
    for rule in strategy.get("evaluateOnExit", []):
        if (matches(rule.get("onExitCode"), code) and matches(rule.get("onStatusReason"), status_reason)
                and matches(rule.get("onReason"), reason)):
            return rule["action"].upper()
    return "RETRY"


def array_parts(n: int, max_array: int = MAX_ARRAY) -> list[tuple[int, int]]:
    """``(first chunk, size)`` of the Batch jobs that run a stage of ``n`` chunks."""
    return [(k, min(max_array, n - k)) for k in range(0, n, max_array)]


def job_ids(info: dict) -> dict[str, list[str]]:
    """The stored Batch job ids of each stage (a list: one id per array part)."""
    return {stage: [ids] if isinstance(ids, str) else list(ids) for stage, ids in info["jobs"].items()}


def submit(cfg: Config, raw: dict, queue: str, job_definition: str) -> dict:
    """Plan client-side, then submit the chain of Batch jobs; returns the ids."""
    from tos2ca_batch.runner import submit as store_job

    job_id, error = store_job(cfg, raw, status="running")
    if error:
        return {"job_id": job_id, "status": "failed", "message": error}
    return submit_planned(cfg, job_id, queue, job_definition)


def submit_sync(cfg: Config, job_id: int, queue: str, job_definition: str, until=None) -> dict:
    """``aws sync J``: plan a sync of job J here (only its new steps' chunks), then submit its
    chain like ``aws submit``. Refused while an earlier sync of J has not finished."""
    from tos2ca_batch.context import TaskContext
    from tos2ca_batch.stages.syncplan import NotSyncable, new_times, sync_entry, syncable_plan

    db = cfg.db()
    db.ensure_sync(job_id)
    earlier = db.get_sync(job_id).get("syncJob")
    if earlier and db.get_job(earlier)["status"] in ("pending", "running"):
        return {"job_id": job_id, "sync": "busy", "message": f"sync {earlier} of job {job_id} is still running"}
    try:
        plan = syncable_plan(TaskContext(cfg, job_id))
        times = new_times(sync_entry(cfg.catalog(), plan), plan, until)
    except (NotSyncable, SpecError) as exc:
        return {"job_id": job_id, "sync": "refused", "message": str(exc)}
    if not times:
        return {"job_id": job_id, "sync": "noop", "message": f"no new steps after {plan.timestamps[-1]}"}
    spec = dict(json.loads(db.get_job(job_id)["spec"]), end=f"{times[-1]:%Y-%m-%dT%H:%M}",
                until=f"{times[-1]:%Y-%m-%dT%H:%M}")
    child = db.create_job(spec, status="running", sync_of=job_id)
    db.update_sync(job_id, syncJob=child, status="submitted")
    return dict(submit_planned(cfg, child, queue, job_definition), sync_of=job_id)


def too_many_arrays(order: list[str], chunks) -> str | None:
    """Why a job's stages (``order``; ``chunks(stage)`` their chunk counts) cannot go out as
    chained array jobs: a wave whose arrays (every part of every stage in it) are more than a job
    of the next wave may depend on."""
    for wave in waves(order):
        counts = {stage: chunks(stage) for stage in wave}
        n = sum(len(array_parts(c)) for c in counts.values())
        if n > MAX_DEPENDS_ON:
            said = " and ".join(f"{stage} has {c} chunks" for stage, c in counts.items())
            return (f"{said}: {n} arrays of up to {MAX_ARRAY}, more than the {MAX_DEPENDS_ON} the next stage can "
                    f"depend on; use longer blocks or larger tiles")
    return None


def _stage_jobs(job_id: int, stage: str, n_chunks: int, queue: str, job_definition: str, env: list[dict],
                after: list[str], share: str | None = None) -> list[dict]:
    """``submit_job`` parameters of one stage: an array job (or several, past AWS Batch's 10,000
    children) whose children run its chunks, each part waiting for the jobs ``after``."""
    parts = array_parts(n_chunks)
    jobs = []
    for k, (first, size) in enumerate(parts):
        command = ["task", stage, "--job", str(job_id)] + (["--chunk-offset", str(first)] if first else [])
        params = {
            "jobName": f"tos2ca-{job_id}-{stage}" + (f"-{k}" if len(parts) > 1 else ""), "jobQueue": queue,
            "jobDefinition": job_definition,
            "containerOverrides": {"command": command, "environment": env},
            "tags": {"tos2ca-job": str(job_id), "stage": stage},
        }
        if size > 1:
            params["arrayProperties"] = {"size": size}
        if share:
            params["shareIdentifier"] = share
        if after:
            params["dependsOn"] = [{"jobId": j} for j in after]
        jobs.append(params)
    return jobs


def submit_planned(cfg: Config, job_id: int, queue: str, job_definition: str, after: list[str] = ()) -> dict:
    """Plan a stored job here (a planned one keeps its plan), then submit its stages as chained
    array jobs; its first stage also waits for the Batch jobs ``after`` (a sweep's job that
    shares another's map waits for that job's ``share``)."""
    from tos2ca_batch.lifecycle import fail
    from tos2ca_batch.runner import plan_job

    cfg.plan_for_arrays = True  # default blocks for array children (algorithm.default_chunking)
    try:
        plan = plan_job(cfg, job_id)
        problem = too_many_arrays(plan.stages(), plan.stage_chunks)
        if problem:
            raise SpecError("chunking", problem)
        share = share_identifier(cfg, job_id, queue)
    except (SpecError, ValueError, OSError) as exc:
        fail(cfg, job_id, str(exc))
        return {"job_id": job_id, "status": "failed", "message": str(exc)}
    env = [{"name": k, "value": v} for k, v in cfg.batch_env().items()]
    client = batch_client(cfg)
    ids: dict[str, list[str]] = {}
    previous: list[str] = list(after)
    for wave in waves(plan.stages()):  # a wave's stages all wait for the whole wave before
        for stage in wave:
            ids[stage] = [client.submit_job(**params)["jobId"]
                          for params in _stage_jobs(job_id, stage, plan.stage_chunks(stage), queue, job_definition,
                                                    env, previous, share)]
        previous = [j for stage in wave for j in ids[stage]]
    aws_jobs = {stage: v[0] if len(v) == 1 else v for stage, v in ids.items()}
    cfg.store(job_id).put_json("aws", {"queue": queue, "jobDefinition": job_definition, "jobs": aws_jobs})
    cfg.db().update_job(job_id, phase="submitted")
    return {"job_id": job_id, "status": "running", "aws_jobs": aws_jobs}


def _sweep_members(cfg: Config, job_id: int) -> list[dict] | None:
    """A sweep's combinations (name, job) when ``job_id`` is a sweep, else None."""
    if cfg.db().get_job(job_id)["stage"] != "sweep" or not cfg.store(job_id).has_json("sweep"):
        return None
    return cfg.store(job_id).get_json("sweep")["combinations"]


def cancel(cfg: Config, job_id: int, reason: str) -> dict:
    """Terminate every Batch job of the job (children not started never start; running ones are
    stopped) and mark the job cancelled; returns the terminated Batch job ids. A sweep: every
    combination's, then the sweep (``resume S`` finishes it later)."""
    from tos2ca_batch.lifecycle import cancel as cancel_job

    members = _sweep_members(cfg, job_id)
    if members is not None:
        terminated = sorted(j for m in members for j in cancel(cfg, m["job"], reason)["terminated"])
        cfg.db().transition(job_id, "cancelled", ("running",), message=reason, leaseUntil=None)
        return {"job_id": job_id, "status": cfg.db().get_job(job_id)["status"], "terminated": terminated}
    store = cfg.store(job_id)
    ids = [j for v in job_ids(store.get_json("aws")).values() for j in v] if store.has_json("aws") else []
    client = batch_client(cfg)
    for jid in ids:
        client.terminate_job(jobId=jid, reason=reason[:256])
    cancel_job(cfg, job_id, reason)
    return {"job_id": job_id, "status": cfg.db().get_job(job_id)["status"], "terminated": sorted(ids)}


def status(cfg: Config, job_id: int) -> dict:
    """Per stage: the Batch job's status and array counts, and the chunk rows' counts (a sweep:
    that of each combination submitted)."""
    members = _sweep_members(cfg, job_id)
    if members is not None:
        row = cfg.db().get_job(job_id)
        return {"job_id": job_id, "status": row["status"], "phase": row["phase"], "message": row["message"],
                "combinations": {m["name"]: status(cfg, m["job"]) if cfg.store(m["job"]).has_json("aws") else
                                 {"job_id": m["job"], "status": cfg.db().get_job(m["job"])["status"]}
                                 for m in members}}
    ids = job_ids(cfg.store(job_id).get_json("aws"))
    every = [j for v in ids.values() for j in v]
    described = {}
    for k in range(0, len(every), 100):  # DescribeJobs takes 100 ids a call
        described.update({j["jobId"]: j for j in batch_client(cfg).describe_jobs(jobs=every[k:k + 100])["jobs"]})
    counts = cfg.db().chunk_counts(job_id)
    row = cfg.db().get_job(job_id)
    stages = {}
    for stage, jids in ids.items():
        parts = [described.get(j, {}) for j in jids]
        summary: dict[str, int] = {}
        for d in parts:
            for state, n in (d.get("arrayProperties", {}).get("statusSummary") or {}).items():
                summary[state] = summary.get(state, 0) + n
        stages[stage] = {
            "batchJobId": jids[0] if len(jids) == 1 else jids,
            "batchStatus": parts[0].get("status") if len(parts) == 1 else [d.get("status") for d in parts],
            "arraySize": sum(d.get("arrayProperties", {}).get("size", 1) for d in parts),
            "arrayStatus": summary or None,
            "chunks": counts.get(stage, {}),
        }
    return {"job_id": job_id, "status": row["status"], "phase": row["phase"], "message": row["message"],
            "stages": stages}
