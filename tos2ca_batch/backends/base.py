"""What every backend is: the :class:`Backend` protocol, and :class:`StageFailed`."""

from __future__ import annotations

from typing import Protocol

from tos2ca_batch.config import Config


class StageFailed(RuntimeError):
    def __init__(self, stage: str, chunk: int, message: str):
        super().__init__(f"{stage} chunk {chunk}: {message}")
        self.stage, self.chunk = stage, chunk


class Backend(Protocol):
    def prepare(self) -> None:
        """Get ready before a job begins, while this process has no thread of its own and no
        network client (e.g. import what the workers run); may do nothing."""

    def start(self, cfg: Config) -> None:
        """Start what :meth:`prepare` readied (e.g. fork worker processes); a no-op when started
        or not prepared. ``runner.execute`` calls it before the plan, or after it when the plan
        leaves no thread or client behind."""

    def run_tasks(self, cfg: Config, job_id: int, tasks: list[tuple[str, int]]) -> None:
        """Run these ``(stage, chunk)`` tasks, in any order and at once if it can (they are of one
        wave: none needs another; a chunk another task holds is left to it); raise
        :class:`StageFailed` if one fails."""

    def peak_rss_mib(self) -> list[float]:
        """Peak resident memory of the processes that ran tasks."""

    def abort(self) -> None:
        """Stop running tasks now (their chunks are released by the job's cancellation)."""

    def close(self) -> None: ...
