"""NASA Earthdata access to the ``s3://`` files of NASA's archives (GES DISC, PO.DAAC, ...).

A catalog entry with an ``earthdata`` block names its DAAC's S3 credentials endpoint and the
HTTPS address its bucket is served at::

    "earthdata": {"s3credentials": "https://data.gesdisc.earthdata.nasa.gov/s3credentials",
                  "https": "https://data.gesdisc.earthdata.nasa.gov/data"}

Reads of that bucket (``stores.objectstore`` asks :func:`source_of`) then go, with access ``s3``
(in AWS us-west-2, where the archives are: ``TOS2CA_EARTHDATA_ACCESS=auto`` picks it there),
straight to S3 with the DAAC's temporary credentials, and with access ``https`` (anywhere
else) over HTTPS with the user's Earthdata token: the same byte ranges, following the
archive's redirect to its signed address.

The temporary credentials last an hour. One task of a job fetches them and puts them in the
job's chunk store (:func:`share_through`, which ``Config.store`` calls), where every other task
of the job finds them: a thousand array children make one call to the DAAC's endpoint, not a
thousand (the endpoints and Earthdata Login limit their callers' rates). Each process renews
them at its own moment, 5 to 20 minutes before they lapse (a random margin), so the first to
come renews them for the rest; the store deletes them with the job's tables at completion.

Login is earthaccess's (``earthaccess.Auth``): strategy ``environment`` (``EARTHDATA_TOKEN``, or
``EARTHDATA_USERNAME`` and ``EARTHDATA_PASSWORD``), then ``netrc`` (the Earthdata host's machine
in ``~/.netrc`` or ``$NETRC``); never interactive, this runs in batch tasks. Without any, a read
raises :class:`NoEarthdataLogin` saying what to set. ``earthaccess`` is the optional
``earthdata`` extra (it brings s3fs and aiobotocore, which pin botocore): imported on first use.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

DEFAULT_HOST = "urs.earthdata.nasa.gov"
ACCESS_MODES = ("auto", "s3", "https")
IN_REGION = "us-west-2"
"""Where NASA's Earthdata Cloud buckets are: direct S3 reads work only from there."""
REFRESH_SECONDS = 300.0
REFRESH_SPREAD = 900.0
_MARGIN = REFRESH_SECONDS + random.uniform(0, REFRESH_SPREAD)  # this process's: processes spread out

log = logging.getLogger("tos2ca_batch")

_SETTINGS = {"host": DEFAULT_HOST, "access": "https"}
_SOURCES: dict[str, Source] = {}  # bucket -> its archive
_CREDENTIALS: dict[str, tuple[dict, float]] = {}  # s3credentials URL -> (credentials, expiry)
_SHARED: list[tuple[Callable[[str], dict | None], Callable[[str, dict], None]]] = []  # the job's place
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Source:
    s3credentials: str
    """The DAAC's S3 credentials endpoint (``https://.../s3credentials``)."""
    https: str
    """What ``s3://bucket`` is served at over HTTPS (a key is appended after a ``/``)."""


class NoEarthdataLogin(PermissionError):
    """No Earthdata login could be made (no credentials given, or Earthdata refused them)."""


WHAT_TO_SET = ("set EARTHDATA_TOKEN (an Earthdata Login token), or EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or "
               "put 'machine {host} login USER password PASS' in ~/.netrc (or the file $NETRC names)")


def configure(host: str, access: str) -> None:
    """This process's Earthdata host and access (``s3`` or ``https``; ``Config`` resolves
    ``auto``). A new host or access drops the login and cached credentials."""
    if access not in ("s3", "https"):
        raise ValueError(f"Earthdata access must be s3 or https, got {access!r}")
    if (host, access) != (_SETTINGS["host"], _SETTINGS["access"]):
        _SETTINGS.update(host=host, access=access)
        forget()


def resolve_access(access: str, region: str | None) -> str:
    """``auto`` is ``s3`` in us-west-2 (where the archives' buckets are), else ``https``."""
    if access not in ACCESS_MODES:
        raise ValueError(f"TOS2CA_EARTHDATA_ACCESS must be one of {', '.join(ACCESS_MODES)}, got {access!r}")
    if access == "auto":
        return "s3" if region == IN_REGION else "https"
    return access


def access() -> str:
    return _SETTINGS["access"]


def forget() -> None:
    """Drop the login, sessions and credentials of this process (a forked child makes its own)."""
    _login.cache_clear()
    _session.cache_clear()
    _CREDENTIALS.clear()
    _SHARED.clear()


def share_through(load: Callable[[str], dict | None], save: Callable[[str, dict], None]) -> None:
    """Where this process's job keeps credentials for all its tasks: ``load(name)`` (None if it
    holds none) and ``save(name, document)``."""
    _SHARED[:] = [(load, save)]


def _shared_name(source: Source) -> str:
    """One name per login host and endpoint, with no ``:`` or ``/`` for a store's key."""
    return "earthdata-" + hashlib.sha256(f"{_SETTINGS['host']} {source.s3credentials}".encode()).hexdigest()[:16]


