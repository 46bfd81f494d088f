"""Key -> bytes stores behind the chunk store: a directory, S3 objects, or Redis with a TTL.

Each lists its keys (``keys``) so a completed job can release what it no longer needs.

Writes are atomic: temp file then rename (directory), one PUT per object (S3), one SET per
key (Redis; a value over ``part_bytes`` is split into parts written before the key that names
them, so a reader never sees a partial value).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from tos2ca_batch.stores.objectstore import s3_client, split_s3


class Blobs(Protocol):
    """What the chunk store needs of a key -> bytes store."""

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically (a reader sees the old value or the new one)."""

    def get(self, key: str) -> bytes:
        """The value of ``key``; ``KeyError`` or ``OSError`` when there is none."""

    def exists(self, key: str) -> bool: ...

    def exists_all(self, keys: list[str]) -> bool:
        """Whether every key exists (one round trip where the store allows it)."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (and its parts); a missing key is not an error."""

    def keys(self) -> list[str]:
        """Every key of this job's store."""


class DirBlobs:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:  # a full disk: leave no half-written file behind
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        try:  # os.unlink, not Path.unlink: a third of its time, for each key the job's release deletes
            os.unlink(os.path.join(self.root, key))
        except FileNotFoundError:
            pass

    def exists_all(self, keys: list[str]) -> bool:
        return all(self._path(k).exists() for k in keys)

    def keys(self) -> list[str]:
        """Files under the root, not the temp files of writes in flight (``.name...``). Listed with
        ``os.walk`` (directory entries, no stat a file): a twentieth of ``Path.rglob``'s time, and
        the release at a job's end is serial work."""
        out = []
        for folder, _, files in os.walk(self.root):
            rel = os.path.relpath(folder, self.root)
            out += [name if rel == "." else os.path.join(rel, name) for name in files if not name.startswith(".")]
        return sorted(out)


class S3Blobs:
    def __init__(self, url: str):
        self.bucket, self.prefix = split_s3(url.rstrip("/"))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        s3_client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        return s3_client().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            s3_client().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except s3_client().exceptions.ClientError:
            return False

    def delete(self, key: str) -> None:
        s3_client().delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists_all(self, keys: list[str]) -> bool:
        return all(self.exists(k) for k in keys)

    def keys(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        out = []
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            out += [obj["Key"][len(start):] for obj in page.get("Contents", [])]
        return sorted(out)


_PARTS = b"TOS2CA-PARTS:"


class RedisBlobs:
    """Keys ``tos2ca:{job}:{key}`` with a TTL; ``job`` is ``{J}-{job identity}``, ``key`` is
    ``{stage}:{chunk}:{name}``.

    ``namespace`` (``TOS2CA_REDIS_PREFIX``) replaces ``tos2ca`` where several deployments or
    test runs share one Redis.
    """

    def __init__(self, url: str, job_key: str, ttl_seconds: int, part_bytes: int = 512 * 2**20,
                 namespace: str = "tos2ca"):
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = f"{namespace}:{job_key}:"
        self.ttl = ttl_seconds
        self.part_bytes = part_bytes

    def put(self, key: str, data: bytes) -> None:
        k = self.prefix + key
        if len(data) <= self.part_bytes:
            self.client.set(k, data, ex=self.ttl)
            return
        n = -(-len(data) // self.part_bytes)
        pipe = self.client.pipeline()
        for i in range(n):
            pipe.set(f"{k}:part{i}", data[i * self.part_bytes : (i + 1) * self.part_bytes], ex=self.ttl)
        pipe.execute()
        self.client.set(k, _PARTS + str(n).encode(), ex=self.ttl)

    def get(self, key: str) -> bytes:
        k = self.prefix + key
        data = self.client.get(k)
        if data is None:
            raise KeyError(f"{k} is not in Redis (expired, or its task never ran)")
        if data.startswith(_PARTS):
            n = int(data[len(_PARTS):])
            parts = self.client.mget([f"{k}:part{i}" for i in range(n)])
            if any(p is None for p in parts):
                raise KeyError(f"{k}: a part has expired")
            data = b"".join(parts)
        return data

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(self.prefix + key))

    def delete(self, key: str) -> None:
        k = self.prefix + key
        data = self.client.get(k)
        if data is not None and data.startswith(_PARTS):
            self.client.delete(*[f"{k}:part{i}" for i in range(int(data[len(_PARTS):]))])
        self.client.delete(k)

    def exists_all(self, keys: list[str]) -> bool:
        unique = sorted(set(keys))
        return not unique or self.client.exists(*[self.prefix + k for k in unique]) == len(unique)

    def keys(self) -> list[str]:
        found = (k.decode()[len(self.prefix):] for k in self.client.scan_iter(match=self.prefix + "*", count=1000))
        return sorted(k for k in found if not re.search(r":part\d+$", k))
