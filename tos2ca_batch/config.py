"""Every setting of the package, read here and nowhere else.

Settings come from the environment (``TOS2CA_*``, plus the AWS SDK's ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION`` and, in an array child, ``AWS_BATCH_JOB_ARRAY_INDEX``), from a Secrets
Manager secret and from CLI flags. With ``TOS2CA_SECRET_ID`` the database, Redis and bucket
settings come from that secret (TOS2CA fields ``username, password, host, port, db, rhost,
rport, bucket``); environment variables win. A child process gets the same configuration from
:meth:`Config.child_env` (what an AWS Batch child or an ``mpirun`` rank is given) or, in a local
pool, the ``Config`` itself. URLs that may hold passwords are kept out of ``repr`` and never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

from tos2ca_batch.stores import open_jobs_db
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.stores.jobsdb import JobsDB
from tos2ca_batch.stores.objectstore import OutputStore, default_output_prefix, open_output_store


def secret_settings(secret_id: str, endpoint_url: str | None = None) -> dict[str, str]:
    """DB/Redis/output URLs from a TOS2CA secret (values are never logged)."""
    from tos2ca_batch.stores.awsclient import client as aws_client

    client = aws_client("secretsmanager", endpoint_url)
    try:
        doc = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except Exception as exc:  # the message names the secret, never its content
        raise RuntimeError(f"cannot read secret {secret_id!r}: {type(exc).__name__}") from None
    out = {}
    if doc.get("host"):
        user, pw = quote(str(doc.get("username", "")), safe=""), quote(str(doc.get("password", "")), safe="")
        out["db_url"] = f"mysql://{user}:{pw}@{doc['host']}:{doc.get('port', 3306)}/{doc.get('db', 'tos2ca')}"
    if doc.get("rhost"):
        out["redis_url"] = f"redis://{doc['rhost']}:{doc.get('rport', 6379)}/0"
    if doc.get("bucket"):
        out["output_url"] = f"s3://{doc['bucket']}"
    return out


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {text!r}")
    return int(text)


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    text = env.get(name)
    if text is None:
        return default
    if text not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {text!r}")
    return text


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {text!r}")
    return value


def has_password(url: str) -> bool:
    """A URL that carries a password (never forwarded to a child through its job definition)."""
    try:
        return bool(urlparse(url).password)
    except ValueError:
        return True


def task_identity(env: Mapping[str, str]) -> str | None:
    """``<scheduler>:<child>#<run>`` of an array child, None outside one. The child is the Slurm
    array element (``SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID``, or ``SLURM_JOB_ID``) or the AWS Batch
    job (``AWS_BATCH_JOB_ID``); the run counts Slurm's requeues (``SLURM_RESTART_COUNT``) and the
    batch script's reruns (``TOS2CA_TASK_ATTEMPT``), or Batch's attempts (``AWS_BATCH_JOB_ATTEMPT``)."""
    def count(name: str, default: int) -> int:
        value = (env.get(name) or "").strip()
        return int(value) if value.isdigit() else default

    if env.get("SLURM_JOB_ID"):
        child = (f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
                 if env.get("SLURM_ARRAY_JOB_ID") else env["SLURM_JOB_ID"])
        return f"slurm:{child}#{count('SLURM_RESTART_COUNT', 0)}.{count('TOS2CA_TASK_ATTEMPT', 1)}"
    if env.get("AWS_BATCH_JOB_ID"):
        return f"batch:{env['AWS_BATCH_JOB_ID']}#{count('AWS_BATCH_JOB_ATTEMPT', 1)}"
    return None


# name in the environment -> Config field, for the settings a child is given as variables
ENV_FIELDS = {
    "TOS2CA_SECRET_ID": "secret_id", "TOS2CA_DB_URL": "db_url", "TOS2CA_REDIS_URL": "redis_url",
    "TOS2CA_STORE_URL": "store_url", "TOS2CA_OUTPUT_URL": "output_url", "TOS2CA_MEMORY_MB": "memory_mb",
    "TOS2CA_LEASE_SECONDS": "lease_seconds", "TOS2CA_REDIS_TTL": "redis_ttl",
    "TOS2CA_REDIS_PART_BYTES": "redis_part_bytes", "TOS2CA_REDIS_PREFIX": "redis_prefix",
    "TOS2CA_INSTITUTION": "institution", "TOS2CA_MAX_CHUNKS": "max_chunks", "TOS2CA_SMTP_URL": "smtp_url",
    "TOS2CA_ARRAY_CHUNKS": "array_chunks", "TOS2CA_SHARE_IDENTIFIER": "share_identifier",
    "TOS2CA_PERIOD_STEPS": "period_steps", "TOS2CA_PERIOD": "period", "TOS2CA_REDUCE_ROWS": "reduce_rows",
    "TOS2CA_SES_SENDER": "ses_sender", "TOS2CA_MAIL_FROM": "mail_from",
    "TOS2CA_BUILTIN_CATALOG": "builtin_catalog", "AWS_ENDPOINT_URL": "aws_endpoint_url",
    "AWS_DEFAULT_REGION": "aws_region", "TOS2CA_EARTHDATA_HOST": "earthdata_host",
    "TOS2CA_EARTHDATA_ACCESS": "earthdata_access",
}
# what ``aws submit`` forwards to its children (when it holds no password)
FORWARDED_TO_BATCH = ("TOS2CA_SECRET_ID", "TOS2CA_STORE_URL", "TOS2CA_OUTPUT_URL", "TOS2CA_REDIS_URL",
                      "TOS2CA_REDIS_PREFIX", "TOS2CA_DB_URL", "TOS2CA_LEASE_SECONDS", "TOS2CA_MEMORY_MB",
                      "TOS2CA_EARTHDATA_HOST", "TOS2CA_EARTHDATA_ACCESS", "TOS2CA_REDUCE_ROWS")


@dataclass
class Config:
    workdir: Path
    db_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    store_url: str | None = None
    output_url: str | None = None
    catalogs: list[str] = field(default_factory=list)
    """User catalog files: ``TOS2CA_CATALOG`` (``os.pathsep``-separated), then ``--catalog``."""
    builtin_catalog: str | None = None
    """``TOS2CA_BUILTIN_CATALOG``, else ``manifests/datasets.json`` beside the package or here."""
    memory_mb: float = 2048.0
    lease_seconds: float = 600.0
    redis_ttl: int = 48 * 3600
    redis_part_bytes: int = 512 * 2**20
    redis_prefix: str = "tos2ca"
    institution: str = "unspecified"
    max_chunks: int = 100_000  # per stage; a plan over it is refused before anything is written
    array_chunks: int = 2000
    """``TOS2CA_ARRAY_CHUNKS``: the map chunks the default blocks of a job planned for an array
    backend (``aws submit``, ``slurm submit``, ``estimate``) aim at: two waves of 1,000 containers."""
    share_identifier: str | None = None
    """``TOS2CA_SHARE_IDENTIFIER``: the fair-share share a job's Batch jobs bill to on a queue with
    a scheduling policy (default ``user<N>``, N the job's user)."""
    plan_for_arrays: bool = False
    """Set by the commands that submit array jobs: default blocks follow :attr:`array_chunks`."""
    period_steps: int = 1488
    """Jobs of more steps (31 days of half-hourly data) get masks and ids files per ``period``
    (``TOS2CA_PERIOD_STEPS``), written in parallel: one file of a month of global 0.1-degree ids
    already takes one task ~4 minutes."""
    period: str = "month"
    reduce_rows: int = 250_000
    """``TOS2CA_REDUCE_ROWS``: the map's component rows the reduce links at once (whole map
    blocks, at least one): its memory follows this, not the job's length."""
    """``month`` or ``day``: the period of those files (``TOS2CA_PERIOD``)."""
    smtp_url: str | None = field(default=None, repr=False)
    ses_sender: str | None = None
    mail_from: str | None = None
    aws_endpoint_url: str | None = None
    aws_region: str | None = None
    secret_id: str | None = None
    array_index: str | None = None
    """The chunk of an array child: ``AWS_BATCH_JOB_ARRAY_INDEX`` (AWS Batch) or
    ``SLURM_ARRAY_TASK_ID`` (Slurm), named by :attr:`array_index_source`."""
    array_index_source: str = "AWS_BATCH_JOB_ARRAY_INDEX"
    task_identity: str | None = None
    """Which run of which array child this process is (:func:`task_identity`): a chunk lock held
    by an earlier run of the same child is taken over at once, since the scheduler runs one
    at a time."""
    earthdata_host: str = "urs.earthdata.nasa.gov"
    """``TOS2CA_EARTHDATA_HOST``: the Earthdata Login host (``uat.urs.earthdata.nasa.gov`` for UAT)."""
    earthdata_access: str = "auto"
    """``TOS2CA_EARTHDATA_ACCESS``: how NASA archives' files are read: ``s3`` (in us-west-2, with
    the DAAC's temporary credentials), ``https`` (anywhere, with the Earthdata token) or
    ``auto`` (s3 when this process's AWS region is us-west-2). Login: ``stores.earthdata``."""
    _db: JobsDB | None = field(default=None, repr=False, compare=False)
    _stores: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, workdir: str | None = None, catalogs: list[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
        """The configuration of this process (``environ`` defaults to ``os.environ``); ``workdir``
        and ``catalogs`` are the CLI's ``--workdir`` and ``--catalog``."""
        env = os.environ if environ is None else environ
        os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # HDF5 reads it when it opens a file
        endpoint = env.get("AWS_ENDPOINT_URL") or None
        secret_id = env.get("TOS2CA_SECRET_ID") or None
        secret = secret_settings(secret_id, endpoint) if secret_id else {}
        user_catalogs = [p for p in (env.get("TOS2CA_CATALOG") or "").split(os.pathsep) if p]
        cfg = cls(
            workdir=Path(workdir or env.get("TOS2CA_WORKDIR") or "./tos2ca-work").resolve(),
            db_url=env.get("TOS2CA_DB_URL") or secret.get("db_url"),
            redis_url=env.get("TOS2CA_REDIS_URL") or secret.get("redis_url"),
            store_url=env.get("TOS2CA_STORE_URL") or None,
            output_url=env.get("TOS2CA_OUTPUT_URL") or secret.get("output_url"),
            catalogs=user_catalogs + [str(Path(c).resolve()) for c in catalogs or []],
            builtin_catalog=env.get("TOS2CA_BUILTIN_CATALOG") or None,
            memory_mb=_number(env, "TOS2CA_MEMORY_MB", 2048.0),
            lease_seconds=_number(env, "TOS2CA_LEASE_SECONDS", 600.0),
            redis_ttl=_positive(env, "TOS2CA_REDIS_TTL", 48 * 3600),
            redis_part_bytes=_positive(env, "TOS2CA_REDIS_PART_BYTES", 512 * 2**20),
            redis_prefix=env.get("TOS2CA_REDIS_PREFIX", "tos2ca"),
            institution=env.get("TOS2CA_INSTITUTION", "unspecified"),
            max_chunks=_positive(env, "TOS2CA_MAX_CHUNKS", 100_000),
            array_chunks=_positive(env, "TOS2CA_ARRAY_CHUNKS", 2000),
            share_identifier=env.get("TOS2CA_SHARE_IDENTIFIER") or None,
            period_steps=_positive(env, "TOS2CA_PERIOD_STEPS", 1488),
            reduce_rows=_positive(env, "TOS2CA_REDUCE_ROWS", 250_000),
            period=_choice(env, "TOS2CA_PERIOD", ("month", "day"), "month"),
            smtp_url=env.get("TOS2CA_SMTP_URL") or None,
            ses_sender=env.get("TOS2CA_SES_SENDER") or None,
            mail_from=env.get("TOS2CA_MAIL_FROM") or None,
            aws_endpoint_url=endpoint,
            aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
            secret_id=secret_id,
            array_index=env.get("AWS_BATCH_JOB_ARRAY_INDEX") or env.get("SLURM_ARRAY_TASK_ID"),
            array_index_source=("AWS_BATCH_JOB_ARRAY_INDEX" if env.get("AWS_BATCH_JOB_ARRAY_INDEX")
                                or not env.get("SLURM_ARRAY_TASK_ID") else "SLURM_ARRAY_TASK_ID"),
            task_identity=task_identity(env),
            earthdata_host=env.get("TOS2CA_EARTHDATA_HOST") or "urs.earthdata.nasa.gov",
            earthdata_access=_choice(env, "TOS2CA_EARTHDATA_ACCESS", ("auto", "s3", "https"), "auto"),
        )
        cfg._secret_fields = set(secret)
        return cfg

    def __post_init__(self) -> None:
        self._secret_fields: set[str] = set()
        self._configure_reads()

    def _configure_reads(self) -> None:
        """This process's S3 endpoint and region, and how it reads NASA's archives."""
        from tos2ca_batch.stores import earthdata
        from tos2ca_batch.stores.objectstore import configure_s3

        configure_s3(self.aws_endpoint_url, self.aws_region)
        earthdata.configure(self.earthdata_host, earthdata.resolve_access(self.earthdata_access, self.aws_region))

    def __getstate__(self) -> dict:
        """Pickled for a local pool process: settings only, not open connections."""
        state = dict(self.__dict__)
        state["_db"], state["_stores"] = None, {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._configure_reads()

    def child_env(self) -> dict[str, str]:
        """The variables that give a child process (an ``mpirun`` rank, an AWS Batch child, a
        shell) this configuration: ``Config.from_env(environ=child_env())`` equals this one.
        Settings read from the secret are left to the child's own reading of the secret."""
        env = {"TOS2CA_WORKDIR": str(self.workdir), "HDF5_USE_FILE_LOCKING": "FALSE"}
        if self.catalogs:
            env["TOS2CA_CATALOG"] = os.pathsep.join(self.catalogs)
        for name, attr in ENV_FIELDS.items():
            value = getattr(self, attr)
            if value is not None and value != getattr(Config, attr, None) and attr not in self._secret_fields:
                env[name] = str(int(value) if isinstance(value, float) and value.is_integer() else value)
        return env

    def process_env(self) -> dict[str, str]:
        """The whole environment of a helper process this one starts: this process's, with
        :meth:`child_env` over it."""
        return {**os.environ, **self.child_env()}

    def batch_env(self) -> dict[str, str]:
        """What ``aws submit`` puts in its children's environment: :data:`FORWARDED_TO_BATCH`
        settings this configuration was given, never one holding a password."""
        env = self.child_env()
        return {k: env[k] for k in FORWARDED_TO_BATCH if k in env and not has_password(env[k])}

    def catalog(self) -> dict:
        """The dataset catalog: the built-in entries, then ``catalogs`` in order."""
        from tos2ca_batch.catalog import load_catalog
        from tos2ca_batch.stores import earthdata

        catalog = load_catalog(self.catalogs, self.builtin_catalog)
        for entry in catalog.values():
            earthdata.register(entry.location, entry.earthdata)
        return catalog

    def db(self, create: bool = True) -> JobsDB:
        """The jobs database, opened once. ``create=False`` (commands on an existing job, array
        children): the tables must be there already; only the client makes them."""
        if self._db is None:
            self._db = open_jobs_db(self.db_url, self.workdir, create)
        return self._db

    def store(self, job_id: int) -> ChunkStore:
        """The job's chunk store, keyed by ``{J}-{job identity}`` (folder, S3 prefix, Redis keys)."""
        if job_id not in self._stores:
            from tos2ca_batch.stores.blobs import DirBlobs, RedisBlobs, S3Blobs

            uid = self.db().job_uid(job_id)
            key = f"{job_id}-{uid}"
            base = (self.store_url or str(self.workdir / "jobs")).rstrip("/")
            job_url = f"{base}/{key}"
            if self.redis_url:
                blobs = RedisBlobs(self.redis_url, key, self.redis_ttl, self.redis_part_bytes, self.redis_prefix)
            elif base.startswith("s3://"):
                blobs = S3Blobs(f"{job_url}/tables")
            else:
                blobs = DirBlobs(f"{job_url}/tables")
            self._stores[job_id] = ChunkStore(blobs, f"{job_url}/store.zarr", identity=uid)
            from tos2ca_batch.stores import earthdata

            store = self._stores[job_id]
            earthdata.share_through(store.get_shared, store.put_shared)  # one fetch of archive credentials a job
        return self._stores[job_id]

    def scan_cache(self):
        """What ``scan`` found of each file (``<workdir>/scan-cache.json``)."""
        from tos2ca_batch.stores.scancache import ScanCache

        return ScanCache(self.workdir / "scan-cache.json")

    def output_base(self, job_id: int) -> str:
        """Where job J's outputs go unless that place holds another job's: ``<outputs>/J``."""
        return default_output_prefix(self.output_url, self.workdir, job_id)

    def outputs(self, job_id: int, prefix: str | None = None) -> OutputStore:
        """The output location the job claimed when it was planned (``prefix``, from its plan)."""
        return open_output_store(prefix or self.output_base(job_id))

    def all_local(self) -> bool:
        """Jobs DB in SQLite, chunk store and outputs in folders: using this configuration opens
        no network connection and starts no client or thread (see ``runner.execute``)."""
        remote = [u for u in (self.store_url, self.output_url) if u and "://" in u]
        return not self.redis_url and not remote and (not self.db_url or self.db_url.startswith("sqlite:///"))

    def describe(self) -> dict:
        """Where things are, without credentials."""
        return {
            "workdir": str(self.workdir), "db": self.db().describe(),
            "redis": "configured" if self.redis_url else None, "store": self.store_url or "workdir",
            "outputs": self.output_url or str(self.workdir / "outputs"),
        }
