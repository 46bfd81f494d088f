"""Where state lives: the jobs database, the chunk store and the output (object) store."""

from __future__ import annotations

from pathlib import Path

from tos2ca_batch.stores.jobsdb import JobsDB, NoSchema
from tos2ca_batch.stores.sqlite import SQLiteJobsDB

__all__ = ["JobsDB", "NoSchema", "SQLiteJobsDB", "open_jobs_db"]


def open_jobs_db(url: str | None, workdir: str | Path, create: bool = True) -> JobsDB:
    """``TOS2CA_DB_URL`` (``mysql://...`` or ``sqlite:///path``) or the work dir's SQLite file.
    ``create``: make the database and its tables if missing (the client); without it a missing
    or older schema is :class:`NoSchema` (an array child)."""
    if url and url.startswith("mysql://"):
        from tos2ca_batch.stores.mysql import MySQLJobsDB

        return MySQLJobsDB(url, create)
    if url and url.startswith("sqlite:///"):
        return SQLiteJobsDB(url[len("sqlite:///") - 1 :], create)
    if url:
        raise ValueError("TOS2CA_DB_URL must start with mysql:// or sqlite:///")
    return SQLiteJobsDB(Path(workdir) / "jobs.sqlite", create)
