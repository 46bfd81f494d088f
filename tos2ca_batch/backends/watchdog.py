"""The MPI run's watchdog: when rank 0 dies without ending its jobs, they end ``failed``.

``mpirun`` answers a rank killed outright (``kill -9``, the OOM killer, a lost node) by killing
every other rank, rank 0 with them, so no rank is left to record anything and the job would stay
``running`` with no reason until its lease lapsed. Rank 0 therefore starts this small process in
a session of its own (out of reach of ``mpirun``'s clean-up) holding the read end of a pipe whose
write end only rank 0 holds: the pipe reads end-of-file exactly when rank 0 is gone, however it
went. Every job still ``running`` under rank 0's name then fails with a reason saying how to
finish it; a job rank 0 ended (complete, failed, cancelled) is not touched.

Run as ``python -m tos2ca_batch.backends.watchdog HOLDER FD``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tos2ca_batch.config import Config


def start(cfg: Config, holder: str) -> int:
    """Start the watchdog of ``holder`` (this process's worker name); returns the pipe's write
    end, which this process keeps open until it exits."""
    read_end, write_end = os.pipe()
    subprocess.Popen([sys.executable, "-m", "tos2ca_batch.backends.watchdog", holder, str(read_end)],
                     pass_fds=(read_end,), start_new_session=True, env=cfg.process_env(),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    os.close(read_end)
    return write_end


def watch(cfg: Config, holder: str, fd: int) -> list[int]:
    """Wait until the pipe's writer is gone; fail the jobs it still held; returns their ids."""
    from tos2ca_batch import lifecycle

    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
    failed = []
    for job_id in cfg.db().running_jobs_of(holder):
        reason = (f"the MPI run ended before the job did: rank 0 ({holder}) is gone (a rank was killed or lost "
                  f"and mpirun stopped the others); finish it with: tos2ca-batch resume {job_id}")
        if lifecycle.fail(cfg, job_id, reason):
            failed.append(job_id)
    return failed


if __name__ == "__main__":
    watch(Config.from_env(), sys.argv[1], int(sys.argv[2]))
