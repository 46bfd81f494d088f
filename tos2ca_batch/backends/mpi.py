"""MPI backend: ``mpirun -n N python -m mpi4py -m tos2ca_batch run SPEC --backend mpi``.

Rank 0 runs the job as the local runner does (submit, plan, reduce, finalize and the job row);
for each wave of stages it broadcasts its ``(stage, chunk)`` tasks and every rank runs its
share ``tasks[rank::size]`` through the chunk store, then all meet at a barrier. A rank whose task
raises marks the chunk and the job failed and calls ``MPI_Abort``, so every rank stops at once
and ``mpirun`` exits non-zero (``python -m mpi4py`` does the same for any other exception).
"""

from __future__ import annotations

import logging

from tos2ca_batch.config import Config

log = logging.getLogger("tos2ca_batch")


def _own_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class MPIBackend:
    def __init__(self, comm=None):
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def prepare(self) -> None:
        """Each rank imports what it runs."""

    def start(self, cfg: Config) -> None:
        """The ranks are already running; rank 0 starts its watchdog (``backends.watchdog``), so
        a job it holds does not stay ``running`` if ``mpirun`` stops every rank at once."""
        if self.rank == 0 and getattr(self, "_watchdog", None) is None:
            from tos2ca_batch.backends.watchdog import start as start_watchdog
            from tos2ca_batch.lifecycle import worker_name

            self._watchdog = start_watchdog(cfg, worker_name())

    def _run_share(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]]) -> None:
        from tos2ca_batch.tasks import run_task

        for stage, chunk in tasks[self.rank :: self.size]:
            try:
                run_task(cfg, stage, job_id, chunk, where=f"on rank {self.rank}")
            except BaseException as exc:
                msg = f"{stage} chunk {chunk} on rank {self.rank}: {type(exc).__name__}: {exc}"
                log.error("job %s failed: %s; aborting all ranks", job_id, msg)
                # The task has failed the job with this message already, unless it failed before
                # running the stage (e.g. claiming): only then is it written here. Never overwritten.
                from tos2ca_batch import lifecycle

                lifecycle.fail(cfg, job_id, msg)
                # Abort here, on whichever rank: returning would leave the others in a collective.
                self.comm.Abort(1)

    def run_tasks(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]]) -> None:
        """Rank 0: hand the tasks to every rank and do its own share."""
        self.comm.bcast(("run", job_id, list(tasks)), root=0)
        self._run_share(cfg, job_id, list(tasks))
        self.comm.Barrier()

    def serve(self, cfg: Config) -> None:
        """Ranks > 0: run shares of the stages rank 0 broadcasts until it says stop."""
        while True:
            msg = self.comm.bcast(None, root=0)
            if msg[0] == "stop":
                return
            if msg[0] == "rss":
                self.comm.gather(_own_rss_mib(), root=0)
                continue
            _, job_id, tasks = msg
            self._run_share(cfg, job_id, tasks)
            self.comm.Barrier()

    def abort(self) -> None:
        """Stop every rank at once (an interrupted or cancelled job)."""
        self.comm.Abort(1)

    def peak_rss_mib(self) -> list[float]:
        """Rank 0: every rank's peak resident memory."""
        self.comm.bcast(("rss",), root=0)
        return self.comm.gather(_own_rss_mib(), root=0)

    def close(self) -> None:
        if self.rank == 0:
            self.comm.bcast(("stop",), root=0)
