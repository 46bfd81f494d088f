"""AWS Batch / Fargate: register the manifests, submit a planned job as chained array jobs,
report their state, cancel them. Not a ``Backend``: Batch runs the tasks, this only submits.

The client plans (it needs the catalog and the data), stores the job, then submits one array
job per parallel stage (size = chunk count; one chunk = a plain job) and plain jobs for reduce
and finalize, chained with ``dependsOn``. Every child runs ``tos2ca-batch task <stage> --job J``
and takes its chunk from ``AWS_BATCH_JOB_ARRAY_INDEX``. Children get their configuration from
the job definition's environment and the secret it names; a submission never carries a
secret value (URLs with a password are not forwarded: ``Config.batch_env``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from tos2ca_batch.config import Config

MAX_ARRAY = 10_000
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def batch_client(cfg: Config):
    import boto3

    return boto3.client("batch", endpoint_url=cfg.aws_endpoint_url, region_name=cfg.aws_region)


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


def register(cfg: Config, values: dict, platform: str) -> dict:
    """Create the compute environment and job queue (if missing) and register the job definition."""
    client = batch_client(cfg)
    values = dict(values, PLATFORM_CE="spot" if platform == "ec2" else "fargate")
    ce = load_manifest(cfg, f"compute-environment-{platform}.json", values)
    queue = load_manifest(cfg, "job-queue.json", values)
    jobdef = load_manifest(cfg, f"job-definition-{platform}.json", values)
    out = {}
    have = client.describe_compute_environments(computeEnvironments=[ce["computeEnvironmentName"]])
    if have["computeEnvironments"]:
        out["computeEnvironmentArn"] = have["computeEnvironments"][0]["computeEnvironmentArn"]
    else:
        out["computeEnvironmentArn"] = client.create_compute_environment(**ce)["computeEnvironmentArn"]
    have = client.describe_job_queues(jobQueues=[queue["jobQueueName"]])
    if have["jobQueues"]:
        out["jobQueueArn"] = have["jobQueues"][0]["jobQueueArn"]
    else:
        out["jobQueueArn"] = client.create_job_queue(**queue)["jobQueueArn"]
    res = client.register_job_definition(**jobdef)
    out["jobDefinitionArn"] = res["jobDefinitionArn"]
    out["jobDefinitionName"] = res["jobDefinitionName"]
    return out


def submit(cfg: Config, raw: dict, queue: str, job_definition: str) -> dict:
    """Plan client-side, then submit the chain of Batch jobs; returns the ids."""
    from tos2ca_batch.errors import SpecError
    from tos2ca_batch.lifecycle import fail
    from tos2ca_batch.runner import plan_job
    from tos2ca_batch.runner import submit as store_job

    job_id, error = store_job(cfg, raw, status="running")
    if error:
        return {"job_id": job_id, "status": "failed", "message": error}
    try:
        plan = plan_job(cfg, job_id)
        too_big = [(s, plan.stage_chunks(s)) for s in plan.stages() if plan.stage_chunks(s) > MAX_ARRAY]
        if too_big:
            raise SpecError("chunking", f"{too_big[0][0]} has {too_big[0][1]} chunks; an AWS Batch array "
                                        f"holds at most {MAX_ARRAY}: use longer blocks or larger tiles")
    except (SpecError, ValueError, OSError) as exc:
        fail(cfg, job_id, str(exc))
        return {"job_id": job_id, "status": "failed", "message": str(exc)}
    env = [{"name": k, "value": v} for k, v in cfg.batch_env().items()]
    client = batch_client(cfg)
    ids: dict[str, str] = {}
    previous = None
    for stage in plan.stages():
        n = plan.stage_chunks(stage)
        params = {
            "jobName": f"tos2ca-{job_id}-{stage}", "jobQueue": queue, "jobDefinition": job_definition,
            "containerOverrides": {"command": ["task", stage, "--job", str(job_id)], "environment": env},
            "tags": {"tos2ca-job": str(job_id), "stage": stage},
        }
        if n > 1:
            params["arrayProperties"] = {"size": n}
        if previous:
            params["dependsOn"] = [{"jobId": previous}]
        previous = client.submit_job(**params)["jobId"]
        ids[stage] = previous
    cfg.store(job_id).put_json("aws", {"queue": queue, "jobDefinition": job_definition, "jobs": ids})
    cfg.db().update_job(job_id, phase="submitted")
    return {"job_id": job_id, "status": "running", "aws_jobs": ids}


def cancel(cfg: Config, job_id: int, reason: str) -> dict:
    """Terminate every Batch job of the job (children not started never start; running ones are
    stopped) and mark the job cancelled; returns the terminated Batch job ids."""
    from tos2ca_batch.lifecycle import cancel as cancel_job

    ids = cfg.store(job_id).get_json("aws")["jobs"] if cfg.store(job_id).has_json("aws") else {}
    client = batch_client(cfg)
    for jid in ids.values():
        client.terminate_job(jobId=jid, reason=reason[:256])
    cancel_job(cfg, job_id, reason)
    return {"job_id": job_id, "status": cfg.db().get_job(job_id)["status"], "terminated": sorted(ids.values())}


def status(cfg: Config, job_id: int) -> dict:
    """Per stage: the Batch job's status and array counts, and the chunk rows' counts."""
    info = cfg.store(job_id).get_json("aws")
    ids = info["jobs"]
    described = {j["jobId"]: j for j in batch_client(cfg).describe_jobs(jobs=list(ids.values()))["jobs"]}
    counts = cfg.db().chunk_counts(job_id)
    row = cfg.db().get_job(job_id)
    stages = {}
    for stage, jid in ids.items():
        d = described.get(jid, {})
        stages[stage] = {
            "batchJobId": jid, "batchStatus": d.get("status"),
            "arraySize": d.get("arrayProperties", {}).get("size", 1),
            "arrayStatus": d.get("arrayProperties", {}).get("statusSummary"),
            "chunks": counts.get(stage, {}),
        }
    return {"job_id": job_id, "status": row["status"], "phase": row["phase"], "message": row["message"],
            "stages": stages}
