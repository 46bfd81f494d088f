"""Raw reads of deflate/shuffle-compressed HDF5 chunks, inflated by libdeflate.

netCDF-4 and HDF5 inputs (IMERG, MERGIR, MERRA-2, MUR) store variables in chunks compressed
with deflate, usually after the byte shuffle. HDF5's own zlib inflate is most of the time a map
task spends reading; libdeflate (the ``deflate`` package) inflates the same bytes about 8x
faster. This module returns the *undecoded* values of a region (what netCDF4 returns with
``set_auto_maskandscale(False)``); the reader applies fill values, valid ranges and packing
afterwards, the same way for both paths. A variable with any other filter, or a chunk whose
filter mask says a filter was skipped, is read by h5py instead (:class:`NotFast`).
"""

from __future__ import annotations

import itertools
import math

import deflate
import h5py
import numpy as np

GZIP_FILTER, SHUFFLE_FILTER = 1, 2


class NotFast(Exception):
    """This variable or chunk cannot take the raw path: read it the ordinary way."""


class RawChunks:
    """The raw chunks of one chunked HDF5 dataset whose filters are (shuffle,) deflate or none."""

    def __init__(self, dataset: h5py.Dataset):
        plist = dataset.id.get_create_plist()
        filters = [plist.get_filter(k)[0] for k in range(plist.get_nfilters())]
        if dataset.chunks is None or any(f not in (GZIP_FILTER, SHUFFLE_FILTER) for f in filters):
            raise NotFast(f"{dataset.name}: not chunked, or filters {filters} other than shuffle/deflate")
        if dataset.dtype.kind not in "iuf" or not dataset.dtype.isnative:
            raise NotFast(f"{dataset.name}: dtype {dataset.dtype}")
        if SHUFFLE_FILTER in filters and GZIP_FILTER in filters and filters.index(SHUFFLE_FILTER) > 0:
            raise NotFast(f"{dataset.name}: deflate before shuffle")
        self.dataset = dataset
        self.chunk = dataset.chunks
        self.dtype = dataset.dtype
        self.deflated = GZIP_FILTER in filters
        self.shuffled = SHUFFLE_FILTER in filters and self.dtype.itemsize > 1
        self.chunk_bytes = math.prod(self.chunk) * self.dtype.itemsize
        self.fill = dataset.fillvalue

    def _chunk(self, origin: tuple[int, ...]) -> np.ndarray:
        try:
            skipped, data = self.dataset.id.read_direct_chunk(origin)
        except RuntimeError:  # h5py's answer for a chunk never written: the dataset's fill value
            info = self.dataset.id.get_chunk_info_by_coord(origin)
            if info.byte_offset is None or info.size == 0:
                return np.full(self.chunk, self.fill, self.dtype)
            raise
        if skipped:
            raise NotFast(f"{self.dataset.name}: chunk {origin} skipped a filter")
        raw = deflate.zlib_decompress(data, self.chunk_bytes) if self.deflated else data
        if len(raw) != self.chunk_bytes:
            raise NotFast(f"{self.dataset.name}: chunk {origin} holds {len(raw)} bytes, not {self.chunk_bytes}")
        flat = np.frombuffer(raw, np.uint8)
        if self.shuffled:  # bytes were stored plane by plane: all first bytes, then all second...
            planes = flat.reshape(self.dtype.itemsize, -1)
            interleaved = np.empty((planes.shape[1], planes.shape[0]), np.uint8)
            for k, plane in enumerate(planes):  # one strided copy per byte plane: 4x faster than .T.ravel()
                interleaved[:, k] = plane
            flat = interleaved.ravel()
        return flat.view(self.dtype).reshape(self.chunk)

    def read(self, key: tuple) -> np.ndarray:
        """Values at ``key`` (one int or a ``slice(start, stop)`` with step 1 per dimension), as
        ``dataset[key]`` would return them."""
        starts, stops, dropped = [], [], []
        for axis, (k, n) in enumerate(zip(key, self.dataset.shape)):
            if isinstance(k, slice):
                a, b, _ = k.indices(n)
                starts.append(a)
                stops.append(max(a, b))
            else:
                starts.append(int(k))
                stops.append(int(k) + 1)
                dropped.append(axis)
        out = np.empty([b - a for a, b in zip(starts, stops)], self.dtype)
        if out.size:
            ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, self.chunk)]
            for index in itertools.product(*ranges):
                origin = tuple(i * c for i, c in zip(index, self.chunk))
                lo = [max(a, o) for a, o in zip(starts, origin)]
                hi = [min(b, o + c) for b, o, c in zip(stops, origin, self.chunk)]
                src = tuple(slice(x - o, y - o) for x, y, o in zip(lo, hi, origin))
                dst = tuple(slice(x - a, y - a) for x, y, a in zip(lo, hi, starts))
                out[dst] = self._chunk(origin)[src]
        return out.reshape([n for axis, n in enumerate(out.shape) if axis not in dropped])
