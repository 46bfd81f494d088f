"""Tables (dicts of named arrays) to compressed bytes and back.

Layout: 4-byte little-endian header length, a JSON header (the identity of the job that wrote
it, and each array's name, dtype, shape and byte length), then each array compressed with
numcodecs Zstd, or stored as is (``"codec": "none"`` in its header entry) when the caller says its
bytes are compressed already (zstd would spend milliseconds a step to gain nothing).
"""

from __future__ import annotations

import json
import struct

import numcodecs
import numpy as np

_CODEC = numcodecs.Zstd(level=3)


def encode(arrays: dict[str, np.ndarray], identity: str | None = None, stored: tuple[str, ...] = ()) -> bytes:
    """``stored``: names of arrays kept as they are (already compressed bytes)."""
    parts, header = [], []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        as_is = name in stored
        blob = arr.tobytes() if as_is else _CODEC.encode(arr) if arr.size else b""
        entry = {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "nbytes": len(blob)}
        if as_is:
            entry["codec"] = "none"
        header.append(entry)
        parts.append(bytes(blob))
    head = json.dumps({"identity": identity, "arrays": header}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(parts)


def _header(data: bytes) -> tuple[dict, int]:
    (n,) = struct.unpack_from("<I", data, 0)
    return json.loads(data[4 : 4 + n]), 4 + n


def identity(data: bytes) -> str | None:
    """The identity of the job that wrote ``data`` (None if written without one)."""
    return _header(data)[0].get("identity")


def decode(data: bytes) -> dict[str, np.ndarray]:
    head, pos = _header(data)
    header = head["arrays"]
    out = {}
    for h in header:
        blob = data[pos : pos + h["nbytes"]]
        pos += h["nbytes"]
        dtype = np.dtype(h["dtype"])
        if h.get("codec") == "none":
            arr = np.frombuffer(blob, dtype=dtype).reshape(h["shape"])
        elif h["nbytes"]:
            arr = np.frombuffer(_CODEC.decode(blob), dtype=dtype).reshape(h["shape"])
        else:
            arr = np.zeros(h["shape"], dtype)
        out[h["name"]] = arr
    return out
