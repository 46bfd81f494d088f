"""Replay the AWS Batch submission graph of a long job against a model of Batch.

    python benchmarks/simulate_batch.py [--years 20] [--containers 100 1000 5000] [--spot-rate 0.05]
        [--max-vcpus 2000] [--launch-rate 20 --launch-burst 100] [--plot benchmarks/scale-makespan.png]

The graph is what ``tos2ca-batch aws submit`` sends for a global 0.1-degree IMERG job of that
length with its default chunking (``algorithm.default_chunking`` with ``array_chunks``: blocks
of ~180 steps for 20 years; the arrays split at 10,000 children, ``aws_batch.array_parts``): map
and relabel arrays of one chunk per block, reduce
and finalize as single jobs, publish per block, the masks and ids files per month; each stage
waits for the whole stage before.

The model of Batch: ``N`` containers, no more than ``--max-vcpus`` holds at ``--vcpus`` each;
a child starts when a container is free (FIFO over the released stages) and Fargate has a
launch for it (a token bucket of ``--launch-burst`` launches refilled at ``--launch-rate`` a
second, AWS's documented quota per account and Region; ``--launch-rate 0``: unlimited), pays a
container start, then runs for a time drawn from a lognormal whose
median is the measured cost of its chunk (per step of 1800 x 3600 on one core, from
``benchmarks/RESULTS.md``: map 75 ms, relabel 19 ms, publish 4 ms; a month's files 0.6 ms a step
for the masks file's structure and 160 ms a step for the ids netCDF; the reduce from
``bench_serial.py``) and whose spread is ``--cv``.
A Spot reclaim ends a running child at rate ``--spot-rate`` per container-hour; the job
definitions' retry strategy (3 attempts, retried on host termination) runs it again, and a child
that loses all three attempts fails the job. Prints one JSON line per container count: makespan,
retries, failed children, and the critical path (the time each stage spends, in order).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tos2ca_batch.algorithm import default_chunking  # noqa: E402
from tos2ca_batch.aws_batch import array_parts  # noqa: E402

PER_STEP_S = {"map": 0.075, "relabel": 0.019, "publish": 0.004, "masks": 0.0006, "ids": 0.16}
ATTEMPTS = 3


def reduce_seconds(steps: int) -> float:
    """The reduce's time, linear in the steps (bench_serial.py: 37 components a step, 23.7 s for
    100,000 steps)."""
    return 2.4e-4 * steps


class LaunchBucket:
    """Fargate's launch throttle: ``burst`` tokens, refilled at ``rate`` a second; a launch
    takes one, waiting for it when the bucket is empty."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.time = float(burst), 0.0

    def launch(self, wanted: float) -> float:
        """When a launch asked for at ``wanted`` (never earlier than the last ask) happens."""
        if self.rate <= 0:
            return wanted
        t = max(wanted, self.time)
        self.tokens = min(self.burst, self.tokens + (t - self.time) * self.rate)
        if self.tokens < 1:
            t += (1 - self.tokens) / self.rate
            self.tokens = 1.0
        self.tokens -= 1
        self.time = t
        return t


def graph(years: float, block_steps: int | None = None, memory_mb: float = 2048,
          array_chunks: int = 2000) -> list[tuple[str, int, float]]:
    """(stage, children, median seconds per child) in submission order; blocks of ``block_steps``
    (default: what ``aws submit`` plans, ``array_chunks`` map chunks)."""
    steps = int(years * 365.25 * 48)
    block, tile = default_chunking(steps, 1800, 3600, memory_mb, array_chunks)
    block = block_steps or block
    blocks = math.ceil(steps / block)
    tiles = math.ceil(1800 / tile[0]) * math.ceil(3600 / tile[1])
    per_tile = block * (tile[0] * tile[1]) / (1800 * 3600)
    months = math.ceil(years * 12)  # masks and ids files per month, in parallel (jobs over a year)
    return [("map", blocks * tiles, PER_STEP_S["map"] * per_tile), ("reduce", 1, reduce_seconds(steps)),
            ("relabel", blocks * tiles, PER_STEP_S["relabel"] * per_tile),
            ("publish", blocks, PER_STEP_S["publish"] * block),
            ("periods", months, (PER_STEP_S["masks"] + PER_STEP_S["ids"]) * 31 * 48),
            ("finalize", 1, 1e-4 * steps)]


