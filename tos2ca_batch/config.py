"""Where a job's state lives, from the environment and CLI flags.

Array tasks get the same configuration through environment variables (``TOS2CA_WORKDIR``,
``TOS2CA_DB_URL``, ``TOS2CA_OUTPUT_URL``...), exactly as an AWS Batch child would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tos2ca_batch.stores.chunkstore import DirChunkStore
from tos2ca_batch.stores.jobsdb import JobsDB, open_jobs_db
from tos2ca_batch.stores.objectstore import OutputStore, open_output_store


@dataclass
class Config:
    workdir: Path
    db_url: str | None = None
    output_url: str | None = None
    catalogs: list[str] = field(default_factory=list)
    memory_mb: float = 2048.0
    lease_seconds: float = 600.0
    _db: JobsDB | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, workdir: str | None = None, catalogs: list[str] | None = None) -> Config:
        env = os.environ
        return cls(
            workdir=Path(workdir or env.get("TOS2CA_WORKDIR") or "./tos2ca-work").resolve(),
            db_url=env.get("TOS2CA_DB_URL") or None,
            output_url=env.get("TOS2CA_OUTPUT_URL") or None,
            catalogs=list(catalogs or []),
            memory_mb=float(env.get("TOS2CA_MEMORY_MB", 2048)),
            lease_seconds=float(env.get("TOS2CA_LEASE_SECONDS", 600)),
        )

    def child_env(self) -> dict[str, str]:
        """Environment for an array task of this configuration."""
        env = dict(os.environ)
        env["TOS2CA_WORKDIR"] = str(self.workdir)
        env["HDF5_USE_FILE_LOCKING"] = "FALSE"
        return env

    def db(self) -> JobsDB:
        if self._db is None:
            self._db = open_jobs_db(self.db_url, self.workdir)
        return self._db

    def store(self, job_id: int) -> DirChunkStore:
        return DirChunkStore(self.workdir / "jobs" / str(job_id))

    def outputs(self, job_id: int) -> OutputStore:
        return open_output_store(self.output_url, self.workdir, job_id)
