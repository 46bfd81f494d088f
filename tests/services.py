"""Real services for the tests: MariaDB and Redis on this machine, moto_server and an SMTP
server started on loopback. Without a service the test skips with a message, unless
``TOS2CA_REQUIRE_SERVICES=1`` (CI), where a missing service fails the run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

REQUIRE = os.environ.get("TOS2CA_REQUIRE_SERVICES") == "1"
MYSQL_ROOT = os.environ.get("TOS2CA_TEST_MYSQL", "mysql://root:@127.0.0.1:3306")
REDIS_URL = os.environ.get("TOS2CA_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(what: str, exc: BaseException):
    msg = f"{what} is not available: {type(exc).__name__}: {exc}"
    if REQUIRE:
        pytest.fail(msg + " (TOS2CA_REQUIRE_SERVICES=1)")
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mysql_url():
    """A fresh database on the real MariaDB server, dropped afterwards."""
    try:
        from urllib.parse import urlparse

        import pymysql

        u = urlparse(MYSQL_ROOT)
        pymysql.connect(host=u.hostname, port=u.port, user=u.username, password=u.password or "",
                        connect_timeout=5).close()
    except Exception as exc:
        unavailable("MariaDB/MySQL at " + MYSQL_ROOT.split("@")[-1], exc)
    name = f"tos2ca_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = f"{MYSQL_ROOT}/{name}"
    yield url
    from tos2ca_batch.stores.mysql import MySQLJobsDB

    MySQLJobsDB(url).drop_database()


@pytest.fixture
def redis_namespace(monkeypatch):
    """Redis URL and a key namespace of its own; every key of it is deleted afterwards."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        client.ping()
    except Exception as exc:
        unavailable("Redis at " + REDIS_URL, exc)
    ns = f"tos2ca-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("TOS2CA_REDIS_PREFIX", ns)
    yield REDIS_URL, ns, client
    keys = list(client.scan_iter(f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """moto_server (S3, Secrets Manager, SES, Batch) on a loopback port for this session; its
    request recorder (``/moto-api/recorder/``) writes into a temp dir, never the checkout."""
    try:
        import moto.server  # noqa: F401
    except Exception as exc:
        unavailable("moto_server", exc)
    port = free_port()
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        unavailable("moto_server", TimeoutError("did not start"))
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """AWS clients pointed at moto through AWS_ENDPOINT_URL, as production code sees it."""
    for k, v in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    from tos2ca_batch.stores.objectstore import _client

    _client.cache_clear()
    return moto_endpoint


@pytest.fixture
def bucket(aws):
    import boto3

    name = f"tos2ca-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def smtp_server():
    """An aiosmtpd server on loopback; yields (url, received messages)."""
    try:
        from aiosmtpd.controller import Controller
    except Exception as exc:
        unavailable("aiosmtpd", exc)
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                             "data": envelope.content.decode("utf8", "replace")})
            return "250 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    yield f"smtp://127.0.0.1:{port}", received
    ctl.stop()


@pytest.fixture
def mysql_user(mysql_url):
    """A MySQL user with a random password on the test database: (user, password, dbname)."""
    import pymysql

    password = f"Pw-{uuid.uuid4().hex}"
    user = f"t2c_{uuid.uuid4().hex[:8]}"
    dbname = mysql_url.rsplit("/", 1)[1]
    root = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL ON `{dbname}`.* TO '{user}'@'%'")
    root.commit()
    yield user, password, dbname
    with root.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    root.commit()
    root.close()
