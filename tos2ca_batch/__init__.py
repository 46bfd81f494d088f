"""tos2ca-batch: chunk-parallel phenomenon detection and ForTraCC tracking (TOS2CA)."""

__version__ = "0.1.0"
