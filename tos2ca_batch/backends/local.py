"""Local backend: a process pool whose workers run each array task as a container would."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import resource
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from tqdm import tqdm

from tos2ca_batch.backends.base import StageFailed
from tos2ca_batch.config import Config
from tos2ca_batch.heap import tune_for_tasks
from tos2ca_batch.interrupts import held

tqdm.monitor_interval = 0  # no monitor thread: a process that forks workers keeps no thread of its own


def _exit_with_parent(parent: int) -> None:
    """A pool process whose parent died (``kill -9`` of ``run``) ends too, at once: its chunk's
    lease then names a dead process, which ``resume`` releases."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


_worker_config: Config | None = None  # this pool process's configuration, set once by _init_worker


def _init_worker(pickled_cfg: bytes) -> None:
    """Once per pool process: its configuration (the parent's settings, unpickled here so that no
    connection or client of the parent is shared; no secret is read again) and imports."""
    global _worker_config
    # Unpickling configures S3 afresh, which drops clients a forked process inherited.
    _worker_config = pickle.loads(pickled_cfg)
    # Ctrl-C reaches the whole process group: only the parent handles it (it stops the pool),
    # whose SIGTERM ends a worker at once (a pool forked in the job inherits the CLI's handlers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    tune_for_tasks()  # the parent may be a notebook's, which keeps the defaults
    import tos2ca_batch.tasks  # noqa: F401  (import the stack once per worker, not per task)


_preloaded = False


def preload() -> None:
    """Import what a job runs, once, before the workers are forked: every stage module, netCDF4
    (the masks file) and the planner with its scan cache (this process plans the job). zarr is
    not among them: a job writes its ids without it (``stores.zarrwrite``); only the stages that
    read the ids back import it."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import encodings.ascii  # noqa: F401  (h5py decodes the first ASCII attribute with it: the plan's)
    import importlib

    import tos2ca_batch.tasks  # noqa: F401
    from tos2ca_batch.pipeline import STAGES

    for stage in STAGES.values():
        importlib.import_module(f"tos2ca_batch.stages.{stage.module}")
    for module in ("netCDF4", "tos2ca_batch.stages.plan", "tos2ca_batch.stores.scancache"):
        importlib.import_module(module)
    from tos2ca_batch.timeutil import decode_file_times

    # cftime's first call costs 0.5 ms (its caches): paid here once, not by the plan and each worker
    decode_file_times([0.0], "seconds since 1980-01-06 00:00:00", "julian", "warm-up")


def _ready(_: int) -> int:
    return os.getpid()


def _child(stage: str, job_id: int, chunk: int) -> tuple[str, int]:
    """Runs one task in a pool process; returns (state, peak RSS in KiB)."""
    from tos2ca_batch.tasks import run_task

    state = run_task(_worker_config, stage, job_id, chunk)
    return state, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class LocalBackend:
    """One worker runs tasks in this process; more run them in a process pool.

    A pool costs nothing per job or task beyond its first start: :meth:`prepare`, called before
    the job begins (before any thread or network client exists), imports everything, and
    :meth:`start` forks the workers from this process (``runner.execute``: before the job's
    plan, or after it when that leaves no thread or client). A pool a library caller did not
    prepare is spawned when first needed, so its processes see this process's environment as
    it is then (a fork server's would be the one of its own start). Either way each worker
    keeps its ``Config``, connections and imports for every task it runs.
    """

    def __init__(self, workers: int | None = None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._pool_cfg: Config | None = None
        self._prepared = False
        self.peak_rss_kib: dict[str, int] = {}

    def _forks(self) -> bool:
        return self.workers > 1 and "fork" in mp.get_all_start_methods()

    def prepare(self) -> None:
        """Import what the workers run, in this process, so that :meth:`start` forks them with it."""
        if self._forks():
            preload()
            self._prepared = True

    def start(self, cfg: Config) -> None:
        """Fork the pool's processes now (a no-op with one worker, when not prepared, or when
        already started). While this process has no thread of its own and no network client: a
        forked worker inherits neither their threads nor their locks (``runner.execute``)."""
        if self._prepared and self._pool is None:
            self._make_pool(cfg, mp.get_context("fork"))
            list(self._pool.map(_ready, range(self.workers)))  # the executor forks every worker now

    def _make_pool(self, cfg: Config, context) -> None:
        self._pool_cfg = cfg
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                         initargs=(pickle.dumps(cfg),))

    def _ensure_pool(self, cfg: Config) -> ProcessPoolExecutor:
        if self._pool is not None and cfg is not self._pool_cfg:  # another configuration: new processes
            self.close()
        if self._pool is None:
            self._make_pool(cfg, mp.get_context("spawn"))
        return self._pool

    def run_tasks(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]]) -> None:
        label = f"job {job_id} {'+'.join(dict.fromkeys(stage for stage, _ in tasks))}"
        if self.workers == 1:
            self._run_here(cfg, job_id, tasks, label)
            return
        pool = self._ensure_pool(cfg)
        futures = {pool.submit(_child, stage, job_id, c): (stage, c) for stage, c in tasks}
        with tqdm(total=len(tasks), desc=label, unit="chunk", leave=False) as bar:
            pending = set(futures)
            while pending:
                with held():  # a signal inside wait() would leave futures' locks taken (interrupts.py)
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)  # bar moves per chunk
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        for other in pending:
                            other.cancel()
                        raise StageFailed(*futures[fut], f"{type(exc).__name__}: {exc}") from exc
                    state, rss = fut.result()
                    stage = futures[fut][0]
                    self.peak_rss_kib[stage] = max(self.peak_rss_kib.get(stage, 0), rss)
                    bar.update(1)

    def _run_here(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]], label: str) -> None:
        """One worker: the tasks run in this process, one after another (no process to start)."""
        from tos2ca_batch.tasks import run_task

        for stage, chunk in tqdm(tasks, desc=label, unit="chunk", leave=False):
            try:
                run_task(cfg, stage, job_id, chunk)
            except Exception as exc:
                raise StageFailed(stage, chunk, f"{type(exc).__name__}: {exc}") from exc
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_rss_kib[stage] = max(self.peak_rss_kib.get(stage, 0), rss)

    def peak_rss_mib(self) -> list[float]:
        """Largest peak resident memory of a pool process (every stage), in MiB."""
        return [round(max(self.peak_rss_kib.values(), default=0) / 1024, 1)]

    def abort(self) -> None:
        """Terminate the pool's processes now: no task keeps running after an interruption."""
        if self._pool is None:
            return
        procs = list((self._pool._processes or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