def _from_job(source: Source) -> tuple[dict, float] | None:
    if not _SHARED:
        return None
    try:
        doc = _SHARED[0][0](_shared_name(source))
        return (doc["credentials"], float(doc["expiry"])) if doc else None
    except Exception as exc:  # an unreadable copy: this process fetches its own
        log.warning("could not read the job's Earthdata credentials (%s); fetching them", type(exc).__name__)
        return None


def _to_job(source: Source, creds: dict, expiry: float) -> None:
    if _SHARED:
        try:
            _SHARED[0][1](_shared_name(source), {"credentials": creds, "expiry": expiry})
        except Exception as exc:  # the others fetch their own
            log.warning("could not share the Earthdata credentials with the job's tasks (%s)", type(exc).__name__)


def register(location: str, block: dict | None) -> None:
    """Reads of ``location``'s bucket go through the archive ``block`` describes (a catalog
    entry's ``earthdata``); nothing for entries without one or not on ``s3://``."""
    if block and location.startswith("s3://"):
        bucket = location[len("s3://"):].split("/", 1)[0]
        _SOURCES[bucket] = Source(block["s3credentials"], block["https"].rstrip("/"))


def source_of(url: str) -> Source | None:
    if not url.startswith("s3://"):
        return None
    return _SOURCES.get(url[len("s3://"):].split("/", 1)[0])


@functools.lru_cache(maxsize=1)
def _login(host: str):
    """An authenticated ``earthaccess.Auth`` for ``host`` (environment, then netrc)."""
    try:
        import earthaccess
        from earthaccess.exceptions import LoginAttemptFailure, LoginStrategyUnavailable
    except ImportError:
        raise NoEarthdataLogin("reading NASA Earthdata needs earthaccess: pip install 'tos2ca-batch[earthdata]'") \
            from None
    from dataclasses import replace

    system = replace(earthaccess.PROD, edl_hostname=host)
    tried = []
    for strategy in ("environment", "netrc"):
        auth = earthaccess.Auth()
        try:
            auth.login(strategy=strategy, system=system)
        except LoginStrategyUnavailable as exc:
            tried.append(f"{strategy}: {exc}")
            continue
        except LoginAttemptFailure:
            raise NoEarthdataLogin(f"Earthdata Login ({host}) refused the {strategy} credentials; "
                                   f"{WHAT_TO_SET.format(host=host)}") from None
        if auth.authenticated:
            return auth
    raise NoEarthdataLogin(f"no Earthdata login: {WHAT_TO_SET.format(host=host)} ({'; '.join(tried)})")


@functools.lru_cache(maxsize=1)
def _session(host: str):
    return _login(host).get_session()


def s3_credentials(source: Source) -> dict:
    """The DAAC's temporary S3 credentials (``accessKeyId``, ``secretAccessKey``,
    ``sessionToken``, ``expiration``): this process's, else the job's, else fetched (and shared
    with the job) once those are within this process's margin of lapsing."""
    with _LOCK:
        held = _CREDENTIALS.get(source.s3credentials)
        if held and held[1] - time.time() > _MARGIN:  # every read asks: the job's copy only when needed
            return held[0]
        held = _from_job(source)
        if held and held[1] - time.time() > _MARGIN:
            _CREDENTIALS[source.s3credentials] = held
            return held[0]
        creds = _login(_SETTINGS["host"]).get_s3_credentials(endpoint=source.s3credentials)
        if not creds or "accessKeyId" not in creds:
            raise NoEarthdataLogin(f"{source.s3credentials} gave no S3 credentials to this Earthdata login (accept "
                                   f"the archive's EULA on Earthdata, or read over HTTPS: "
                                   f"TOS2CA_EARTHDATA_ACCESS=https)")
        _CREDENTIALS[source.s3credentials] = (creds, _expiry(creds.get("expiration")))
        _to_job(source, creds, _CREDENTIALS[source.s3credentials][1])
        return creds


def _expiry(text: str | None) -> float:
    """Seconds since the epoch of ``2024-05-01 12:00:00+00:00`` (an hour from now if unreadable)."""
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return time.time() + 3600.0


def https_url(url: str) -> str:
    source = source_of(url)
    key = url[len("s3://"):].split("/", 1)[1]
    return f"{source.https}/{key}"


def _get(url: str, headers: dict | None = None):
    response = _session(_SETTINGS["host"]).get(https_url(url), headers=headers or {}, timeout=60,
                                               allow_redirects=True)
    if response.status_code in (401, 403):
        raise NoEarthdataLogin(f"{https_url(url)}: HTTP {response.status_code} for this Earthdata login (accept "
                               f"the archive's EULA on Earthdata?)")
    if response.status_code == 404:
        raise FileNotFoundError(https_url(url))
    response.raise_for_status()
    return response


def read_all(url: str) -> bytes:
    return _get(url).content


def read_range(url: str, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` in one ranged GET (a server that ignores ranges is sliced)."""
    response = _get(url, {"Range": f"bytes={start}-{stop - 1}"})
    return response.content if response.status_code == 206 else response.content[start:stop]


def size(url: str) -> int:
    """The object's size, from the ``Content-Range`` of a one-byte ranged GET (the archives
    answer HEAD on their redirect, not the object)."""
    response = _get(url, {"Range": "bytes=0-0"})
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else len(response.content)


def exists(url: str) -> bool:
    try:
        _get(url, {"Range": "bytes=0-0"})
    except FileNotFoundError:
        return False
    return True
