"""MySQL/MariaDB jobs store (TOS2CA's production database) through pymysql.

The SQL is the shared SQL of :class:`JobsDB`; only placeholders, the auto-increment key and
``INSERT IGNORE`` differ. The client that submits jobs creates the database named in the URL
and its tables when missing; array children only check the schema version.
"""

from __future__ import annotations

import os
import random
import threading
from urllib.parse import unquote

from tos2ca_batch.stores.jobsdb import JobsDB


def parse_mysql_url(url: str) -> dict:
    """``mysql://user:password@host:port/db`` into its parts, whatever the password holds (``#``,
    ``/``, ``@``, ``:``; percent-encoded or not). Errors name the part, never the password."""
    if not url.startswith("mysql://"):
        raise ValueError("TOS2CA_DB_URL must start with mysql://")
    rest = url[len("mysql://"):]
    userinfo, at, hostpart = rest.rpartition("@")  # the last @: a password may hold one
    if not at:
        userinfo, hostpart = "", rest
    user, _, password = userinfo.partition(":")
    hostport, _, database = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"TOS2CA_DB_URL: the port after host {host!r} must be a number")
    return {"host": host or "127.0.0.1", "port": int(port) if port else 3306, "user": unquote(user or "root"),
            "password": unquote(password), "database": database.split("?")[0] or "tos2ca"}


# Failures after which a transaction certainly left nothing applied, so it may start again:
# the connection could not be made or was lost before the commit (the server rolls an open
# transaction back when its connection goes), or the server rolled it back itself.
RETRYABLE_CODES = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1203,  # the user has more than max_user_connections
    1205,  # lock wait timeout (the transaction is rolled back below)
    1213,  # deadlock: the server rolled the transaction back
    1927,  # connection killed (MariaDB)
    2003,  # cannot connect
    2006,  # server has gone away
    2013,  # connection lost
    2055,  # connection lost (system error)
    4031,  # disconnected by the server for inactivity (MySQL 8)
}
CONNECTION_LOST = RETRYABLE_CODES - {1040, 1203, 1205, 1213}


class MySQLJobsDB(JobsDB):
    """One connection per process, kept and shared by its threads under a lock: a task opens one
    connection, not one per statement (a thousand containers opening ~5 each were the server's
    load). Transactions that failed without effect are tried again after a jittered, growing
    pause (full jitter: a thousand children cut off at once do not come back at once)."""

    placeholder = "%s"
    pk = "INTEGER PRIMARY KEY AUTO_INCREMENT"
    insert_ignore = "INSERT IGNORE"
    attempts = 8  # tries of one transaction: waits of up to 0.2, 0.4, ... 10 s between them
    backoff_first, backoff_cap = 0.2, 10.0

    def __init__(self, url: str, create: bool = True):
        parts = parse_mysql_url(url)
        self.database = parts.pop("database")
        self._params = dict(parts, charset="utf8mb4", autocommit=False, connect_timeout=10)
        if not self.database.replace("_", "").isalnum():
            raise ValueError("TOS2CA_DB_URL: the database name may hold letters, digits and _ only")
        self._fresh_process()
        self.open_schema(create)

    def _fresh_process(self) -> None:
        """The lock and connection of this process (a forked child makes its own; it leaves the
        inherited socket alone, as closing it would end the parent's session)."""
        self._pid, self._lock, self._conn = os.getpid(), threading.RLock(), None

    def _connect(self):
        import pymysql

        return pymysql.connect(database=self.database, **self._params)

    def _checkout(self):
        if self._pid != os.getpid():
            self._fresh_process()
        self._lock.acquire()
        try:
            if self._conn is None:
                self._conn = self._connect()
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def _checkin(self, conn) -> None:
        self._lock.release()

    def _discard(self, conn, exc: BaseException) -> None:
        try:
            if _code(exc) in CONNECTION_LOST or not conn.open:
                self._conn = None  # lost or unusable: the next transaction connects again
                if conn.open:
                    conn.close()
            else:
                conn.rollback()
        except Exception:
            self._conn = None
        finally:
            self._lock.release()

    def _retry_delay(self, attempt: int, exc: BaseException) -> float | None:
        if _code(exc) not in RETRYABLE_CODES or attempt + 1 >= self.attempts:
            return None
        return random.uniform(0, min(self.backoff_cap, self.backoff_first * 2**attempt))

    def _no_tables(self, exc: BaseException) -> bool:
        return _code(exc) in (1049, 1146)  # unknown database, no such table

    def make_schema(self) -> None:
        self._server_execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4")
        super().make_schema()

    def _server_execute(self, sql: str) -> None:
        """A statement on the server, outside any database (the name was checked above)."""
        import pymysql

        conn = pymysql.connect(**self._params)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_conn")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fresh_process()

    def describe(self) -> str:
        return f"mysql://{self._params['host']}:{self._params['port']}/{self.database}"

    def drop_database(self) -> None:
        """For tests: remove this database entirely."""
        self._server_execute(f"DROP DATABASE IF EXISTS `{self.database}`")


def _code(exc: BaseException) -> int | None:
    """pymysql's error number (``OperationalError(2013, ...)``), None for anything else."""
    import pymysql

    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None
