"""The MySQL jobs store as a thousand array children meet it, on the real MariaDB: one kept
connection per task, transactions tried again after failures that left nothing applied (a
killed connection, connections refused for a while) with jittered waits, and the schema made
by the client only."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from datetime import datetime

import numpy as np
import pymysql
import pytest
from helpers import write_cube
from services import MYSQL_ROOT, free_port, mysql_url  # noqa: F401 - fixture

from tos2ca_batch.stores import NoSchema
from tos2ca_batch.stores.jobsdb import SCHEMA_VERSION
from tos2ca_batch.stores.mysql import MySQLJobsDB

SPEC = {"stage": "phdef", "dataset": "CUBE", "variable": "v", "operator": "greaterThan", "value": 10.0,
        "start": "2020-01-01T00:00", "end": "2020-01-01T01:30", "bbox": [0.0, 0.0, 11.0, 9.0],
        "tracking": {"min_size": 2}, "chunking": {"block_steps": 2, "tile": [5, 12]}}


def root():
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def status(conn, name: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        return int(cur.fetchone()[1])


def database_exists(name: str) -> bool:
    with root() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (name,))
        return cur.fetchone() is not None


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "tos2ca_batch", *args], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)


def test_a_task_opens_one_connection_and_runs_no_schema_statement(tmp_path, mysql_url):  # noqa: F811
    values = np.random.default_rng(2).uniform(0, 20, (4, 10, 12)).astype(np.float32)
    cube = write_cube(tmp_path / "data", "CUBE", values, np.arange(10.0), np.arange(12.0), datetime(2020, 1, 1))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    # a short lease: the lease keeper renews every 0.5 s beside the task, on the same connection
    env = {"TOS2CA_CATALOG": str(cube), "TOS2CA_DB_URL": mysql_url, "TOS2CA_LEASE_SECONDS": "1.5"}
    work = str(tmp_path / "w")
    assert cli("submit", str(spec), "--workdir", work, env=env).returncode == 0  # the client makes the tables
    assert cli("task", "plan", "--job", "1", "--workdir", work, env=env).returncode == 0
    watcher = root()
    for stage, chunks in (("map", 4), ("reduce", 1)):
        for chunk in range(chunks):
            before = {k: status(watcher, k) for k in ("Connections", "Com_create_table", "Com_alter_table")}
            p = cli("task", stage, "--job", "1", "--chunk", str(chunk), "--workdir", work, env=env)
            assert p.returncode == 0 and '"done"' in p.stdout, p.stderr
            after = {k: status(watcher, k) for k in before}
            assert after["Connections"] - before["Connections"] == 1, (stage, chunk, before, after)
            assert after["Com_create_table"] == before["Com_create_table"]
            assert after["Com_alter_table"] == before["Com_alter_table"]
    watcher.close()


def test_a_killed_connection_is_replaced_and_the_transaction_tried_again(mysql_url, caplog):  # noqa: F811
    db = MySQLJobsDB(mysql_url)
    first = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    assert db.query("SELECT CONNECTION_ID() AS id")[0]["id"] == first, "one connection is kept"
    with root() as conn, conn.cursor() as cur:
        cur.execute(f"KILL {int(first)}")  # what a failover, a proxy or wait_timeout does to an idle one
    with caplog.at_level(logging.WARNING, logger="tos2ca_batch"):
        job = db.create_job({"stage": "phdef", "dataset": "D"})
    assert db.get_job(job)["dataset"] == "D"
    assert db.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 1, "the retried insert was applied once"
    assert db.query("SELECT CONNECTION_ID() AS id")[0]["id"] != first
    assert [r for r in caplog.records if "trying again" in r.getMessage()]


class RefusingProxy:
    """Forwards TCP to MariaDB, but drops the first ``refuse`` connections at once (a server at its
    connection limit or restarting): the client sees its connection lost during the handshake."""

    def __init__(self, refuse: int):
        self.refuse, self.seen = refuse, 0
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.seen += 1
            if self.seen <= self.refuse:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", 3306))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_refused_connections_are_tried_again_then_given_up_with_the_error(caplog, monkeypatch):
    assert MYSQL_ROOT.startswith("mysql://root:@127.0.0.1:3306")
    name = f"tos2ca_test_{uuid.uuid4().hex[:8]}"
    proxy = RefusingProxy(refuse=3)
    try:
        with caplog.at_level(logging.WARNING, logger="tos2ca_batch"):
            db = MySQLJobsDB(f"mysql://root:@127.0.0.1:{proxy.port}/{name}")
        # 3 dropped, 1 that found no database, 1 for CREATE DATABASE, then the kept one
        assert db.schema_version() == SCHEMA_VERSION and proxy.seen == 6
        retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
        assert len(retries) == 3 and all("2013" in m for m in retries), retries
        db.drop_database()
    finally:
        proxy.close()
    # A server that stays away: the transaction is given up after `attempts`, with its error.
    always = RefusingProxy(refuse=10**6)
    monkeypatch.setattr(MySQLJobsDB, "attempts", 3)
    monkeypatch.setattr(MySQLJobsDB, "backoff_first", 0.01)
    try:
        with pytest.raises(pymysql.err.OperationalError) as err:
            MySQLJobsDB(f"mysql://root:@127.0.0.1:{always.port}/{name}")
        assert err.value.args[0] == 2013 and always.seen == 3
    finally:
        always.close()
    assert not database_exists(name)


def test_waits_grow_with_full_jitter_and_only_harmless_failures_are_retried(mysql_url):  # noqa: F811
    db = MySQLJobsDB(mysql_url)
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    for attempt in range(db.attempts - 1):
        waits = [db._retry_delay(attempt, lost) for _ in range(200)]
        bound = min(db.backoff_cap, db.backoff_first * 2**attempt)
        assert all(0 <= w <= bound for w in waits) and len(set(waits)) > 100  # spread, not in step
    assert db._retry_delay(db.attempts - 1, lost) is None, "the last attempt is the last"
    deadlock = pymysql.err.OperationalError(1213, "Deadlock found")
    assert db._retry_delay(0, deadlock) is not None
    for final in (pymysql.err.OperationalError(1045, "Access denied"), pymysql.err.IntegrityError(1062, "dup"),
                  pymysql.err.ProgrammingError(1064, "syntax"), ValueError("not the database's")):
        assert db._retry_delay(0, final) is None
    # A failing statement that is not the connection's fault keeps the connection.
    kept = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    with pytest.raises(pymysql.err.ProgrammingError):
        db.query("SELECT nothing FROM nowhere")
    assert db.query("SELECT CONNECTION_ID() AS id")[0]["id"] == kept


def test_a_child_never_makes_the_schema(tmp_path, mysql_url):  # noqa: F811
    name = f"tos2ca_test_{uuid.uuid4().hex[:8]}"
    url = f"{MYSQL_ROOT}/{name}"
    with pytest.raises(NoSchema, match="no tos2ca-batch tables; the command that submits a job makes them"):
        MySQLJobsDB(url, create=False)
    p = cli("task", "map", "--job", "1", "--workdir", str(tmp_path / "w"), env={"TOS2CA_DB_URL": url})
    assert p.returncode == 1 and "no such job" in p.stdout and "no tos2ca-batch tables" in p.stdout, p.stdout
    assert not database_exists(name), "a child created the database"
    # tables made by a newer tos2ca-batch are refused, by the client too, and left alone
    db = MySQLJobsDB(mysql_url)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    for create in (False, True):
        with pytest.raises(NoSchema, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
            MySQLJobsDB(mysql_url, create)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    assert MySQLJobsDB(mysql_url, create=False).schema_version() == SCHEMA_VERSION
