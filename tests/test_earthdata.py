"""NASA Earthdata access through earthaccess: a dataset of an archive's bucket read with the
DAAC's temporary S3 credentials (in region) or over HTTPS with the Earthdata token (elsewhere),
and refused at plan, saying what to set, without a login.

No Earthdata endpoint is reachable here, so the archive is played on loopback over real TLS (a
certificate made for the test, trusted through REQUESTS_CA_BUNDLE): ``/s3credentials`` answers
a bearer token with credentials as the DAACs' endpoints do, ``/data/<key>`` answers with a
redirect to a signed address that serves byte ranges, like the archives' CloudFront. The bucket
itself is moto's. Every job runs as a CLI process, as a user runs it, and equals the same job on
the local files."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from helpers import assert_same_outputs, local_outputs, run_job

from tos2ca_batch.synth import synthesize

TOKEN = "edl-token-for-tests"
SPEC = {"stage": "phdef", "dataset": "GPM_ED", "variable": "precipitation", "operator": "greaterThan",
        "value": 10.0, "start": "2020-01-04T00:00", "end": "2020-01-04T02:30", "bbox": [-180.0, -60.0, 180.0, 60.0],
        "tracking": {"min_size": 5}, "chunking": {"block_steps": 3}}


class Archive(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, port: int = 0):
        super().__init__(("127.0.0.1", port), ArchiveHandler)
        self.folder = folder
        self.calls: dict[str, int] = {}
        self.bytes_served = 0


class ArchiveHandler(BaseHTTPRequestHandler):
    server: Archive

    def log_message(self, *args) -> None:
        pass

    def _count(self, what: str) -> None:
        self.server.calls[what] = self.server.calls.get(what, 0) + 1

    def _reply(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - Earthdata Login's token endpoint (on its own host)
        import base64

        if self.path != "/api/users/find_or_create_token":
            return self._reply(404)
        self._count("token")
        given = self.headers.get("Authorization", "")
        if given != "Basic " + base64.b64encode(b"alice:secret").decode():
            return self._reply(401, b"HTTP Basic: Access denied.")
        doc = {"access_token": TOKEN, "token_type": "Bearer", "expiration_date": "12/31/2099"}
        return self._reply(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        bearer = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        if self.path == "/s3credentials":
            self._count("s3credentials")
            if not bearer:
                return self._reply(401, b"log in to Earthdata")
            expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
            doc = {"accessKeyId": "ASIAEARTHDATA", "secretAccessKey": "secret", "sessionToken": "session",
                   "expiration": expires}
            return self._reply(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if self.path.startswith("/data/"):
            self._count("data")
            if not bearer:
                return self._reply(401, b"log in to Earthdata")
            return self._reply(302, headers={"Location": "/signed/" + self.path[len("/data/"):] + "?sig=1"})
        if self.path.startswith("/signed/"):
            self._count("signed")
            path = self.server.folder / self.path[len("/signed/"):].split("?")[0]
            if not path.is_file():
                return self._reply(404, b"no such key")
            data = path.read_bytes()
            wanted = self.headers.get("Range")
            if wanted:
                self._count("ranged")
                a, b = (int(x) for x in wanted.split("=")[1].split("-"))
                body = data[a:b + 1]
                self.server.bytes_served += len(body)
                return self._reply(206, body, {"Content-Range": f"bytes {a}-{a + len(body) - 1}/{len(data)}"})
            self.server.bytes_served += len(data)
            return self._reply(200, data)
        return self._reply(404)


@pytest.fixture
def archive(aws, tmp_path):
    """The archive on loopback TLS, its files in a moto bucket, a catalog entry with its
    ``earthdata`` block, and the local files' catalog to compare with."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    data = tmp_path / "data"
    local_catalog = synthesize("imerg", data, datetime(2020, 1, 4), datetime(2020, 1, 4, 2, 30), res=2.0)
    server = serve(Archive(data), cert, key)
    bucket = f"gesdisc-test-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for f in sorted(data.rglob("*")):
        if f.is_file() and not f.name.endswith(".json"):
            s3.upload_file(str(f), bucket, str(f.relative_to(data)))
    entry = dict(json.loads(local_catalog.read_text())["GPM_3IMERGHH"])
    entry["location"] = f"s3://{bucket}/" + entry["location"]  # relative to the catalog's folder, data/
    entry["earthdata"] = {"s3credentials": f"https://127.0.0.1:{server.server_port}/s3credentials",
                          "https": f"https://127.0.0.1:{server.server_port}/data"}
    catalog = tmp_path / "archive.json"
    catalog.write_text(json.dumps({"GPM_ED": entry}))
    local = dict(entry, location=str(data / json.loads(local_catalog.read_text())["GPM_3IMERGHH"]["location"]))
    local.pop("earthdata")
    local_catalog = tmp_path / "local.json"  # the same dataset's name (plots and the report show it)
    local_catalog.write_text(json.dumps({"GPM_ED": local}))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    yield {"server": server, "cert": cert, "key": key, "catalog": catalog, "local_catalog": local_catalog,
           "spec": spec, "bucket": bucket}
    server.shutdown()


