"""Slurm job arrays: submit a planned job as chained ``sbatch --array`` jobs, report them, cancel
them, resubmit what is left. Not a ``Backend``: Slurm runs the tasks, this only submits (the
shape of :mod:`tos2ca_batch.aws_batch`).

Each stage is one array (split at the cluster's ``MaxArraySize``: every part is told its first
chunk, ``--chunk-offset``), each part waiting ``--dependency=afterok`` on every part of the wave
before, with ``--kill-on-invalid-dep=yes`` so a failed stage cancels the rest of the chain
instead of leaving it pending forever. Every child runs the job's batch script (written beside
its logs), which runs ``tos2ca-batch task <stage> --job J`` with the chunk from
``SLURM_ARRAY_TASK_ID``. A task killed outright (exit 137: SIGKILL, the OOM killer) is rerun by
the script up to ``retries`` times; a requeue (node failure, preemption, ``scontrol requeue``)
is Slurm's own (``--requeue``). Either way the new run takes the chunk from the dead one at once
(``Config.task_identity``) and tasks are idempotent. A last job, ``settle``, waits for all of
them (``afterany``) and ends the job ``failed`` or ``cancelled`` with Slurm's reason if they
ended without completing it; ``status`` does the same when asked.

Children inherit the submitting environment (sbatch's ``--export=ALL``); the script sets the
client's settings that hold no password, so a password is never written to a file.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tos2ca_batch.aws_batch import array_parts
from tos2ca_batch.config import Config, has_password
from tos2ca_batch.errors import SpecError
from tos2ca_batch.pipeline import waves

LIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
        "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"}
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$|^UNLIMITED$|^INFINITE$")
_MEM = re.compile(r"^\d+[KMGT]?$")


class SlurmError(RuntimeError):
    """A Slurm command failed; the message names it and quotes Slurm."""


@dataclass(frozen=True)
class SlurmOptions:
    """What every child of a job asks Slurm for (``tos2ca-batch slurm submit`` options)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None  # per child, e.g. 02:00:00 or 1-00:00:00
    mem: str | None = None  # per child, e.g. 4G
    cpus_per_task: int = 1
    max_running: int | None = None  # an array's children running at once (%N)
    retries: int = 2  # reruns of a killed task (exit 137) in the same allocation
    extra: tuple[str, ...] = field(default=())  # other sbatch options, as they are

    def check(self) -> None:
        """Refuse bad options by name before anything is stored or submitted."""
        if self.time is not None and not _TIME.match(self.time):
            raise SpecError("--time", f"must be minutes, [D-]HH:MM[:SS] or UNLIMITED, got {self.time!r}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise SpecError("--mem", f"must be a size like 4000, 4000M or 4G, got {self.mem!r}")
        for name in ("cpus_per_task", "max_running"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpecError(f"--{name.replace('_', '-')}", f"must be a whole number >= 1, got {value}")
        if not 0 <= self.retries <= 10:
            raise SpecError("--retries", f"must be 0 to 10, got {self.retries}")

    def sbatch_args(self) -> list[str]:
        args = [f"--cpus-per-task={self.cpus_per_task}"]
        for flag, value in (("partition", self.partition), ("account", self.account), ("time", self.time),
                            ("mem", self.mem)):
            if value:
                args.append(f"--{flag}={value}")
        return args + list(self.extra)


def slurm(args: list[str]) -> str:
    """Run a Slurm client command; its stdout, or :class:`SlurmError` with Slurm's words."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} not found: is this a Slurm login node (or is Slurm on PATH)?") from None
    if done.returncode != 0:
        raise SlurmError(f"{shlex.join(args[:3])}... failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def max_array_size() -> int:
    """The cluster's ``MaxArraySize``: an array's indices are 0 .. MaxArraySize - 1."""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", slurm(["scontrol", "show", "config"]), re.M)
    return int(found.group(1)) if found else 1001  # Slurm's default


def job_dir(cfg: Config, job_id: int) -> Path:
    """The job's batch script and children's logs: on the filesystem the cluster's nodes share."""
    return cfg.workdir / "slurm" / f"job-{job_id}"


def batch_script(cfg: Config, job_id: int, retries: int) -> str:
    """The script every child of the job runs: ``sbatch ... script <stage> <first chunk>``."""
    env = {k: v for k, v in cfg.child_env().items() if not has_password(v)}
    tool = f"{shlex.quote(sys.executable)} -m tos2ca_batch"
    lines = [
        "#!/bin/bash",
        f"# tos2ca-batch job {job_id}: one Slurm array child (written by tos2ca-batch slurm submit).",
        "# Runs chunk $SLURM_ARRAY_TASK_ID + $2 of stage $1; 'settle' ends a job its children left unfinished.",
        *(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())),
        'stage=$1 offset=${2:-0}',
        'if [ "$stage" = settle ]; then',
        f"  exec {tool} slurm settle {job_id}",
        "fi",
        "attempt=1",
        "while :; do",
        f'  TOS2CA_TASK_ATTEMPT=$attempt {tool} task "$stage" --job {job_id} --chunk-offset "$offset"',
        "  rc=$?",
        f'  if [ "$rc" -ne 137 ] || [ "$attempt" -gt {retries} ]; then exit "$rc"; fi',
        '  echo "tos2ca-batch: the task was killed (exit 137); running it again (attempt $((attempt + 1)))" >&2',
        "  attempt=$((attempt + 1))",
        "done",
        "",
    ]
    return "\n".join(lines)


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def _write_script(cfg: Config, job_id: int, retries: int) -> Path:
    folder = job_dir(cfg, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.sbatch"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(batch_script(cfg, job_id, retries))
    tmp.chmod(0o755)
    tmp.replace(path)
    return path


def _sbatch(script: Path, name: str, size: int, first: int, stage: str, opts: SlurmOptions,
            after: list[str], kind: str = "afterok") -> str:
    log = f"{stage}-%A_%a.out" if stage != "settle" else "settle-%j.out"
    args = ["sbatch", "--parsable", f"--job-name={name}", "--requeue", "--open-mode=append",
            f"--output={script.parent / log}"]
    if stage != "settle":
        args += [f"--array=0-{size - 1}" + (f"%{opts.max_running}" if opts.max_running else ""),
                 "--kill-on-invalid-dep=yes"]
    if after:
        args.append(f"--dependency={kind}:{':'.join(after)}")
    out = slurm(args + opts.sbatch_args() + [str(script), stage, str(first)])
    return out.strip().split(";")[0]


def stages_left(cfg: Config, job_id: int, order: list[str]) -> list[str]:
    """The job's stages that still have a chunk not complete (all of them for a new job)."""
    counts = cfg.db().chunk_counts(job_id)
    return [s for s in order if set(counts.get(s, {"pending": 1})) != {"complete"}]


def submit(cfg: Config, raw: dict, opts: SlurmOptions) -> dict:
    """Store the job, plan it here, then submit its chain of arrays; returns the ids."""
    from tos2ca_batch.runner import submit as store_job

    opts.check()
    max_array_size()  # no Slurm here: say so before a job is stored
    job_id, error = store_job(cfg, raw, status="running")
    if error:
        return {"job_id": job_id, "status": "failed", "message": error}
    return submit_planned(cfg, job_id, opts)


def submit_planned(cfg: Config, job_id: int, opts: SlurmOptions) -> dict:
    """Plan a stored job (a planned one keeps its plan), then submit the stages it has left."""
    from tos2ca_batch.lifecycle import fail
    from tos2ca_batch.runner import plan_job

    ids: dict[str, list[str]] = {}
    cfg.plan_for_arrays = True  # default blocks for array children (algorithm.default_chunking)
    try:
        plan = plan_job(cfg, job_id)
        max_array = max_array_size()
        script = _write_script(cfg, job_id, opts.retries)
        previous: list[str] = []
        for wave in waves(stages_left(cfg, job_id, plan.stages())):
            for stage in wave:
                parts = array_parts(plan.stage_chunks(stage), max_array)
                ids[stage] = []
                for k, (first, size) in enumerate(parts):
                    name = f"tos2ca-{job_id}-{stage}" + (f"-{k}" if len(parts) > 1 else "")
                    ids[stage].append(_sbatch(script, name, size, first, stage, opts, previous))
            previous = [j for stage in wave for j in ids[stage]]
        every = [j for v in ids.values() for j in v]
        settle_id = _sbatch(script, f"tos2ca-{job_id}-settle", 1, 0, "settle", opts, every, "afterany")
    except (SpecError, SlurmError, ValueError, OSError) as exc:
        submitted = [j for v in ids.values() for j in v]
        if submitted:  # half a chain never runs: take back what went out
            subprocess.run(["scancel", *submitted], capture_output=True, timeout=120)
        fail(cfg, job_id, str(exc))
        return {"job_id": job_id, "status": "failed", "message": str(exc)}
    _write_json(job_dir(cfg, job_id) / "slurm-jobs.json", {"jobs": ids, "settle": settle_id})
    cfg.db().update_job(job_id, phase="submitted")
    return {"job_id": job_id, "status": "running", "slurm_jobs": ids, "settle": settle_id,
            "logs": str(script.parent)}


def resume(cfg: Config, job_id: int, opts: SlurmOptions) -> dict:
    """Submit again what a stopped job (cancelled, failed, or its Slurm jobs gone) has left."""
    from tos2ca_batch import lifecycle

    opts.check()
    row = cfg.db().get_job(job_id)
    if row["status"] == "complete":
        return {"job_id": job_id, "status": "complete", "message": "nothing to resume"}
    if row["status"] == "running" and _live(cfg, job_id):
        return {"job_id": job_id, "status": "running", "message": "its Slurm jobs are still queued or running"}
    lifecycle.reopen(cfg, job_id)
    lifecycle.forget_lost_outputs(cfg, job_id)
    cfg.db().release_chunks(job_id)  # their Slurm jobs have all ended: no holder is alive
    return submit_planned(cfg, job_id, opts)


def _submitted(cfg: Config, job_id: int) -> dict:
    """The Slurm ids of the job's last submission (``slurm-jobs.json`` beside its logs)."""
    path = job_dir(cfg, job_id) / "slurm-jobs.json"
    return json.loads(path.read_text()) if path.exists() else {"jobs": {}}


def _ids(cfg: Config, job_id: int) -> dict[str, list[str]]:
    return _submitted(cfg, job_id)["jobs"]


def element_states(slurm_id: str) -> list[dict]:
    """Every element of a Slurm job or array: its id, state, reason and exit code, from
    ``scontrol`` (the controller keeps ended jobs ``MinJobAge`` seconds), else ``sacct``."""
    try:
        text = slurm(["scontrol", "-o", "show", "job", slurm_id])
    except SlurmError:
        text = ""
    out = []
    for line in text.splitlines():
        f = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobState" in f:
            task = f.get("ArrayTaskId")
            out.append({"id": f"{f.get('ArrayJobId', slurm_id)}_{task}" if task and task != "N/A" else f["JobId"],
                        "state": f["JobState"], "reason": f.get("Reason", ""), "exit": f.get("ExitCode", "")})
    if out:
        return out
    try:
        text = slurm(["sacct", "-n", "-X", "-P", "-j", slurm_id, "-o", "JobID,State,ExitCode"])
    except SlurmError:
        return []
    for line in text.splitlines():
        jid, state, code = (line.split("|") + ["", "", ""])[:3]
        out.append({"id": jid, "state": state.split()[0] if state else "UNKNOWN", "reason": "", "exit": code})
    return out


def _live(cfg: Config, job_id: int) -> bool:
    return any(e["state"] in LIVE for v in _ids(cfg, job_id).values() for j in v for e in element_states(j))


def settle(cfg: Config, job_id: int) -> dict:
    """A job still ``running`` whose Slurm jobs have all ended ends ``failed`` (a child failed,
    timed out, ran out of memory, lost its node) or ``cancelled`` (``scancel``) with Slurm's
    reason; a job whose children are still queued or running is left alone."""
    from tos2ca_batch import lifecycle

    row = cfg.db().get_job(job_id)
    if row["status"] != "running":
        return {"job_id": job_id, "status": row["status"], "settled": False}
    states = [dict(e, stage=stage) for stage, v in _ids(cfg, job_id).items() for j in v for e in element_states(j)]
    if any(e["state"] in LIVE for e in states):
        return {"job_id": job_id, "status": "running", "settled": False}
    resume = f"finish it with: tos2ca-batch slurm resume {job_id}"
    ended = [e for e in states if e["state"] not in ("COMPLETED", "CANCELLED")]
    cancelled = [e for e in states if e["state"] == "CANCELLED" and e["reason"] != "DependencyNeverSatisfied"]
    if ended:
        e = ended[0]
        lifecycle.fail(cfg, job_id, f"{e['stage']}: Slurm job {e['id']} ended {e['state']} "
                                    f"(exit {e['exit']}); {resume}")
    elif cancelled:
        lifecycle.cancel(cfg, job_id, f"{cancelled[0]['stage']}: Slurm job {cancelled[0]['id']} was cancelled "
                                      f"(scancel); {resume}")
    else:
        lifecycle.fail(cfg, job_id, f"its Slurm jobs ended without completing it; {resume}")
    return {"job_id": job_id, "status": cfg.db().get_job(job_id)["status"], "settled": True}


def status(cfg: Config, job_id: int) -> dict:
    """Per stage: its Slurm ids, their elements' states counted, and the chunk rows' counts."""
    settle(cfg, job_id)
    counts = cfg.db().chunk_counts(job_id)
    stages = {}
    for stage, jids in _ids(cfg, job_id).items():
        summary: dict[str, int] = {}
        for j in jids:
            for e in element_states(j):
                summary[e["state"]] = summary.get(e["state"], 0) + _count(e["id"])
        stages[stage] = {"slurmJobId": jids[0] if len(jids) == 1 else jids, "slurmStates": summary,
                         "chunks": counts.get(stage, {})}
    row = cfg.db().get_job(job_id)
    return {"job_id": job_id, "status": row["status"], "phase": row["phase"], "message": row["message"],
            "stages": stages}


def _count(element: str) -> int:
    """Elements an id stands for: ``12_3-5,7%2`` (pending ones not split yet) is four."""
    _, sep, tasks = element.partition("_")
    if not sep:
        return 1
    total = 0
    for part in tasks.split("%")[0].strip("[]").split(","):
        first, dash, last = part.partition("-")
        total += int(last) - int(first) + 1 if dash and first.isdigit() and last.isdigit() else 1
    return total


def cancel(cfg: Config, job_id: int, reason: str) -> dict:
    """``scancel`` every Slurm job of the job (running children get SIGTERM, release their chunks
    and stop) and mark the job cancelled; ``slurm resume`` or ``resume`` finishes it later."""
    from tos2ca_batch import lifecycle

    doc = _submitted(cfg, job_id)
    ids = [j for v in doc["jobs"].values() for j in v] + ([doc["settle"]] if doc.get("settle") else [])
    if ids:
        slurm(["scancel", *ids])
    lifecycle.cancel(cfg, job_id, reason)
    return {"job_id": job_id, "status": cfg.db().get_job(job_id)["status"], "cancelled": ids}
