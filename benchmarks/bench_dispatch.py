"""What handing one task to a worker process costs after an idle gap, as between a job's waves.

    python benchmarks/bench_dispatch.py [--gap-ms 20] [--tasks 100]

The local backend hands tasks to a forked ``ProcessPoolExecutor``; a one-task stage (reduce,
finalize) waits for one such round trip. The executor passes a task through its manager thread
and its call queue's feeder thread to the worker, and the result back through the manager
thread: more thread wake-ups than a worker reading one pipe and answering on it, and on a VM
each wake-up of an idle vCPU is slow. Both are timed here with a task that does nothing, each
after ``--gap-ms`` of idling. Prints one JSON line: medians and 90th percentiles in ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.connection import wait as wait_connections


def nothing(x: int) -> int:
    return x


def serve(conn) -> None:
    while (msg := conn.recv()) is not None:
        conn.send(nothing(msg))


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(times) * 1e3, 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e3, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args()
    ctx, gap = mp.get_context("fork"), args.gap_ms / 1000
    pool_times, pipe_times = [], []
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        list(pool.map(nothing, range(4)))  # both workers forked and warm
        for i in range(args.tasks):
            time.sleep(gap)
            t0 = time.perf_counter()
            future = pool.submit(nothing, i)
            wait({future}, timeout=5, return_when=FIRST_COMPLETED)
            future.result()
            pool_times.append(time.perf_counter() - t0)
    ours, theirs = ctx.Pipe()
    worker = ctx.Process(target=serve, args=(theirs,))
    worker.start()
    for i in range(args.tasks):
        time.sleep(gap)
        t0 = time.perf_counter()
        ours.send(i)
        wait_connections([ours], 5)
        ours.recv()
        pipe_times.append(time.perf_counter() - t0)
    ours.send(None)
    worker.join()
    print(json.dumps({"benchmark": "dispatch", "gap_ms": args.gap_ms, "tasks": args.tasks,
                      "process_pool_executor": summary(pool_times), "one_pipe_a_worker": summary(pipe_times)}))


if __name__ == "__main__":
    main()
