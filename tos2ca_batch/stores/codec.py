"""Tables (dicts of named arrays) to compressed bytes and back.

Layout: 4-byte little-endian header length, a JSON header, then the packed arrays as one
numcodecs Zstd frame (level 3), then the arrays the caller ``stored`` as they are. The header
holds the identity of the job that wrote it, each array's name, dtype, shape and byte length
(``"codec": "none"`` for a stored one: its bytes are compressed already, and compressing them
again would spend milliseconds a step to gain nothing) and ``packed``: the frame's codec,
compressed length and content size. Packed arrays lie end to end, each padded to 8 bytes, so
every column decodes aligned, as a view of the one decompressed buffer.

Why one frame a table: the map's tables have 5-16 columns of a few hundred bytes, and each Zstd
call has a fixed cost (~12 us), which the serial reduce and finalize paid some 150 times a job;
one frame a table decodes such a table 3-4.5x faster, encodes it 2.3-3.9x faster
(``benchmarks/bench_codec.py``). Why Zstd and not libdeflate, which the reads import anyway: on
a map chunk's pixel table (0.5 MB) libdeflate level 1 encodes 1.6x and decodes 1.7x slower
(it is 10-40 us faster on the small tables). Tables an earlier version wrote (one frame an
array, no ``packed``) still decode.
"""

from __future__ import annotations

import json
import struct

import numcodecs
import numpy as np

_CODEC = numcodecs.Zstd(level=3)
_ALIGN = 8


def _padded(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def encode(arrays: dict[str, np.ndarray], identity: str | None = None, stored: tuple[str, ...] = ()) -> bytes:
    """``stored``: names of arrays kept as they are (already compressed bytes)."""
    packed, kept, header = [], [], []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        raw = arr.tobytes()  # C order, whatever the array's layout
        entry = {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "nbytes": len(raw)}
        if name in stored:
            entry["codec"] = "none"
            kept.append(raw)
        else:
            packed.append(raw.ljust(_padded(len(raw)), b"\0"))
        header.append(entry)
    body = b"".join(packed)
    frame = bytes(_CODEC.encode(body)) if body else b""
    head = json.dumps({"identity": identity, "arrays": header,
                       "packed": {"codec": "zstd", "nbytes": len(frame), "size": len(body)}}).encode()
    return struct.pack("<I", len(head)) + head + frame + b"".join(kept)


def _header(data: bytes) -> tuple[dict, int]:
    (n,) = struct.unpack_from("<I", data, 0)
    return json.loads(data[4 : 4 + n]), 4 + n


def identity(data: bytes) -> str | None:
    """The identity of the job that wrote ``data`` (None if written without one)."""
    return _header(data)[0].get("identity")


def decode(data: bytes) -> dict[str, np.ndarray]:
    head, pos = _header(data)
    packed = head.get("packed")
    if packed is None:
        return _decode_per_array(head["arrays"], data, pos)
    if packed["codec"] != "zstd":
        raise ValueError(f"table packed with {packed['codec']!r}; this version reads zstd")
    end = pos + packed["nbytes"]
    body = _CODEC.decode(data[pos:end]) if packed["size"] else b""
    pos, at, out = end, 0, {}
    for h in head["arrays"]:
        dtype, n = np.dtype(h["dtype"]), h["nbytes"]
        if h.get("codec") == "none":
            out[h["name"]] = np.frombuffer(data[pos:pos + n], dtype).reshape(tuple(h["shape"]))
            pos += n
        else:
            out[h["name"]] = np.frombuffer(body, dtype, n // dtype.itemsize, at).reshape(tuple(h["shape"]))
            at += _padded(n)
    return out


def _decode_per_array(header: list[dict], data: bytes, pos: int) -> dict[str, np.ndarray]:
    """A table of an earlier version: each array its own Zstd frame."""
    out = {}
    for h in header:
        blob = data[pos : pos + h["nbytes"]]
        pos += h["nbytes"]
        dtype = np.dtype(h["dtype"])
        if h.get("codec") == "none":
            arr = np.frombuffer(blob, dtype=dtype).reshape(tuple(h["shape"]))
        elif h["nbytes"]:
            arr = np.frombuffer(_CODEC.decode(blob), dtype=dtype).reshape(tuple(h["shape"]))
        else:
            arr = np.zeros(h["shape"], dtype)
        out[h["name"]] = arr
    return out