def serve(server: Archive, cert: Path, key: Path) -> Archive:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_cli(setup, tmp_path, name: str, **env) -> tuple[subprocess.CompletedProcess, dict]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EARTHDATA_", "TOS2CA_"))}
    environ.update({"REQUESTS_CA_BUNDLE": str(setup["cert"]), "NETRC": str(tmp_path / "no-netrc"), **env})
    p = subprocess.run([sys.executable, "-m", "tos2ca_batch", "run", str(setup["spec"]), "--catalog",
                        str(setup["catalog"]), "--workdir", str(tmp_path / name), "--workers", "1"],
                       env=environ, capture_output=True, text=True, timeout=300)
    assert p.stdout.strip(), p.stderr[-3000:]
    return p, json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("access", ["https", "s3"])
def test_an_archive_dataset_is_read_with_the_earthdata_login_and_equals_the_local_files(archive, tmp_path, access):
    server = archive["server"]
    p, res = run_cli(archive, tmp_path, access, EARTHDATA_TOKEN=TOKEN, TOS2CA_EARTHDATA_ACCESS=access)
    assert p.returncode == 0 and res["status"] == "complete", (res, p.stderr[-3000:])
    if access == "https":  # byte ranges over HTTPS with the token, through the archive's redirect
        assert server.calls.get("data", 0) >= 6 and server.calls.get("ranged", 0) >= 6, server.calls
        assert "s3credentials" not in server.calls
        assert server.calls["signed"] == server.calls["ranged"]  # only byte ranges, never whole objects
    else:  # the DAAC's temporary credentials, fetched once by this one process, then S3 itself
        assert server.calls == {"s3credentials": 1}, server.calls
    _, alone = run_job(tmp_path / "local", SPEC, archive["local_catalog"])
    assert_same_outputs(local_outputs(alone, tmp_path), local_outputs(res, tmp_path))


def test_without_an_earthdata_login_a_job_fails_at_plan_saying_what_to_set(archive, tmp_path):
    for access in ("https", "s3"):
        p, res = run_cli(archive, tmp_path, f"none-{access}", TOS2CA_EARTHDATA_ACCESS=access)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
        assert res["status"] == "failed", res
        message = res["message"]
        assert message.startswith("plan: ") and "EARTHDATA_TOKEN" in message and "EARTHDATA_USERNAME" in message
        assert ".netrc" in message and "urs.earthdata.nasa.gov" in message, message
    p, res = run_cli(archive, tmp_path, "wrong-token", EARTHDATA_TOKEN="not-mine", TOS2CA_EARTHDATA_ACCESS="https")
    assert res["status"] == "failed" and "HTTP 401" in res["message"] and "Traceback" not in p.stderr, res


