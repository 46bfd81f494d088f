"""Where a job's state lives, from the environment, an AWS secret and CLI flags.

Array tasks get the same configuration through environment variables (``TOS2CA_WORKDIR``,
``TOS2CA_DB_URL``, ``TOS2CA_REDIS_URL``, ``TOS2CA_STORE_URL``, ``TOS2CA_OUTPUT_URL``,
``TOS2CA_SECRET_ID``...), exactly as an AWS Batch child would. With ``TOS2CA_SECRET_ID`` the
database, Redis and bucket settings come from that Secrets Manager secret (TOS2CA fields
``username, password, host, port, db, rhost, rport, bucket``); environment variables win.
Connection URLs may hold passwords, so they are kept out of ``repr`` and never logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tos2ca_batch.stores import open_jobs_db
from tos2ca_batch.stores.chunkstore import ChunkStore
from tos2ca_batch.stores.jobsdb import JobsDB
from tos2ca_batch.stores.objectstore import OutputStore, default_output_prefix, open_output_store


def secret_settings(secret_id: str) -> dict[str, str]:
    """DB/Redis/output URLs from a TOS2CA secret (values are never logged)."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
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


def _positive(env, name: str, default: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {text!r}")
    return int(text)


@dataclass
class Config:
    workdir: Path
    db_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    store_url: str | None = None
    output_url: str | None = None
    catalogs: list[str] = field(default_factory=list)
    memory_mb: float = 2048.0
    lease_seconds: float = 600.0
    redis_ttl: int = 48 * 3600
    redis_part_bytes: int = 512 * 2**20
    redis_prefix: str = "tos2ca"
    institution: str = "unspecified"
    max_chunks: int = 100_000  # per stage; a plan over it is refused before anything is written
    _db: JobsDB | None = field(default=None, repr=False)
    _stores: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, workdir: str | None = None, catalogs: list[str] | None = None) -> Config:
        env = os.environ
        secret = secret_settings(env["TOS2CA_SECRET_ID"]) if env.get("TOS2CA_SECRET_ID") else {}
        return cls(
            workdir=Path(workdir or env.get("TOS2CA_WORKDIR") or "./tos2ca-work").resolve(),
            db_url=env.get("TOS2CA_DB_URL") or secret.get("db_url"),
            redis_url=env.get("TOS2CA_REDIS_URL") or secret.get("redis_url"),
            store_url=env.get("TOS2CA_STORE_URL") or None,
            output_url=env.get("TOS2CA_OUTPUT_URL") or secret.get("output_url"),
            catalogs=list(catalogs or []),
            memory_mb=float(env.get("TOS2CA_MEMORY_MB", 2048)),
            lease_seconds=float(env.get("TOS2CA_LEASE_SECONDS", 600)),
            redis_ttl=int(env.get("TOS2CA_REDIS_TTL", 48 * 3600)),
            redis_part_bytes=int(env.get("TOS2CA_REDIS_PART_BYTES", 512 * 2**20)),
            redis_prefix=env.get("TOS2CA_REDIS_PREFIX", "tos2ca"),
            institution=env.get("TOS2CA_INSTITUTION", "unspecified"),
            max_chunks=_positive(env, "TOS2CA_MAX_CHUNKS", 100_000),
        )

    def child_env(self) -> dict[str, str]:
        """Environment for an array task of this configuration (URLs as given, e.g. by a secret id)."""
        env = dict(os.environ)
        env["TOS2CA_WORKDIR"] = str(self.workdir)
        env["HDF5_USE_FILE_LOCKING"] = "FALSE"
        return env

    def db(self) -> JobsDB:
        if self._db is None:
            self._db = open_jobs_db(self.db_url, self.workdir)
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
            self._stores[job_id] = ChunkStore(blobs, f"{job_url}/store.zarr", scratch_in_zarr=not self.redis_url,
                                              identity=uid)
        return self._stores[job_id]

    def output_base(self, job_id: int) -> str:
        """Where job J's outputs go unless that place holds another job's: ``<outputs>/J``."""
        return default_output_prefix(self.output_url, self.workdir, job_id)

    def outputs(self, job_id: int) -> OutputStore:
        """The output location the job claimed when it was planned (see ``claim_output_prefix``)."""
        store = self.store(job_id)
        prefix = None
        if store.has_json("plan"):
            prefix = store.get_json("plan").get("output_prefix")
        return open_output_store(prefix or self.output_base(job_id))

    def describe(self) -> dict:
        """Where things are, without credentials."""
        return {
            "workdir": str(self.workdir), "db": self.db().describe(),
            "redis": "configured" if self.redis_url else None, "store": self.store_url or "workdir",
            "outputs": self.output_url or str(self.workdir / "outputs"),
        }
