"""The jobs database in one SQLite file (the default: ``<workdir>/jobs.sqlite``), in WAL mode so
that tasks of several processes read while one writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tos2ca_batch.stores.jobsdb import JobsDB


class SQLiteJobsDB(JobsDB):
    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._cursor() as cur:
            cur.execute("PRAGMA journal_mode=WAL").fetchall()
        self.init_schema()

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60, isolation_level="DEFERRED")

    def describe(self) -> str:
        return f"sqlite:{self.path}"
