"""glibc's heap, set for the processes that run tasks: a step's freed arrays are reused.

A map task allocates and frees arrays of one step's size every step (at 0.1 degree, 26 MB of
values and of labels). glibc serves a block over its mmap threshold (128 KiB, raised to the size
of the last mapped block freed) with a fresh mapping, and gives the top of its heap back to the
system once more than twice that is free there. Either way the next step's arrays are new pages,
which the kernel faults in and zeroes again: a read of 35 ms took 70-110 ms every few steps on
this machine (benchmarks/RESULTS.md, eleventh pass). With the mmap threshold at its largest
(32 MiB) and the trim threshold above a step's arrays, a freed step's pages serve the next one.

It never raises a process's peak: what the heap keeps is memory the process already used at
once. Only glibc has these settings (``mallopt``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): bigger blocks are still mapped
TRIM_THRESHOLD = 512 << 20

_applied: bool | None = None


def keep_freed_arrays() -> bool:
    """Set the thresholds in this process (once; a forked child inherits them). True if set."""
    global _applied
    if _applied is None:
        _applied = False
        if _glibc():
            libc = ctypes.CDLL(None)
            _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False
