"""Bytes fetched from S3 for a task's tile of a MUR-sized file, against the whole object.

    python benchmarks/bench_s3_ranges.py [--res 0.01] [--repeats 3]

Writes one day of MUR-layout SST (default: MUR's own 0.01 degree grid, 18000 x 36000 int16 in
MUR v4.1's 1023 x 2047 deflate chunks), uploads it to a moto_server started on a loopback port,
and reads tiles of it through ``s3://`` as a map task does (:class:`tos2ca_batch.rawchunks.RangeFile`:
metadata in 64 KiB blocks, the tile's chunks in coalesced ranged GETs). For each tile it
reports bytes fetched, requests, the object's size and the wall time, beside the whole-object
read the readers did before (one GET of the object, then netCDF4 from memory). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=os.environ.get("TOS2CA_BENCH_DATA", "/tmp/tos2ca-bench-data"))
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      HDF5_USE_FILE_LOCKING="FALSE")
    from tos2ca_batch.catalog import CatalogEntry, file_for, load_catalog
    from tos2ca_batch.readers import HDF5File, StepReader, open_dataset
    from tos2ca_batch.stores.objectstore import configure_s3, s3_client
    from tos2ca_batch.synth import synthesize

    data = Path(args.data) / f"mur-{args.res}"
    catalog = data / "catalog-mur.json"
    if not catalog.exists():
        synthesize("mur", data, datetime(2020, 1, 1), datetime(2020, 1, 1, 12), res=args.res)
    entry = load_catalog([str(catalog)])["MUR"]
    t = entry.first
    local = file_for(entry, t)
    proc, endpoint = start_moto()
    try:
        configure_s3(endpoint, "us-east-1")
        s3 = s3_client()
        s3.create_bucket(Bucket="bench")
        key = "mur/" + Path(local).name
        s3.upload_file(local, "bench", key)
        url = f"s3://bench/{key}"
        remote = CatalogEntry.from_json("MUR", {**entry.to_json(), "location": url})
        ny, nx = round(180 / args.res), round(360 / args.res)
        tiles = {"512 x 512": (slice(ny // 2, ny // 2 + 512), slice(nx // 3, nx // 3 + 512)),
                 "2048 x 4096": (slice(ny // 4, ny // 4 + 2048), slice(nx // 3, nx // 3 + 4096)),
                 "full-width band of 1024 rows": (slice(ny // 2, ny // 2 + 1024), slice(0, nx))}
        tiles = {k: (slice(r.start, min(r.stop, ny)), slice(c.start, min(c.stop, nx))) for k, (r, c) in tiles.items()}
        size = s3.head_object(Bucket="bench", Key=key)["ContentLength"]
        print(json.dumps({"object": url, "object_bytes": size, "grid": [ny, nx]}), flush=True)
        for name, (rs, cs) in tiles.items():
            rows, cols = np.arange(rs.start, rs.stop), np.arange(cs.start, cs.stop)
            walls, fetched, requests = [], 0, 0
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                with StepReader(remote, "analysed_sst") as r:
                    got = r.read(t, rows, cols)
                    handle = r.handle(t)
                    assert isinstance(handle, HDF5File) and handle.source is not None
                    fetched, requests = handle.source.bytes_fetched, handle.source.requests
                walls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with open_dataset(url) as ds:  # before: the whole object, then netCDF4 from memory
                ds["analysed_sst"][0, rs, cs]
            whole = time.perf_counter() - t0
            with StepReader(entry, "analysed_sst") as r:
                assert r.read(t, rows, cols).tobytes() == got.tobytes()
            print(json.dumps({"tile": name, "bytes_fetched": fetched, "requests": requests,
                              "fraction_of_object": round(fetched / size, 4),
                              "median_s": round(statistics.median(walls), 3),
                              "whole_object_read_s": round(whole, 3)}), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
