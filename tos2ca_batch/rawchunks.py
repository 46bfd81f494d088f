"""Raw reads of deflate/shuffle-compressed HDF5 chunks, inflated by libdeflate.

netCDF-4 and HDF5 inputs (IMERG, MERGIR, MERRA-2, MUR) store variables in chunks compressed
with deflate, usually after the byte shuffle. HDF5's own zlib inflate is most of the time a map
task spends reading; libdeflate (the ``deflate`` package) inflates the same bytes about 8x
faster. This module returns the *undecoded* values of a region (what netCDF4 returns with
``set_auto_maskandscale(False)``); the reader applies fill values, valid ranges and packing
afterwards, the same way for both paths. A variable with any other filter, or a chunk whose
filter mask says a filter was skipped, is read by h5py instead (:class:`NotFast`).

On ``s3://`` (:class:`RangeFile`), h5py reads the file's metadata through a small block cache
of ranged GETs, and a read first looks up the byte ranges of the chunks it needs, coalesces
neighbours and fetches each coalesced range in one request: a task reads the chunks of its
tile, never the whole object.
"""

from __future__ import annotations

import itertools
import math

import deflate
import h5py
import numpy as np

from tos2ca_batch.stores.objectstore import object_size, read_range

GZIP_FILTER, SHUFFLE_FILTER = 1, 2


class NotFast(Exception):
    """This variable or chunk cannot take the raw path: read it the ordinary way."""