def test_a_netrc_login_gets_its_token_from_earthdata_login_and_reads_over_https(archive, tmp_path):
    """The netrc strategy: earthaccess posts the user's name and password (HTTP Basic, sent when
    the login host asks) to Earthdata Login's token endpoint, then reads with the token. earthaccess
    names the login host without a port, so this one is played on localhost:443 (the archive
    stays on 127.0.0.1:<port>, another host, as the archives are)."""
    login = serve(Archive(tmp_path, port=443), archive["cert"], archive["key"])
    try:
        netrc = tmp_path / "netrc-file"
        netrc.write_text("machine localhost login alice password secret\n")
        netrc.chmod(0o600)
        p, res = run_cli(archive, tmp_path, "netrc", NETRC=str(netrc), TOS2CA_EARTHDATA_HOST="localhost",
                         TOS2CA_EARTHDATA_ACCESS="https")
        assert p.returncode == 0 and res["status"] == "complete", (res, p.stderr[-3000:])
        assert login.calls == {"token": 2}, login.calls  # asked without, then with the user's password
        assert archive["server"].calls.get("ranged", 0) >= 6
        netrc.write_text("machine localhost login alice password wrong\n")
        p, res = run_cli(archive, tmp_path, "netrc-wrong", NETRC=str(netrc), TOS2CA_EARTHDATA_HOST="localhost",
                         TOS2CA_EARTHDATA_ACCESS="https")
        assert res["status"] == "failed" and "refused the netrc credentials" in res["message"], res
        assert "Traceback" not in p.stderr and "wrong" not in res["message"]
    finally:
        login.shutdown()


def test_the_tasks_of_a_job_share_one_fetch_of_the_archive_credentials(archive, tmp_path):
    """Every task a process of its own, as array children run: the plan task fetches the DAAC's
    credentials and leaves them in the job's chunk store; the map children use them. A copy about
    to lapse is renewed by the first task that finds it so, once, for the rest."""
    from tos2ca_batch.config import Config
    from tos2ca_batch.plans import load_plan

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EARTHDATA_", "TOS2CA_"))}
    environ.update(REQUESTS_CA_BUNDLE=str(archive["cert"]), NETRC=str(tmp_path / "no-netrc"), EARTHDATA_TOKEN=TOKEN,
                   TOS2CA_EARTHDATA_ACCESS="s3", TOS2CA_CATALOG=str(archive["catalog"]))
    work = str(tmp_path / "w")
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps(dict(SPEC, chunking={"block_steps": 2})))

    def cli(*args) -> None:
        p = subprocess.run([sys.executable, "-m", "tos2ca_batch", *args, "--workdir", work], env=environ,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (args, p.stdout, p.stderr[-3000:])

    cli("submit", str(spec))
    cli("task", "plan", "--job", "1")
    server = archive["server"]
    assert server.calls == {"s3credentials": 1}, server.calls
    cfg = Config.from_env(work)
    store = cfg.store(1)
    [name] = [k.split(":")[2] for k in store.blobs.keys() if k.startswith("job:0:earthdata-")]
    stages = load_plan(store).stages()
    assert stages[0] == "map" and len(cfg.db().chunks(1, "map")) == 3
    for stage in stages:
        for row in cfg.db().chunks(1, stage):
            if stage == "map" and row["chunkID"] == 1:  # the shared copy now lapses in two minutes
                doc = store.get_shared(name)
                store.put_shared(name, dict(doc, expiry=datetime.now(UTC).timestamp() + 120))
            cli("task", stage, "--job", "1", "--chunk", str(row["chunkID"]))
            if stage == "map":
                assert server.calls == {"s3credentials": 1 if row["chunkID"] == 0 else 2}, (row, server.calls)
    assert cfg.db().get_job(1)["status"] == "complete"
    assert not [k for k in store.blobs.keys() if "earthdata" in k], "the credentials outlived the job"
    outputs = [o["location"] for o in cfg.db().outputs(1)]
    _, alone = run_job(tmp_path / "local", dict(SPEC, chunking={"block_steps": 2}), archive["local_catalog"])
    assert_same_outputs(local_outputs(alone, tmp_path), local_outputs({"job_id": 1, "outputs": outputs}, tmp_path))
