"""What every backend is: the :class:`Backend` protocol, and :class:`StageFailed`."""

from __future__ import annotations

from typing import Protocol

from tos2ca_batch.config import Config


class StageFailed(RuntimeError):
    def __init__(self, stage: str, chunk: int, message: str):
        super().__init__(f"{stage} chunk {chunk}: {message}")
        self.stage, self.chunk = stage, chunk


class Backend(Protocol):
    def start(self, cfg: Config) -> None:
        """Get ready before a job begins (e.g. start worker processes); may do nothing."""

    def run_tasks(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]]) -> None:
        """Run these ``(stage, chunk)`` tasks, in any order and at once if it can (they are of one
        wave: none needs another; a chunk another task holds is left to it); raise
        :class:`StageFailed` if one fails."""

    def peak_rss_mib(self) -> list[float]:
        """Peak resident memory of the processes that ran tasks."""

    def abort(self) -> None:
        """Stop running tasks now (their chunks are released by the job's cancellation)."""

    def close(self) -> None: ...
