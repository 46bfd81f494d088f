"""Where published files go: a local folder (default) or ``s3://bucket/J/`` via boto3.

Each file is written to a temporary name and renamed (local) or sent as one PUT (S3), so a
reader never sees half a file and a task that is killed can simply run again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def read_bytes(url: str) -> bytes:
    bucket, key = split_s3(url)
    return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def exists(url_or_path: str) -> bool:
    if url_or_path.startswith("s3://"):
        bucket, key = split_s3(url_or_path)
        try:
            _s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except Exception:
            return False
    return os.path.exists(url_or_path)


class OutputStore:
    """Publishes finished local files under the job's output prefix; returns their location."""

    def __init__(self, prefix: str):
        self.prefix = prefix.rstrip("/")

    def location(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put(self, local_path: str | Path, name: str) -> str:
        raise NotImplementedError


class LocalOutputStore(OutputStore):
    def put(self, local_path, name):
        dest = Path(self.location(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name("." + dest.name + ".part")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, dest)
        return str(dest)


class S3OutputStore(OutputStore):
    def put(self, local_path, name):
        bucket, key = split_s3(self.location(name))
        with open(local_path, "rb") as f:
            _s3_client().put_object(Bucket=bucket, Key=key, Body=f.read())
        return self.location(name)


def open_output_store(url: str | None, workdir: str | Path, job_id: int) -> OutputStore:
    if url and url.startswith("s3://"):
        return S3OutputStore(f"{url.rstrip('/')}/{job_id}")
    base = Path(url) if url else Path(workdir) / "outputs"
    return LocalOutputStore(str(base.resolve() / str(job_id)))
