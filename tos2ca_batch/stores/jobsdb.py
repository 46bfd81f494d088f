"""The jobs database (TOS2CA table names): SQLite by default, MySQL/MariaDB in production.

Every statement is parameterized. Chunk claims are one conditional UPDATE, so two workers can
never both own a chunk; a claim carries a lease (``leaseUntil``) that another worker may take
over once it has expired; ``attempts`` counts tries; claiming a complete chunk is a no-op.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

from tos2ca_batch.timeutil import parse_time

log = logging.getLogger("tos2ca_batch")

SCHEMA_VERSION = 3  # 2: jobs.jobUID, the identity that keys a job's stored state; 3: jobs.version, syncs

_TABLES = [
    """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS users (
        userID {pk}, email VARCHAR(255) NOT NULL UNIQUE, createdTime VARCHAR(32))""",
    """CREATE TABLE IF NOT EXISTS jobs (
        jobID {pk}, userID INTEGER, stage VARCHAR(16) NOT NULL, phdefJobID INTEGER,
        dataset VARCHAR(255), variable VARCHAR(255), coords TEXT, startDate VARCHAR(32),
        endDate VARCHAR(32), ineqOperator VARCHAR(32), ineqValue DOUBLE, spec TEXT,
        status VARCHAR(16) NOT NULL, phase VARCHAR(32), nChunks INTEGER, submitTime VARCHAR(32),
        message TEXT, worker VARCHAR(255), leaseUntil DOUBLE, jobUID VARCHAR(32), version INTEGER)""",
    """CREATE TABLE IF NOT EXISTS chunks (
        jobID INTEGER NOT NULL, chunkID INTEGER NOT NULL, stage VARCHAR(16) NOT NULL,
        status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, worker VARCHAR(255),
        leaseUntil DOUBLE, startDate VARCHAR(12), endDate VARCHAR(12), jobStart VARCHAR(32),
        jobEnd VARCHAR(32), message TEXT, PRIMARY KEY (jobID, stage, chunkID))""",
    """CREATE TABLE IF NOT EXISTS syncs (
        jobID INTEGER NOT NULL PRIMARY KEY, schedule VARCHAR(16), untilDate VARCHAR(32), nextDue DOUBLE,
        lastRun VARCHAR(32), lastStep VARCHAR(12), status VARCHAR(16), message TEXT, syncJob INTEGER,
        worker VARCHAR(255), leaseUntil DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS outputs (
        outputID {pk}, jobID INTEGER NOT NULL, location VARCHAR(700) NOT NULL UNIQUE,
        type VARCHAR(32), startDateTime VARCHAR(12))""",
]

JOB_STATES = ("pending", "running", "complete", "failed", "cancelled")
JOB_COLUMNS = (
    "jobID", "userID", "stage", "phdefJobID", "dataset", "variable", "coords", "startDate", "endDate",
    "ineqOperator", "ineqValue", "spec", "status", "phase", "nChunks", "submitTime", "message", "version",
)
SYNC_COLUMNS = ("schedule", "untilDate", "nextDue", "lastRun", "lastStep", "status", "message", "syncJob")


class NoSchema(LookupError):
    """The database has no tables of this version, and the caller may not make them."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobsDB:
    """SQL shared by both dialects; subclasses give the connection and the few differences."""

    placeholder = "?"
    pk = "INTEGER PRIMARY KEY AUTOINCREMENT"
    insert_ignore = "INSERT OR IGNORE"

    def _connect(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _checkout(self):
        """A connection for one transaction (a new one unless a dialect keeps one)."""
        return self._connect()

    def _checkin(self, conn) -> None:
        """The transaction committed: the connection may serve the next one."""
        conn.close()

    def _discard(self, conn, exc: BaseException) -> None:
        """The transaction failed with ``exc``: roll it back and forget the connection."""
        try:
            conn.rollback()
        except Exception:  # a broken connection cannot roll back; the server does on disconnect
            pass
        finally:
            conn.close()

    def _retry_delay(self, attempt: int, exc: BaseException) -> float | None:
        """Seconds to wait before trying a failed transaction again, None to give up. A dialect
        returns a delay only for failures that certainly left nothing applied."""
        return None

    def _run(self, work):
        """``work(cursor)`` in one transaction, committed; tried again (from its start, on a
        fresh transaction) while :meth:`_retry_delay` allows. A failed commit is never tried
        again: a commit whose answer was lost may have been applied."""
        attempt = 0
        while True:
            conn = None
            try:
                conn = self._checkout()
                result = work(conn.cursor())
            except Exception as exc:
                if conn is not None:
                    self._discard(conn, exc)
                delay = self._retry_delay(attempt, exc)
                if delay is None:
                    raise
                log.warning("jobs database %s: %s: %s; trying again in %.2f s (%d)", self.describe(),
                            type(exc).__name__, exc, delay, attempt + 1)
                time.sleep(delay)
                attempt += 1
                continue
            except BaseException as exc:
                if conn is not None:
                    self._discard(conn, exc)
                raise
            try:
                conn.commit()
            except BaseException as exc:
                self._discard(conn, exc)
                raise
            self._checkin(conn)
            return result

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def execute(self, sql: str, params: tuple = ()) -> int:
        def one(cur) -> int:
            cur.execute(self._sql(sql), params)
            return cur.rowcount
        return self._run(one)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """One statement over many rows, in one transaction (one commit, one sync of a journal)."""
        self._run(lambda cur: cur.executemany(self._sql(sql), rows))

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        def rows(cur) -> list[dict]:
            cur.execute(self._sql(sql), params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        return self._run(rows)

    def open_schema(self, create: bool = True) -> None:
        """Check that the tables are this version's; make or upgrade them only with ``create``
        (the client that submits jobs), so that a thousand array children each read one row
        and never race one another's DDL."""
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise NoSchema(f"the jobs database {self.describe()} has schema version {version}, newer than this"
                           f" tos2ca-batch's {SCHEMA_VERSION}: upgrade tos2ca-batch")
        if not create:
            found = "no tos2ca-batch tables" if version is None else f"schema version {version}, not {SCHEMA_VERSION}"
            raise NoSchema(f"the jobs database {self.describe()} has {found}; the command that submits a job"
                           " makes them (tos2ca-batch submit, run, aws submit, slurm submit or jobs)")
        self.make_schema()

    def schema_version(self) -> int | None:
        """The version the tables were made at; None when there are none."""
        try:
            rows = self.query("SELECT version FROM schema_version")
        except Exception as exc:
            if not self._no_tables(exc):
                raise
            return None
        return int(rows[0]["version"]) if rows else None

    def _no_tables(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        """``exc`` says the database or its tables do not exist."""
        raise NotImplementedError

    def make_schema(self) -> None:
        """Make the tables, or add what later versions added (idempotent)."""
        def tables(cur) -> None:
            for ddl in _TABLES:
                cur.execute(ddl.format(pk=self.pk))
            cur.execute("SELECT version FROM schema_version")
            if not cur.fetchall():
                cur.execute(self._sql("INSERT INTO schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))
        self._run(tables)
        for column, kind in (("jobUID", "VARCHAR(32)"), ("version", "INTEGER")):  # added by versions 2 and 3
            try:
                self.query(f"SELECT {column} FROM jobs WHERE 1 = 0")
            except Exception:
                self.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        self.execute("UPDATE schema_version SET version = ? WHERE version < ?", (SCHEMA_VERSION, SCHEMA_VERSION))

    # -- users and jobs -----------------------------------------------------------------------
    def user_id(self, email: str | None) -> int | None:
        if not email:
            return None
        self.execute(f"{self.insert_ignore} INTO users (email, createdTime) VALUES (?, ?)", (email, now_iso()))
        return self.query("SELECT userID FROM users WHERE email = ?", (email,))[0]["userID"]

    def create_job(self, raw_spec, status: str = "pending", sync_of: int | None = None) -> int:
        """Store a job row from a (possibly invalid) spec document; fields are stored literally.
        ``sync_of``: the row is a sync of that job (stage ``sync``, ``phdefJobID`` the job)."""
        spec = raw_spec if isinstance(raw_spec, dict) else {}

        def text(key, size=255):
            v = spec.get(key)
            return (v if isinstance(v, str) else (None if v is None else json.dumps(v)))[:size] if v is not None \
                else None

        def date(key):
            try:
                return parse_time(spec.get(key)).strftime("%Y%m%d%H%M")
            except ValueError:
                return text(key, 32)

        value = spec.get("value")
        try:  # stored literally in spec; the column only takes what fits a double
            value = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        except OverflowError:
            value = None
        phdef = spec.get("phdef_job") if sync_of is None else sync_of
        phdef = phdef if isinstance(phdef, int) and not isinstance(phdef, bool) and 0 < phdef < 2**31 else None
        email = spec.get("email")[:255] if isinstance(spec.get("email"), str) else None
        stage = "sync" if sync_of is not None else str(spec.get("stage", "phdef"))[:16]
        params = (
            self.user_id(email), stage, phdef, text("dataset"),
            text("variable"), text("polygon", 65535) or text("bbox"), date("start"), date("end"),
            text("operator", 32), value, json.dumps(raw_spec, sort_keys=True, default=str), status, now_iso(),
            uuid.uuid4().hex,
        )
        def insert(cur) -> int:
            cur.execute(self._sql(
                "INSERT INTO jobs (userID, stage, phdefJobID, dataset, variable, coords, startDate, endDate,"
                " ineqOperator, ineqValue, spec, status, submitTime, jobUID) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            ), params)
            return int(cur.lastrowid)
        return self._run(insert)

    def update_job(self, job_id: int, **fields) -> None:
        """Descriptive columns (phase, nChunks...); the status changes only by :meth:`transition`."""
        bad = set(fields) - set(JOB_COLUMNS) - {"worker", "leaseUntil"} | ({"status"} & set(fields))
        if bad:
            raise ValueError(f"unknown job columns {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE jobs SET {cols} WHERE jobID = ?", (*fields.values(), job_id))

    def job_uid(self, job_id: int) -> str:
        """The job's identity: a random UUID made with its row, so it never repeats when job ids do
        (a re-created database, two deployments sharing a store). Every stored artefact is keyed by it."""
        rows = self.query("SELECT jobUID FROM jobs WHERE jobID = ?", (job_id,))
        if not rows:
            raise KeyError(f"there is no job {job_id} in {self.describe()}")
        if rows[0]["jobUID"]:
            return rows[0]["jobUID"]
        # A row from schema version 1: give it an identity once (the first writer wins).
        self.execute("UPDATE jobs SET jobUID = ? WHERE jobID = ? AND jobUID IS NULL", (uuid.uuid4().hex, job_id))
        return self.query("SELECT jobUID FROM jobs WHERE jobID = ?", (job_id,))[0]["jobUID"]

    def transition(self, job_id: int, to: str, from_states: tuple[str, ...], **fields) -> bool:
        """Set ``status = to`` (and ``fields``) only if the job is in one of ``from_states``; True if
        it was. Two callers racing for the same change: exactly one gets True."""
        bad = set(fields) - set(JOB_COLUMNS) - {"worker", "leaseUntil"}
        if bad or to not in JOB_STATES or set(from_states) - set(JOB_STATES):
            raise ValueError(f"bad transition to {to!r} from {from_states} with {sorted(fields)}")
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
        marks = ", ".join("?" for _ in from_states)
        return self.execute(f"UPDATE jobs SET {sets} WHERE jobID = ? AND status IN ({marks})",
                            (to, *fields.values(), job_id, *from_states)) == 1

    def stage_complete(self, job_id: int, stage: str) -> bool:
        """Every chunk of ``stage`` of the job is complete (False when it has none)."""
        return set(self.chunk_counts(job_id).get(stage, {})) == {"complete"}

    def claim_phase(self, job_id: int, phase: str) -> bool:
        """Set a running job's ``phase`` unless it already is ``phase``: of two callers racing for
        the same step (the last two combinations of a sweep ending at once), exactly one gets True."""
        return self.execute("UPDATE jobs SET phase = ? WHERE jobID = ? AND status = 'running' AND"
                            " (phase IS NULL OR phase <> ?)", (phase, job_id, phase)) == 1

    def hold_job(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        """Set or renew the lease of a running job held by ``worker`` (or by nobody yet)."""
        return self.execute(
            "UPDATE jobs SET worker = ?, leaseUntil = ? WHERE jobID = ? AND status = 'running'"
            " AND (worker = ? OR worker IS NULL)", (worker, time.time() + lease_seconds, job_id, worker)) == 1

    def take_over_job(self, job_id: int, worker: str, lease_seconds: float, dead_worker: str | None = None) -> bool:
        """A ``failed`` or ``cancelled`` job, or a ``running`` one whose lease lapsed (or whose holder
        is ``dead_worker``), becomes ``running`` held by ``worker``."""
        now = time.time()
        return self.execute(
            "UPDATE jobs SET status = 'running', worker = ?, leaseUntil = ? WHERE jobID = ? AND"
            " (status IN ('failed', 'cancelled') OR (status = 'running' AND (leaseUntil IS NULL OR leaseUntil < ?"
            " OR worker = ?)))", (worker, now + lease_seconds, job_id, now, dead_worker or "")) == 1

    def user_email(self, user_id: int | None) -> str | None:
        rows = self.query("SELECT email FROM users WHERE userID = ?", (user_id,)) if user_id else []
        return rows[0]["email"] if rows else None

    def latest_job(self, stage: str) -> int | None:
        return self.query("SELECT MAX(jobID) AS j FROM jobs WHERE stage = ?", (stage,))[0]["j"]

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[dict]:
        """The newest jobs first (``status``: only those), without their spec documents."""
        columns = ("jobID, stage, phdefJobID, dataset, variable, startDate, endDate, ineqOperator, ineqValue, "
                   "status, phase, nChunks, submitTime, message")
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        return self.query(f"SELECT {columns} FROM jobs {where} ORDER BY jobID DESC LIMIT ?", (*params, int(limit)))

    def running_jobs_of(self, worker: str) -> list[int]:
        """The running jobs ``worker`` holds."""
        rows = self.query("SELECT jobID FROM jobs WHERE status = 'running' AND worker = ? ORDER BY jobID", (worker,))
        return [int(r["jobID"]) for r in rows]

    def get_job(self, job_id: int) -> dict | None:
        rows = self.query("SELECT * FROM jobs WHERE jobID = ?", (job_id,))
        return rows[0] if rows else None

    def claim_job(self, worker: str, lease_seconds: float) -> int | None:
        """Take the oldest pending job (or one whose worker's lease expired); None if none."""
        now = time.time()
        for row in self.query(
            "SELECT jobID FROM jobs WHERE status = 'pending' OR (status = 'running' AND leaseUntil < ?)"
            " ORDER BY jobID", (now,)
        ):
            n = self.execute(
                "UPDATE jobs SET status = 'running', worker = ?, leaseUntil = ? WHERE jobID = ? AND"
                " (status = 'pending' OR (status = 'running' AND leaseUntil < ?))",
                (worker, now + lease_seconds, row["jobID"], now),
            )
            if n == 1:
                return int(row["jobID"])
        return None

    # -- chunks ---------------------------------------------------------------------------------
    def add_chunks(self, job_id: int, stage: str, ranges: list[tuple[str, str]]) -> None:
        """One pending row per chunk (idempotent); ``ranges`` gives each chunk's first/last time."""
        self.add_stage_chunks(job_id, {stage: ranges})

    def add_stage_chunks(self, job_id: int, ranges: dict[str, list[tuple[str, str]]]) -> None:
        """:meth:`add_chunks` of several stages (stage -> ranges) in one transaction: a plan's rows
        in one commit, not one a stage (each a sync of the journal on a disk)."""
        self.executemany(
            f"{self.insert_ignore} INTO chunks (jobID, chunkID, stage, status, attempts, startDate, endDate)"
            " VALUES (?, ?, ?, 'pending', 0, ?, ?)",
            [(job_id, i, stage, a, b) for stage, rs in ranges.items() for i, (a, b) in enumerate(rs)])

    def claim_chunk(self, job_id: int, stage: str, chunk_id: int, worker: str, lease_seconds: float) -> str:
        """``claimed``, ``complete`` (nothing to do) or ``busy`` (another worker holds a live lease)."""
        now = time.time()
        n = self.execute(
            "UPDATE chunks SET status = 'running', attempts = attempts + 1, worker = ?, leaseUntil = ?,"
            " jobStart = ?, message = NULL WHERE jobID = ? AND stage = ? AND chunkID = ? AND"
            " (status IN ('pending', 'failed') OR (status = 'running' AND leaseUntil < ?))",
            (worker, now + lease_seconds, now_iso(), job_id, stage, chunk_id, now),
        )
        if n == 1:
            return "claimed"
        rows = self.query(
            "SELECT status FROM chunks WHERE jobID = ? AND stage = ? AND chunkID = ?", (job_id, stage, chunk_id)
        )
        if not rows:
            raise KeyError(f"job {job_id} has no {stage} chunk {chunk_id}")
        return "complete" if rows[0]["status"] == "complete" else "busy"

    def chunk_holder(self, job_id: int, stage: str, chunk_id: int) -> str | None:
        """The worker holding a running chunk (None when it is not running)."""
        rows = self.query("SELECT worker FROM chunks WHERE jobID = ? AND stage = ? AND chunkID = ? AND"
                          " status = 'running'", (job_id, stage, chunk_id))
        return rows[0]["worker"] if rows else None

    def renew_lease(self, job_id: int, stage: str, chunk_id: int, worker: str, lease_seconds: float) -> None:
        self.execute(
            "UPDATE chunks SET leaseUntil = ? WHERE jobID = ? AND stage = ? AND chunkID = ? AND worker = ?",
            (time.time() + lease_seconds, job_id, stage, chunk_id, worker),
        )

    def finish_chunk(self, job_id: int, stage: str, chunk_id: int, status: str, message: str | None = None) -> None:
        self.execute(
            "UPDATE chunks SET status = ?, jobEnd = ?, message = ?, leaseUntil = NULL"
            " WHERE jobID = ? AND stage = ? AND chunkID = ?",
            (status, now_iso(), message, job_id, stage, chunk_id),
        )

    def release_chunks(self, job_id: int, workers: list[str] | None = None) -> int:
        """Running chunks of the job (of ``workers`` only, if given) back to ``pending``."""
        sql = "UPDATE chunks SET status = 'pending', leaseUntil = NULL WHERE jobID = ? AND status = 'running'"
        if workers is None:
            return self.execute(sql, (job_id,))
        return sum(self.execute(sql + " AND worker = ?", (job_id, w)) for w in workers)

    def reset_chunks(self, job_id: int, stage: str, chunk_ids: list[int]) -> None:
        """These chunks must run again (their outputs are gone): ``pending``."""
        self.executemany(
            "UPDATE chunks SET status = 'pending', leaseUntil = NULL, message = ? WHERE jobID = ? AND"
            " stage = ? AND chunkID = ?", [("outputs lost; to run again", job_id, stage, c) for c in chunk_ids])

    def chunks(self, job_id: int, stage: str | None = None) -> list[dict]:
        if stage is None:
            return self.query("SELECT * FROM chunks WHERE jobID = ? ORDER BY stage, chunkID", (job_id,))
        return self.query(
            "SELECT * FROM chunks WHERE jobID = ? AND stage = ? ORDER BY chunkID", (job_id, stage)
        )

    def chunk_counts(self, job_id: int) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self.query(
            "SELECT stage, status, COUNT(*) AS n FROM chunks WHERE jobID = ? GROUP BY stage, status", (job_id,)
        ):
            out.setdefault(row["stage"], {})[row["status"]] = int(row["n"])
        return out

    # -- outputs --------------------------------------------------------------------------------
    def add_output(self, job_id: int, location: str, kind: str, start: str | None) -> None:
        self.execute(
            f"{self.insert_ignore} INTO outputs (jobID, location, type, startDateTime) VALUES (?, ?, ?, ?)",
            (job_id, location, kind, start),
        )

    def move_outputs(self, from_job: int, to_job: int) -> int:
        """A sync's output rows become the job's it extended (when it commits)."""
        return self.execute("UPDATE outputs SET jobID = ? WHERE jobID = ?", (to_job, from_job))

    def outputs(self, job_id: int) -> list[dict]:
        return self.query("SELECT * FROM outputs WHERE jobID = ? ORDER BY location", (job_id,))

    # -- syncs (standing jobs) ------------------------------------------------------------------
    def ensure_sync(self, job_id: int) -> None:
        """A job's sync row (no schedule: synced on demand) if it has none."""
        self.execute(f"{self.insert_ignore} INTO syncs (jobID) VALUES (?)", (job_id,))

    def update_sync(self, job_id: int, **fields) -> None:
        bad = set(fields) - set(SYNC_COLUMNS)
        if bad:
            raise ValueError(f"unknown sync columns {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE syncs SET {cols} WHERE jobID = ?", (*fields.values(), job_id))

    def get_sync(self, job_id: int) -> dict | None:
        rows = self.query("SELECT * FROM syncs WHERE jobID = ?", (job_id,))
        return rows[0] if rows else None

    def syncs(self) -> list[dict]:
        return self.query("SELECT * FROM syncs ORDER BY jobID")

    def due_syncs(self, now: float) -> list[int]:
        """Scheduled syncs whose time has come (a sync whose holder died stays due: it is finished)."""
        rows = self.query("SELECT jobID FROM syncs WHERE schedule IS NOT NULL AND nextDue <= ? ORDER BY jobID",
                          (now,))
        return [int(r["jobID"]) for r in rows]

    def claim_sync(self, job_id: int, worker: str, lease_seconds: float, due_by: float | None = None,
                   dead_worker: str | None = None) -> bool:
        """Hold a job's sync (one conditional UPDATE: two callers never both get it) if nobody
        holds it, its lease lapsed or its holder is ``dead_worker``; with ``due_by``, only if
        it is due by then (a caller that comes after another finished it finds it not due)."""
        now = time.time()
        due = " AND nextDue <= ?" if due_by is not None else ""
        return self.execute(
            "UPDATE syncs SET worker = ?, leaseUntil = ? WHERE jobID = ? AND (worker IS NULL OR leaseUntil IS NULL"
            f" OR leaseUntil < ? OR worker = ?){due}",
            (worker, now + lease_seconds, job_id, now, dead_worker or "", *(() if due_by is None else (due_by,))),
        ) == 1

    def hold_sync(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        return self.execute("UPDATE syncs SET leaseUntil = ? WHERE jobID = ? AND worker = ?",
                            (time.time() + lease_seconds, job_id, worker)) == 1

    def release_sync(self, job_id: int, worker: str, **fields) -> None:
        """Let go of a held sync, recording ``fields`` (its outcome, the next due time)."""
        bad = set(fields) - set(SYNC_COLUMNS)
        if bad:
            raise ValueError(f"unknown sync columns {sorted(bad)}")
        sets = ", ".join(["worker = NULL", "leaseUntil = NULL", *(f"{k} = ?" for k in fields)])
        self.execute(f"UPDATE syncs SET {sets} WHERE jobID = ? AND worker = ?", (*fields.values(), job_id, worker))
