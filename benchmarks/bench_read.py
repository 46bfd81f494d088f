"""One step of an IMERG-layout file read three ways, medians of ``--repeats`` (one core).

    python benchmarks/bench_read.py [--res 0.1] [--repeats 9]

IMERG stores ``precipitation`` as (time, lon, lat) in gzip+shuffle chunks of 145 x 1800; a job
wants (lat, lon). Printed (one JSON line, ms per step):

- ``h5py``: ``f["Grid/precipitation"][0]`` (HDF5's own zlib and unshuffle, in file order);
- ``inflate``: the step's chunks inflated by libdeflate, nothing else (the least a read costs);
- ``rawchunks``: :meth:`RawChunks.read` into the transposed (lat, lon) destination, as a job
  reads a step: inflate, then each shuffled byte plane copied straight into its byte of the
  destination's elements;
- ``candidates``: :meth:`RawChunks.candidates` for ``> --floor`` (10), as a ``> 10`` map reads a
  step: inflate, compare the top byte plane, gather only the values that can reach the floor
  (``--field fractal`` for rain-like steps, where they are a few percent).

A chunk-ordered buffer between the two (unshuffle into it, then one float32 transposing copy)
was measured at the same time or slower: the freshly inflated chunk is still in cache, so the
strided byte copies out of it cost what the extra pass saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import h5py
import numpy as np

from tos2ca_batch.rawchunks import RawChunks


def median_ms(fn, repeats: int) -> float:
    fn()  # warm: page cache, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--floor", type=float, default=10.0)
    ap.add_argument("--field", choices=["blobs", "fractal"], default="blobs")
    ap.add_argument("--data", default=os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"))
    args = ap.parse_args()
    from datetime import datetime

    from tos2ca_batch.rawchunks import top_byte_below
    from tos2ca_batch.synth import synthesize

    data = Path(args.data) / (f"imerg-{args.res}-1" + ("" if args.field == "blobs" else f"-{args.field}"))
    if not (data / "catalog-imerg.json").exists():
        synthesize("imerg", data, datetime(2020, 1, 4), datetime(2020, 1, 4), res=args.res, field=args.field)
    path = str(next(data.rglob("*.HDF5")))
    with h5py.File(path, "r") as f:
        var = f["Grid/precipitation"]
        _, nlon, nlat = var.shape
        chunks = RawChunks(var)
        out = np.empty((nlat, nlon), np.float32)
        dest = out.T  # (lon, lat) as the file walks it: a transposed view
        top = top_byte_below(args.floor)

        def inflate_only():
            for c0 in range(0, nlon, chunks.chunk[1]):
                chunks._inflated((0, c0, 0))

        chunks.read((0, slice(None), slice(None)), out=dest)
        assert np.array_equal(out.T, var[0], equal_nan=True)
        result = {
            "h5py": median_ms(lambda: var[0], args.repeats),
            "inflate": median_ms(inflate_only, args.repeats),
            "rawchunks": median_ms(lambda: chunks.read((0, slice(None), slice(None)), out=dest), args.repeats),
            "candidates": median_ms(lambda: chunks.candidates((0, slice(None), slice(None)), dest, top),
                                    args.repeats),
        }
        positions, _ = chunks.candidates((0, slice(None), slice(None)), dest, top)
        result["candidate_share"] = round(positions.size / out.size, 4)
    print(json.dumps({"benchmark": "read", "shape": [nlat, nlon], "chunks": list(chunks.chunk), "ms": result,
                      "repeats": args.repeats, "machine": f"{os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
