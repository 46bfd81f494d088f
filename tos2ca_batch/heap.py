"""Memory settings for the processes that run tasks: a step's freed arrays are reused at once.

A map task allocates and frees arrays of one step's size every step (at 0.1 degree, 26 MB of
values and of labels). Two defaults make the next step's arrays fresh pages, which the kernel
must fault in (and zero) again, at a cost that dwarfs the work on them (benchmarks/RESULTS.md,
eleventh pass; 1800 x 3600 steps, IMERG layout, on this machine):

- glibc serves a block over its mmap threshold (128 KiB, raised to the size of the last mapped
  block freed) with a fresh mapping, and gives the top of its heap back to the system once more
  than twice that is free there: a 35 ms read took 70-110 ms every few steps. Here the mmap
  threshold is set to its largest (32 MiB) and the trim threshold above a step's arrays, so a
  freed step's pages serve the next one (``mallopt``).
- numpy asks for transparent huge pages on every array of 4 MB or more (``madvise``), and a
  kernel whose THP ``defrag`` setting is ``madvise`` (the usual default) then compacts memory
  inside the page fault: a worker's first five labellings took 22-52 ms instead of 8, and two
  workers' first chunks 0.15-0.35 s longer. Here numpy's advice is turned off (what
  ``NUMPY_MADVISE_HUGEPAGE=0`` does at import); the steady state runs no slower without them.

Neither raises a process's peak: what the heap keeps is memory the process already used at once.
Only glibc has ``mallopt``; elsewhere that part does nothing.
"""

from __future__ import annotations

import ctypes
import importlib
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): bigger blocks are still mapped
TRIM_THRESHOLD = 512 << 20

_tuned: dict[str, bool] | None = None


def tune_for_tasks() -> dict[str, bool]:
    """Apply both settings in this process (once; a forked child inherits them). Returns which
    took: ``{"heap_kept": ..., "no_huge_page_advice": ...}``."""
    global _tuned
    if _tuned is None:
        _tuned = {"heap_kept": _keep_freed_heap(), "no_huge_page_advice": _no_huge_page_advice()}
    return dict(_tuned)


def _keep_freed_heap() -> bool:
    if not _glibc():
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _no_huge_page_advice() -> bool:
    """numpy reads ``NUMPY_MADVISE_HUGEPAGE`` once, at import; this is its switch afterwards."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2; numpy 1.26
        try:
            multiarray = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(multiarray, "_set_madvise_hugepage"):
            multiarray._set_madvise_hugepage(False)
            return not multiarray._get_madvise_hugepage()
    return False


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False