def coalesce(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges merged where they overlap or lie less than ``gap`` apart."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class RangeFile:
    """A read-only file object over an S3 object, for ``h5py.File(RangeFile(url))``.

    Reads outside the prefetched ranges are served from ``block``-sized pieces fetched on first
    use (what HDF5's metadata reads need); :meth:`prefetch` fetches the chunks a read needs, one
    request per coalesced range. ``requests`` and ``bytes_fetched`` count what went over the wire.
    """

    def __init__(self, url: str, block: int = 64 * 1024, gap: int = 64 * 1024):
        self.url, self.block, self.gap = url, block, gap
        self.size = object_size(url)
        self.pos = 0
        self.requests = 0
        self.bytes_fetched = 0
        self._blocks: dict[int, bytes] = {}
        self._spans: dict[int, bytes] = {}  # prefetched ranges by start

    def _fetch(self, start: int, stop: int) -> bytes:
        data = read_range(self.url, start, stop)
        self.requests += 1
        self.bytes_fetched += len(data)
        return data

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        for a, b in coalesce([r for r in ranges if self._span(*r) is None], self.gap):
            self._spans[a] = self._fetch(a, b)

    def _span(self, start: int, stop: int) -> bytes | None:
        for a, data in self._spans.items():
            if a <= start and stop <= a + len(data):
                return data[start - a: stop - a]
        return None

    def pread(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.size)
        if stop <= start:
            return b""
        found = self._span(start, stop)
        if found is not None:
            return found
        first, last = start // self.block, (stop - 1) // self.block
        missing = [k for k in range(first, last + 1) if k not in self._blocks]
        if missing:  # one request for the missing blocks (a read's blocks are consecutive)
            lo, hi = missing[0] * self.block, min((missing[-1] + 1) * self.block, self.size)
            data = self._fetch(lo, hi)
            for k in range(missing[0], missing[-1] + 1):
                self._blocks.setdefault(k, data[k * self.block - lo:(k + 1) * self.block - lo])
        joined = b"".join(self._blocks[k] for k in range(first, last + 1))
        return joined[start - first * self.block: stop - first * self.block]

    # the file-object protocol h5py's fileobj driver uses
    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        stop = self.size if n is None or n < 0 else self.pos + n
        data = self.pread(self.pos, stop)
        self.pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self._blocks.clear()
        self._spans.clear()


class RawChunks:
    """The raw chunks of one chunked HDF5 dataset whose filters are (shuffle,) deflate or none.

    ``source``: the :class:`RangeFile` the dataset's file was opened on (S3), whose chunk byte
    ranges a read prefetches; None for a local file (chunks read with ``read_direct_chunk``).
    """

    def __init__(self, dataset: h5py.Dataset, source: RangeFile | None = None):
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
        self.source = source
        self._infos: dict[tuple[int, ...], object] = {}  # chunk infos a read looked up, until used

    def _stored(self, origin: tuple[int, ...]) -> tuple[int, bytes] | None:
        """(filter mask, stored bytes) of the chunk at ``origin``; None if it was never written."""
        if self.source is not None:
            info = self._infos.pop(origin, None) or self.dataset.id.get_chunk_info_by_coord(origin)
            if info.byte_offset is None or info.size == 0:
                return None
            return info.filter_mask, self.source.pread(info.byte_offset, info.byte_offset + info.size)
        try:
            return self.dataset.id.read_direct_chunk(origin)
        except RuntimeError:  # h5py's answer for a chunk never written: the dataset's fill value
            info = self.dataset.id.get_chunk_info_by_coord(origin)
            if info.byte_offset is None or info.size == 0:
                return None
            raise

    def _inflated(self, origin: tuple[int, ...]) -> np.ndarray | None:
        """The chunk's stored bytes after deflate (still shuffled), as uint8; None if never written."""
        stored = self._stored(origin)
        if stored is None:
            return None
        skipped, data = stored
        if skipped:
            raise NotFast(f"{self.dataset.name}: chunk {origin} skipped a filter")
        raw = deflate.zlib_decompress(data, self.chunk_bytes) if self.deflated else data
        if len(raw) != self.chunk_bytes:
            raise NotFast(f"{self.dataset.name}: chunk {origin} holds {len(raw)} bytes, not {self.chunk_bytes}")
        return np.frombuffer(raw, np.uint8)

    def _put(self, origin: tuple[int, ...], src: tuple, dest: np.ndarray) -> None:
        """Chunk ``origin``'s values at ``src`` (slices in the chunk) into ``dest`` (any strides).

        Shuffled bytes are stored plane by plane (all first bytes, then all second...): each
        plane is copied straight into the byte positions of ``dest``'s elements, one strided
        copy per plane, so the values are unshuffled, cut, transposed or reversed in one pass."""
        flat = self._inflated(origin)
        if flat is None:
            dest[...] = self.fill
        elif not self.shuffled:
            dest[...] = flat.view(self.dtype).reshape(self.chunk)[src]
        else:
            planes = flat.reshape(self.dtype.itemsize, *self.chunk)
            for k, target in enumerate(_byte_planes(dest)):
                target[...] = planes[k][src]

    def _regions(self, key: tuple, out: np.ndarray | None) -> tuple[np.ndarray, list]:
        """``out`` (made when None) and, per chunk the read ``key`` meets, (origin, slices in the
        chunk, the view of ``out`` they go to)."""
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
        shape = [b - a for a, b in zip(starts, stops)]
        kept = [n for axis, n in enumerate(shape) if axis not in dropped]
        if out is None:
            out = np.empty(kept, self.dtype)
        if out.shape != tuple(kept) or out.dtype != self.dtype:
            raise ValueError(f"out is {out.shape} {out.dtype}; the read gives {tuple(kept)} {self.dtype}")
        full = np.expand_dims(out, dropped) if dropped else out  # a view, whatever out's strides
        if not out.size:
            return out, []
        ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, self.chunk)]
        origins = [tuple(i * c for i, c in zip(index, self.chunk)) for index in itertools.product(*ranges)]
        if self.source is not None:
            self._infos = {o: self.dataset.id.get_chunk_info_by_coord(o) for o in origins}
            self.source.prefetch([(i.byte_offset, i.byte_offset + i.size) for i in self._infos.values()
                                  if i.byte_offset is not None and i.size])
        regions = []
        for origin in origins:
            lo = [max(a, o) for a, o in zip(starts, origin)]
            hi = [min(b, o + c) for b, o, c in zip(stops, origin, self.chunk)]
            src = tuple(slice(x - o, y - o) for x, y, o in zip(lo, hi, origin))
            dst = tuple(slice(x - a, y - a) for x, y, a in zip(lo, hi, starts))
            regions.append((origin, src, full[dst]))
        return out, regions

    def read(self, key: tuple, out: np.ndarray | None = None) -> np.ndarray:
        """Values at ``key`` (one int or a ``slice(start, stop)`` with step 1 per dimension), as
        ``dataset[key]`` would return them; into ``out`` when given (an array of that shape and
        the dataset's dtype, any strides: e.g. a transposed or reversed view of the caller's
        array, which then holds the values in its own order without another copy)."""
        out, regions = self._regions(key, out)
        for origin, src, dest in regions:
            self._put(origin, src, dest)
        return out

    @property
    def top_bytes(self) -> bool:
        """Little-endian float32: each value's top byte (sign, exponent) is readable on its own."""
        return self.dtype == np.dtype("<f4")

    def candidates(self, key: tuple, out: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        """The values at ``key`` whose top byte, read as int8, is at least ``top`` (0 < ``top``
        < 128: non-negative values from ``2**(2 * top - 127)`` up, +inf and positive NaNs), and
        where they go: (flat indices into the C-contiguous array ``out`` is a view of, values
        undecoded). Nothing is written to ``out``.

        Why: a threshold ``> T`` (``T > 0``) can only hold for such values (:func:`top_byte_below`),
        and on rain-like fields they are a few percent of a step. Their top bytes are one plane of
        a shuffled chunk, compared as they were inflated; only the candidates' four bytes are
        gathered, not every value unshuffled (the copy that was a third of a map task's read)."""
        if not self.top_bytes or not 0 < top < 128:
            raise NotFast(f"{self.dataset.name}: dtype {self.dtype}, top byte {top}")
        out, regions = self._regions(key, out)
        start = root_array(out).__array_interface__["data"][0]
        positions, values = [], []
        for origin, src, dest in regions:
            flat = self._inflated(origin)
            shape = dest.shape
            if flat is None:  # never written: the fill value everywhere
                fill = np.float32(self.fill if self.fill is not None else 0)
                if top_byte(fill) < top:
                    continue
                where = np.unravel_index(np.arange(math.prod(shape)), shape)
                found = np.full(where[0].size, fill, "<f4")
            else:
                planes = (flat.reshape(4, -1) if self.shuffled else flat.reshape(-1, 4).T)
                tops = planes[3].reshape(self.chunk)[src].view(np.int8)
                where = np.unravel_index(np.flatnonzero(tops >= top), shape)
                at = np.ravel_multi_index(tuple(w + s.start for w, s in zip(where, src)), self.chunk)
                found = np.empty((at.size, 4), np.uint8)
                for k in range(4):
                    found[:, k] = planes[k][at]
                found = found.view("<f4").reshape(-1)
            flat_index = np.full(found.size, (dest.__array_interface__["data"][0] - start) // 4, np.int64)
            for axis, w in enumerate(where):
                flat_index += w * (dest.strides[axis] // 4)
            positions.append(flat_index)
            values.append(found)
        if not positions:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(positions), np.concatenate(values)


def top_byte_below(floor: float) -> int | None:
    """The least top byte (read as int8) of any float32 ``v`` with ``v >= floor``, or with
    ``v > float32(floor)`` (numpy compares a float32 array with a Python float in float32):
    the top byte of the largest float32 not above ``floor``, since the bits of non-negative
    floats are ordered as their values. None when ``floor`` is not a finite positive number,
    or below 2**-125 (top byte 0: zeros and every dry pixel would pass, nothing to skip)."""
    if not math.isfinite(floor) or floor <= 0:
        return None
    with np.errstate(over="ignore"):
        low = np.float32(floor)  # the nearest float32 (inf beyond the largest)
    if float(low) > floor:
        low = np.nextafter(low, np.float32(0))
    top = top_byte(low)
    return top if top > 0 else None


def top_byte(value: np.float32) -> int:
    """A float32's top byte (sign and the exponent's high seven bits) read as int8: negative for
    every negative value, and ordered as the values of non-negative ones."""
    return int(np.array(value, "<f4").reshape(1).view(np.int8)[3])


def root_array(view: np.ndarray) -> np.ndarray:
    """The C-contiguous array ``view`` is a view of: the first of its bases that is no view."""
    root = view
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous:
        raise NotFast("destination is not a view of a contiguous array")
    return root


def _byte_planes(view: np.ndarray) -> list[np.ndarray]:
    """One uint8 view per byte of ``view``'s elements (byte k of every element), whatever its
    strides: ``view`` must be a view of a C-contiguous array."""
    root = root_array(view)
    offset = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    buffer = root.reshape(-1).view(np.uint8)
    return [np.ndarray(view.shape, np.uint8, buffer=buffer, offset=offset + k, strides=view.strides)
            for k in range(view.dtype.itemsize)]
