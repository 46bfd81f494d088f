"""Where published files go: a local folder (default) or ``s3://bucket/J/`` via boto3.

Each file is written to a temporary name and renamed (local) or sent as one PUT (S3), so a
reader never sees half a file and a task that is killed can simply run again. A job claims its
location with a marker holding its identity; a location that holds another job's files is
never written into (see :func:`claim_output_prefix`).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

_S3 = {"endpoint_url": None, "region": None}  # set by Config (the only reader of the environment)


def configure_s3(endpoint_url: str | None, region: str | None) -> None:
    """The S3 endpoint and region of this process (``Config`` calls it: the setting is process-wide,
    as the environment variables it comes from are). Clients made before are dropped: a new
    configuration may come with other credentials."""
    _S3.update(endpoint_url=endpoint_url, region=region)
    forget_clients()


def s3_settings() -> tuple[str | None, str | None]:
    return _S3["endpoint_url"], _S3["region"]


@functools.lru_cache(maxsize=8)
def _client(endpoint: str | None, region: str | None, keys: tuple[str, str, str] | None = None):
    from tos2ca_batch.stores.awsclient import client

    if keys is None:
        return client("s3", endpoint, region)
    return client("s3", endpoint, region, aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
                  aws_session_token=keys[2])


def forget_clients() -> None:
    """Drop this process's cached clients (a forked process opens its own connections)."""
    _client.cache_clear()
    from tos2ca_batch.stores import earthdata

    earthdata.forget()


def s3_client(url: str | None = None):
    """One boto3 S3 client per process, endpoint and region; for a bucket of NASA's archives
    (``stores.earthdata``) one with the archive's temporary credentials."""
    from tos2ca_batch.stores import earthdata

    source = earthdata.source_of(url) if url else None
    if source is None:
        return _client(*s3_settings())
    c = earthdata.s3_credentials(source)
    return _client(*s3_settings(), (c["accessKeyId"], c["secretAccessKey"], c["sessionToken"]))


def _over_https(url: str):
    """``stores.earthdata`` when ``url`` is read over HTTPS (an archive's bucket, out of region)."""
    from tos2ca_batch.stores import earthdata

    return earthdata if earthdata.source_of(url) and earthdata.access() == "https" else None


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def read_bytes(url: str) -> bytes:
    if https := _over_https(url):
        return https.read_all(url)
    bucket, key = split_s3(url)
    return s3_client(url).get_object(Bucket=bucket, Key=key)["Body"].read()


def object_size(url: str) -> int:
    if https := _over_https(url):
        return https.size(url)
    bucket, key = split_s3(url)
    return int(s3_client(url).head_object(Bucket=bucket, Key=key)["ContentLength"])