def simulate(stages, containers: int, spot_rate_per_hour: float, cv: float, start_s: float, seed: int,
             launches: LaunchBucket | None = None) -> dict:
    rng = np.random.default_rng(seed)
    launches = launches or LaunchBucket(0, 0)
    waited = 0.0
    sigma = math.sqrt(math.log(1 + cv * cv))
    clock, retries, failed = 0.0, 0, 0
    critical = []
    for name, children, median in stages:
        parts = array_parts(children)
        durations = median * rng.lognormal(-sigma * sigma / 2, sigma, children)  # mean = median's model
        free = [clock] * min(containers, children)
        heapq.heapify(free)
        attempts = np.zeros(children, np.int64)
        queue = list(range(children))
        end = clock
        while queue:
            child = queue.pop()
            free_at = heapq.heappop(free)
            launched = launches.launch(free_at)
            waited += launched - free_at
            t = launched + start_s
            run = durations[child]
            reclaim = rng.exponential(3600 / spot_rate_per_hour) if spot_rate_per_hour > 0 else math.inf
            if reclaim < run:  # the host went away: Batch retries on another one
                attempts[child] += 1
                retries += 1
                heapq.heappush(free, t + reclaim)
                if attempts[child] >= ATTEMPTS:
                    failed += 1
                else:
                    queue.append(child)
                continue
            heapq.heappush(free, t + run)
            end = max(end, t + run)
        critical.append({"stage": name, "children": children, "arrays": len(parts),
                         "seconds": round(end - clock, 1)})
        clock = end
    return {"makespan_h": round(clock / 3600, 2), "retries": retries, "failed_children": failed,
            "launch_wait_container_h": round(waited / 3600, 2), "critical_path": critical}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=float, default=20)
    ap.add_argument("--containers", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--spot-rate", type=float, default=0.05, help="reclaims per container-hour")
    ap.add_argument("--cv", type=float, default=0.3, help="spread of child times (coefficient of variation)")
    ap.add_argument("--container-start", type=float, default=30.0, help="seconds to start a container")
    ap.add_argument("--block-steps", type=int, nargs="+", default=[0], help="0: aws submit's default")
    ap.add_argument("--max-vcpus", type=int, default=2000, help="the compute environment's maxvCpus")
    ap.add_argument("--vcpus", type=int, default=2, help="vCPUs of a container (the job definitions' 2)")
    ap.add_argument("--launch-rate", type=float, default=20.0, help="Fargate launches a second (0: unlimited)")
    ap.add_argument("--launch-burst", type=int, default=100, help="launches Fargate allows at once")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    rows = []
    for block in args.block_steps:
        stages = graph(args.years, block or None)
        for n in args.containers:
            running = min(n, args.max_vcpus // args.vcpus)
            res = simulate(stages, running, args.spot_rate, args.cv, args.container_start, args.seed,
                           LaunchBucket(args.launch_rate, args.launch_burst))
            rows.append({"years": args.years, "block_steps": block or "default", "containers": n,
                         "containers_running": running, "map_children": stages[0][1], **res})
            print(json.dumps(rows[-1]), flush=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.4))
        bottom = np.zeros(len(rows))
        names = [c["stage"] for c in rows[0]["critical_path"]]
        for k, name in enumerate(names):
            hours = np.array([r["critical_path"][k]["seconds"] / 3600 for r in rows])
            ax.bar([f"{r['containers']}\nblock {r['block_steps']}" for r in rows], hours, bottom=bottom, label=name)
            bottom += hours
        ax.set(xlabel="concurrent containers, steps per block", ylabel="hours",
               title=f"simulated makespan of a {args.years:g}-year global 0.1° job, by stage "
                     f"(spot {args.spot_rate}/h)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
