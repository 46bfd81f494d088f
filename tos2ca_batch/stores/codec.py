"""Tables (dicts of named arrays) to compressed bytes and back.

Layout: 4-byte little-endian header length, a JSON header, then the packed arrays as one raw
DEFLATE stream (libdeflate, level 1), then the arrays the caller ``stored`` as they are. The
header holds the identity of the job that wrote it, each array's name, dtype, shape and byte
length (``"codec": "none"`` for a stored one: its bytes are compressed already, and compressing
them again would spend milliseconds a step to gain nothing) and ``packed``: the stream's codec,
compressed length and inflated size. Packed arrays lie end to end, each padded to 8 bytes, so
every column decodes aligned, as a view of the one inflated buffer.

Why one stream a table, and why libdeflate: the map's tables have 5-16 columns of a few hundred
bytes, and a compressor call has a fixed cost (~12 us for numcodecs' Zstd), which the serial
reduce and finalize paid some 150 times a job. libdeflate is the reads' own inflater
(``rawchunks``), imported anyway; numcodecs costs ~35 ms to import (its codec registry scans
every installed package's entry points), in every process of every job. On these tables level 1
is as small as zstd level 3 and faster on the small ones (benchmarks/RESULTS.md). Tables an
earlier version wrote (one Zstd frame an array, no ``packed``) still decode, importing numcodecs
only then.
"""

from __future__ import annotations

import json
import struct

import deflate
import numpy as np

LEVEL = 1
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
    stream = deflate.deflate_compress(body, LEVEL) if body else b""
    head = json.dumps({"identity": identity, "arrays": header,
                       "packed": {"codec": "deflate", "nbytes": len(stream), "size": len(body)}}).encode()
    return struct.pack("<I", len(head)) + head + stream + b"".join(kept)


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
    if packed["codec"] != "deflate":
        raise ValueError(f"table packed with {packed['codec']!r}; this version reads deflate")
    end = pos + packed["nbytes"]
    body = deflate.deflate_decompress(data[pos:end], packed["size"]) if packed["size"] else b""
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
    """A table of an earlier version: each array its own numcodecs Zstd frame."""
    from numcodecs import Zstd

    zstd = Zstd()
    out = {}
    for h in header:
        blob = data[pos : pos + h["nbytes"]]
        pos += h["nbytes"]
        dtype = np.dtype(h["dtype"])
        if h.get("codec") == "none":
            arr = np.frombuffer(blob, dtype=dtype).reshape(tuple(h["shape"]))
        elif h["nbytes"]:
            arr = np.frombuffer(zstd.decode(blob), dtype=dtype).reshape(tuple(h["shape"]))
        else:
            arr = np.zeros(h["shape"], dtype)
        out[h["name"]] = arr
    return out
