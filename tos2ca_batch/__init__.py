"""tos2ca-batch: chunk-parallel phenomenon detection and ForTraCC tracking (TOS2CA).

``tos2ca_batch.run(spec, workdir=...)`` runs a job and ``tos2ca_batch.open_job(J, workdir=...)``
opens one (:mod:`tos2ca_batch.api`); both are imported on first use, so importing the package
stays cheap for the command line and array tasks.
"""

__version__ = "0.1.0"
__all__ = ["__version__", "open_job", "run"]


def __getattr__(name: str):
    if name in ("run", "open_job", "Job"):
        from tos2ca_batch import api

        return getattr(api, name)
    raise AttributeError(f"module 'tos2ca_batch' has no attribute {name!r}")
