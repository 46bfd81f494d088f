"""MySQL/MariaDB jobs store (TOS2CA's production database) through pymysql.

The SQL is the shared SQL of :class:`JobsDB`; only placeholders, the auto-increment key and
``INSERT IGNORE`` differ. The database named in the URL is created if missing.
"""

from __future__ import annotations

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


class MySQLJobsDB(JobsDB):
    placeholder = "%s"
    pk = "INTEGER PRIMARY KEY AUTO_INCREMENT"
    insert_ignore = "INSERT IGNORE"

    def __init__(self, url: str):
        parts = parse_mysql_url(url)
        self.database = parts.pop("database")
        self._params = dict(parts, charset="utf8mb4", autocommit=False, connect_timeout=10)
        if not self.database.replace("_", "").isalnum():
            raise ValueError("TOS2CA_DB_URL: the database name may hold letters, digits and _ only")
        self._server_execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4")
        self.init_schema()

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

    def _connect(self):
        import pymysql

        return pymysql.connect(database=self.database, **self._params)

    def describe(self) -> str:
        return f"mysql://{self._params['host']}:{self._params['port']}/{self.database}"

    def drop_database(self) -> None:
        """For tests: remove this database entirely."""
        self._server_execute(f"DROP DATABASE IF EXISTS `{self.database}`")
