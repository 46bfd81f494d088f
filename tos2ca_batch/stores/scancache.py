"""What ``tos2ca-batch scan`` found of each file, kept in the work dir (``scan-cache.json``).

Keyed by the file's path and its version: size and modification time for a local file, size and
ETag for an ``s3://`` object (one listing per prefix gives both), so a file that changed is
scanned again and one that did not never is. The planner reads it to refuse, before any work, a
job whose files a scan found unreadable or on another grid.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def versions(paths: list[str]) -> dict[str, str]:
    """Each existing file's version tag (``size:mtime_ns`` or ``size:etag``); absent ones left out."""
    out = {}
    remote = [p for p in paths if p.startswith("s3://")]
    for p in paths:
        if not p.startswith("s3://"):
            try:
                st = os.stat(p)
            except OSError:
                continue
            out[p] = f"{st.st_size}:{st.st_mtime_ns}"
    if remote:
        from tos2ca_batch.stores.objectstore import s3_client, split_s3

        by_bucket: dict[str, set[str]] = {}
        for p in remote:
            bucket, key = split_s3(p)
            by_bucket.setdefault(bucket, set()).add(key)
        for bucket, keys in by_bucket.items():
            pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=os.path.commonprefix(list(keys)))
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"] in keys:
                        out[f"s3://{bucket}/{obj['Key']}"] = f"{obj['Size']}:{obj['ETag'].strip(chr(34))}"
    return out


class ScanCache:
    """``{path: {"version": ..., **result}}`` in one JSON file, written atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def get(self, path: str, version: str | None) -> dict | None:
        """What a scan found of this version of ``path`` (None: never scanned, or since changed)."""
        found = self.entries.get(path)
        return found if found is not None and version is not None and found.get("version") == version else None

    def put(self, path: str, version: str, result: dict) -> None:
        self.entries[path] = {"version": version, **result}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(self.entries, sort_keys=True))
        os.replace(tmp, self.path)

    def refusal(self, entry, times: list) -> str | None:
        """What a scan found wrong with the files of ``times`` of catalog ``entry`` as they are now
        (unreadable, another grid); None if nothing (or never scanned)."""
        from tos2ca_batch.catalog import file_for

        if not self.entries:
            return None
        paths = [file_for(entry, t) for t in times]
        tags = versions(sorted(set(paths)))
        bad = []
        for t, path in zip(times, paths):
            hit = self.get(f"{path}#{t:%Y%m%d%H%M}", tags.get(path))
            if hit is not None and hit["status"] in ("unreadable", "other grid"):
                bad.append(f"{path} ({hit['status']}: {hit['detail'][:120]})")
        if not bad:
            return None
        return (f"a scan found {len(bad)} of the job's files unusable, e.g. {'; '.join(bad[:3])}; fix or replace "
                "them (then scan again: tos2ca-batch scan), or choose a range without them")