def read_range(url: str, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of an S3 object, in one ranged GET."""
    if https := _over_https(url):
        return https.read_range(url, start, stop)
    bucket, key = split_s3(url)
    return s3_client(url).get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}")["Body"].read()


def existing(paths: list[str]) -> set[str]:
    """Which of ``paths`` exist; ``s3://`` ones by listing their common prefix once."""
    local = {p for p in paths if not p.startswith("s3://") and os.path.exists(p)}
    remote = [p for p in paths if p.startswith("s3://")]
    if not remote:
        return local
    https = {p: _over_https(p) for p in remote}
    local |= {p for p, reader in https.items() if reader is not None and reader.exists(p)}
    remote = [p for p, reader in https.items() if reader is None]
    found: set[str] = set()
    by_bucket: dict[str, list[str]] = {}
    for p in remote:
        bucket, key = split_s3(p)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        prefix = os.path.commonprefix(keys)
        wanted = set(keys)
        pages = s3_client(f"s3://{bucket}/").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"] in wanted:
                    found.add(f"s3://{bucket}/{obj['Key']}")
    return local | found


OWNER_MARKER = ".tos2ca-job"


class OutputStore:
    """Publishes finished local files under the job's output prefix; returns their location."""

    def __init__(self, prefix: str):
        self.prefix = prefix.rstrip("/")

    def location(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put(self, local_path: str | Path, name: str, move: bool = False) -> str:
        """Publish ``local_path`` as ``name``; ``move``: the caller is done with the file, which
        may then be renamed into place instead of copied (same file system)."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def owner(self) -> str | None:
        """The identity in the location's marker; ``""`` if it holds files but no marker; None if empty."""
        raise NotImplementedError

    def claim(self, identity: str) -> bool:
        """Write the owner marker unless there is one already; True if this call wrote it."""
        raise NotImplementedError


class LocalOutputStore(OutputStore):
    def put(self, local_path, name, move=False):
        dest = Path(self.location(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:  # complete already: renamed into place, atomically (a 0.1-degree masks file: 14-54 ms of copy)
            try:
                os.replace(local_path, dest)
                return str(dest)
            except OSError:  # another file system: copied below
                pass
        tmp = dest.with_name("." + dest.name + ".part")
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, dest)
        except BaseException:  # a full disk: leave no half-written file behind
            tmp.unlink(missing_ok=True)
            raise
        return str(dest)

    def exists(self, name: str) -> bool:
        return Path(self.location(name)).is_file()

    def owner(self) -> str | None:
        root = Path(self.prefix)
        marker = root / OWNER_MARKER
        if marker.is_file():
            return marker.read_text().strip()
        return "" if root.is_dir() and any(root.iterdir()) else None

    def claim(self, identity: str) -> bool:
        Path(self.prefix).mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(Path(self.prefix) / OWNER_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(identity)
        return True


class S3OutputStore(OutputStore):
    def put(self, local_path, name, move=False):
        bucket, key = split_s3(self.location(name))
        with open(local_path, "rb") as f:
            s3_client().put_object(Bucket=bucket, Key=key, Body=f.read())
        return self.location(name)

    def exists(self, name: str) -> bool:
        bucket, key = split_s3(self.location(name))
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except s3_client().exceptions.ClientError:
            return False

    def owner(self) -> str | None:
        bucket, key = split_s3(self.location(OWNER_MARKER))
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read().decode().strip()
        except s3_client().exceptions.ClientError:
            pass
        page = s3_client().list_objects_v2(Bucket=bucket, Prefix=split_s3(self.prefix)[1] + "/", MaxKeys=1)
        return "" if page.get("KeyCount", 0) else None

    def claim(self, identity: str) -> bool:
        bucket, key = split_s3(self.location(OWNER_MARKER))
        try:  # a conditional PUT: only the first of two racing jobs gets the location
            s3_client().put_object(Bucket=bucket, Key=key, Body=identity.encode(), IfNoneMatch="*")
        except s3_client().exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True


def default_output_prefix(url: str | None, workdir: str | Path, job_id: int) -> str:
    """``<TOS2CA_OUTPUT_URL or workdir/outputs>/J``: TOS2CA's place for job J's files."""
    if url and url.startswith("s3://"):
        return f"{url.rstrip('/')}/{job_id}"
    base = Path(url) if url else Path(workdir) / "outputs"
    return str(base.resolve() / str(job_id))


def open_output_store(prefix: str) -> OutputStore:
    return S3OutputStore(prefix) if prefix.startswith("s3://") else LocalOutputStore(prefix)


def claim_output_prefix(base: str, identity: str) -> str:
    """The output location of a new job: ``base`` (``.../J``) when it is empty or already this
    job's; when it holds another job's files (ids repeat after a database is re-created, or two
    deployments share a bucket), the fresh location ``base-<first 8 of the identity>`` instead,
    so a job never reports, reuses or overwrites files it did not write."""
    for prefix in (base, f"{base}-{identity[:8]}", f"{base}-{identity}"):
        out = open_output_store(prefix)
        owner = out.owner()
        if owner == identity:
            return prefix
        if owner is None and out.claim(identity):
            return prefix
    raise RuntimeError(f"no free output location for the job at {base}: remove old files or set TOS2CA_OUTPUT_URL")
