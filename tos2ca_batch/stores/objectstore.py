"""Where published files go: a local folder (default) or ``s3://bucket/J/`` via boto3.

Each file is written to a temporary name and renamed (local) or sent as one PUT (S3), so a
reader never sees half a file and a task that is killed can simply run again.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path


@functools.lru_cache(maxsize=4)
def _client(endpoint: str | None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def s3_client():
    """One boto3 S3 client per process and endpoint (``AWS_ENDPOINT_URL`` honoured)."""
    return _client(os.environ.get("AWS_ENDPOINT_URL") or None)


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def read_bytes(url: str) -> bytes:
    bucket, key = split_s3(url)
    return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def existing(paths: list[str]) -> set[str]:
    """Which of ``paths`` exist; ``s3://`` ones by listing their common prefix once."""
    local = {p for p in paths if not p.startswith("s3://") and os.path.exists(p)}
    remote = [p for p in paths if p.startswith("s3://")]
    if not remote:
        return local
    found: set[str] = set()
    by_bucket: dict[str, list[str]] = {}
    for p in remote:
        bucket, key = split_s3(p)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        prefix = os.path.commonprefix(keys)
        wanted = set(keys)
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"] in wanted:
                    found.add(f"s3://{bucket}/{obj['Key']}")
    return local | found


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
            s3_client().put_object(Bucket=bucket, Key=key, Body=f.read())
        return self.location(name)


def open_output_store(url: str | None, workdir: str | Path, job_id: int) -> OutputStore:
    if url and url.startswith("s3://"):
        return S3OutputStore(f"{url.rstrip('/')}/{job_id}")
    base = Path(url) if url else Path(workdir) / "outputs"
    return LocalOutputStore(str(base.resolve() / str(job_id)))
