"""Every AWS client of the package, made one way: botocore's ``standard`` retry mode with ten
attempts. The default ``legacy`` mode retries few error kinds a few times; a thousand array
children starting at once meet throttling (S3 503 SlowDown, Secrets Manager and Batch rate
limits) that ``standard`` retries with jittered exponential backoff and a retry quota."""

from __future__ import annotations

RETRIES = {"mode": "standard", "max_attempts": 10}


def client(service: str, endpoint_url: str | None = None, region_name: str | None = None, **keys):
    """``boto3.client(service, ...)`` with :data:`RETRIES` (``keys``: explicit credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint_url, region_name=region_name,
                        config=Config(retries=dict(RETRIES)), **keys)
