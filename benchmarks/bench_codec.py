"""The chunk store's table codec against the one it replaced, on tables shaped like a job's.

    python benchmarks/bench_codec.py [--repeats 300]

``stores.codec`` packs a table's columns into one numcodecs Zstd frame (level 3); before, each
column was its own frame, which ``decode`` still reads (timed here as the earlier code did it:
one codec object, a frame a column). Also timed: the same single stream with libdeflate (level
1), which the reads import anyway, the alternative not taken. The tables are random, shaped
like those of a 24-step 720 x 1440 IMERG-layout job with 2 map chunks: a map chunk's
``components`` (14 columns of 200 rows), ``strips`` (16 short columns) and ``pixels`` (40,000
anomalous pixels), and the reduce's ``components``. Prints one JSON line:
per table, stored bytes and the median encode and decode time of each codec, in microseconds,
and the import time of numcodecs in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import timeit

import deflate
import numcodecs
import numpy as np

from tos2ca_batch.stores import codec


def tables(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    rows, pixels = 200, 40_000
    ints = {n: np.sort(rng.integers(0, 1440, rows)).astype(np.int64) for n in
            ("step", "label", "min_row", "min_col", "max_row", "max_col")}
    sums = {n: rng.integers(0, 10**7, rows).astype(np.int64) for n in
            ("area", "first_index", "sum_row", "sum_col", "sum_col_half")}
    values = {n: rng.gamma(2.0, 8.0, rows) for n in ("value_sum", "value_min", "value_max")}
    strips = {f"{side}_{part}": rng.integers(0, 50, rng.integers(0, 120)).astype(np.int32)
              for side in ("top", "bottom", "left", "right") for part in ("step", "pos", "label", "length")}
    index = np.sort(rng.choice(24 * 720 * 1440, pixels, replace=False)).astype(np.int32)
    pix = {"offsets": np.linspace(0, pixels, 7).astype(np.int64), "index": index,
           "label": np.repeat(np.arange(1, 201, dtype=np.int32), pixels // 200),
           "value": np.round(rng.gamma(2.0, 8.0, pixels), 2).astype(np.float32) + 10}  # values of 0.01 mm/hr
    reduce = {**{n: np.tile(v, 3) for n, v in {**ints, **sums}.items()}, "anomaly_id": np.arange(600, dtype=np.int32)}
    return {"map components": {**ints, **sums, **values}, "map strips": strips, "map pixels": pix,
            "reduce components": reduce}


ZSTD = numcodecs.Zstd(level=3)


def per_array_zstd(arrays: dict[str, np.ndarray]) -> bytes:
    """The earlier layout: each column its own numcodecs Zstd frame (level 3)."""
    blobs = [bytes(ZSTD.encode(np.ascontiguousarray(a))) if a.size else b"" for a in arrays.values()]
    header = [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape), "nbytes": len(b)}
              for (n, a), b in zip(arrays.items(), blobs)]
    head = json.dumps({"identity": "bench", "arrays": header}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def packed(arrays: dict[str, np.ndarray]) -> bytes:
    return b"".join(a.tobytes().ljust(-(-a.nbytes // 8) * 8, b"\0") for a in arrays.values())


def per_array_decode(data: bytes) -> dict[str, np.ndarray]:
    """The earlier decoder: a Zstd call a column."""
    (n,) = struct.unpack_from("<I", data)
    pos, out = 4 + n, {}
    for h in json.loads(data[4:pos])["arrays"]:
        blob = data[pos:pos + h["nbytes"]]
        pos += h["nbytes"]
        out[h["name"]] = (np.frombuffer(ZSTD.decode(blob), h["dtype"]).reshape(h["shape"]) if h["nbytes"]
                          else np.zeros(h["shape"], h["dtype"]))
    return out


def median_us(fn, repeats: int) -> float:
    return round(statistics.median(timeit.repeat(fn, number=1, repeat=repeats)) * 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    out = {}
    for name, table in tables(np.random.default_rng(0)).items():
        new, old = codec.encode(table, "bench"), per_array_zstd(table)
        for back in (codec.decode(new), codec.decode(old), per_array_decode(old)):  # the same table
            assert all(np.array_equal(back[k], v) for k, v in table.items())
        n = args.repeats
        body = packed(table)
        frame, stream, size = bytes(ZSTD.encode(body)), deflate.deflate_compress(body, 1), len(body)
        out[name] = {
            "columns": len(table), "raw_bytes": sum(a.nbytes for a in table.values()),
            "codec (one zstd frame)": {
                "bytes": len(new), "encode_us": median_us(lambda t=table: codec.encode(t, "b"), n),
                "decode_us": median_us(lambda d=new: codec.decode(d), n)},
            "earlier (a zstd frame a column)": {
                "bytes": len(old), "encode_us": median_us(lambda t=table: per_array_zstd(t), n),
                "decode_us": median_us(lambda d=old: per_array_decode(d), n)},
            # the packed columns alone, compressed both ways: the codec's choice
            "packed, zstd 3": {"bytes": len(frame), "encode_us": median_us(lambda b=body: ZSTD.encode(b), n),
                               "decode_us": median_us(lambda f=frame: ZSTD.decode(f), n)},
            "packed, libdeflate 1": {
                "bytes": len(stream), "encode_us": median_us(lambda b=body: deflate.deflate_compress(b, 1), n),
                "decode_us": median_us(lambda d=stream, k=size: deflate.deflate_decompress(d, k), n)},
        }
    probe = "import time; t = time.perf_counter(); import numcodecs; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", f"import numpy; {probe}"], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(5)]
    print(json.dumps({"benchmark": "table codec", "repeats": args.repeats, "tables": out,
                      "numcodecs_import_ms_after_numpy": round(statistics.median(imports) * 1000, 1)}))


if __name__ == "__main__":
    main()
