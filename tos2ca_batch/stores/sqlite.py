"""The jobs database in one SQLite file (the default: ``<workdir>/jobs.sqlite``), in WAL mode so
that tasks of several processes read while one writes."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from tos2ca_batch.stores.jobsdb import JobsDB


class SQLiteJobsDB(JobsDB):
    """Keeps one connection per process and thread (opening one per statement was a tenth of a
    small job's wall time); a process forked with a connection opens its own (SQLite forbids
    using a connection across ``fork``), and a statement that failed drops its connection."""

    def __init__(self, path: str | Path):
        self._local = threading.local()
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._cursor() as cur:
            cur.execute("PRAGMA journal_mode=WAL").fetchall()
        self.init_schema()

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60, isolation_level="DEFERRED")

    def _checkout(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.conn is None:
            local.pid, local.conn = os.getpid(), self._connect()  # an inherited one is left alone
        return local.conn

    def _checkin(self, conn, broken: bool) -> None:
        if broken:
            self._local.conn = None
            conn.close()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def describe(self) -> str:
        return f"sqlite:{self.path}"
