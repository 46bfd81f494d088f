"""Backends run a parallel stage's chunks; stage code is the same for all of them."""

from __future__ import annotations

from tos2ca_batch.backends.base import Backend, StageFailed

__all__ = ["Backend", "StageFailed", "make_backend"]


def make_backend(name: str, workers: int | None = None) -> Backend:
    if name == "local":
        from tos2ca_batch.backends.local import LocalBackend

        return LocalBackend(workers)
    if name == "mpi":
        from tos2ca_batch.backends.mpi import MPIBackend

        return MPIBackend()
    raise ValueError(f"backend must be one of local, mpi; got {name!r}")
