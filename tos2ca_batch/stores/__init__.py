"""Where state lives: the jobs database, the chunk store and the output (object) store."""

from __future__ import annotations

from pathlib import Path

from tos2ca_batch.stores.jobsdb import JobsDB
from tos2ca_batch.stores.sqlite import SQLiteJobsDB


def open_jobs_db(url: str | None, workdir: str | Path) -> JobsDB:
    """``TOS2CA_DB_URL`` (``mysql://...`` or ``sqlite:///path``) or the work dir's SQLite file."""
    if url and url.startswith("mysql://"):
        from tos2ca_batch.stores.mysql import MySQLJobsDB

        return MySQLJobsDB(url)
    if url and url.startswith("sqlite:///"):
        return SQLiteJobsDB(url[len("sqlite:///") - 1 :])
    if url:
        raise ValueError("TOS2CA_DB_URL must start with mysql:// or sqlite:///")
    return SQLiteJobsDB(Path(workdir) / "jobs.sqlite")
