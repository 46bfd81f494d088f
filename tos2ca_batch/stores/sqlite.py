"""The jobs database in one SQLite file (the default: ``<workdir>/jobs.sqlite``), in WAL mode so
that tasks of several processes read while one writes."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from tos2ca_batch.stores.jobsdb import JobsDB, NoSchema

_OPENED: list[tuple[int, sqlite3.Connection]] = []  # (pid, connection): what close_all closes


def close_all() -> None:
    """Close this process's connections (SQLite then checkpoints its WAL into the database file):
    for a process that ends with ``os._exit``, which skips the interpreter's own clean-up."""
    pid = os.getpid()
    for owner, conn in _OPENED:
        if owner == pid:
            conn.close()
    _OPENED.clear()


class SQLiteJobsDB(JobsDB):
    """Keeps one connection per process and thread (opening one per statement was a tenth of a
    small job's wall time); a process forked with a connection opens its own (SQLite forbids
    using a connection across ``fork``), and a statement that failed drops its connection."""

    def __init__(self, path: str | Path, create: bool = True):
        self._local = threading.local()
        self.path = str(path)
        if not create and not Path(self.path).is_file():  # not even an empty file is left behind
            raise NoSchema(f"there is no jobs database {self.path}")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._run(lambda cur: cur.execute("PRAGMA journal_mode=WAL").fetchall())
        self.open_schema(create)

    def _connect(self):
        # check_same_thread=False only so that close_all may close it; each thread still has its own
        conn = sqlite3.connect(self.path, timeout=60, isolation_level="DEFERRED", check_same_thread=False)
        _OPENED.append((os.getpid(), conn))
        return conn

    def _checkout(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.conn is None:
            local.pid, local.conn = os.getpid(), self._connect()  # an inherited one is left alone
        return local.conn

    def _checkin(self, conn) -> None:
        pass  # kept for the next statement

    def _discard(self, conn, exc: BaseException) -> None:
        self._local.conn = None
        super()._discard(conn, exc)
        _OPENED[:] = [(pid, c) for pid, c in _OPENED if c is not conn]  # close_all keeps no closed ones

    def _no_tables(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def describe(self) -> str:
        return f"sqlite:{self.path}"
