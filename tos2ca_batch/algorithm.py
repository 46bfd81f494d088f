"""Pure planning: which grid cells a job covers and how it is cut into chunks.

No I/O here. The job grid has latitude ascending and longitude running east from the box's
western edge, so a box crossing 180 degrees is one contiguous run of columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STATS_BLOCK = 24  # canonical time blocking of the anomalyEvent stats pass (see kernels.stats)
BYTES_PER_PIXEL = 48  # working set of the map stage per tile pixel (two steps and temporaries)


def lon180(lon: np.ndarray) -> np.ndarray:
    return (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0


def spans_globe(src_lon: np.ndarray) -> bool:
    """True when the dataset's longitudes cover the full circle (regular spacing * n = 360)."""
    if src_lon.size < 2:
        return False
    step = abs(float(src_lon[1] - src_lon[0]))
    return abs(step * src_lon.size - 360.0) < 0.5 * step


def select_grid(src_lat: np.ndarray, src_lon: np.ndarray, bbox) -> tuple[np.ndarray, np.ndarray, bool]:
    """Source row and column indices of the job grid, and whether it wraps around in longitude."""
    x0, y0, x1, y1 = bbox
    lat_idx = np.flatnonzero((src_lat >= y0) & (src_lat <= y1))
    rows = lat_idx[np.argsort(src_lat[lat_idx], kind="stable")]
    lon = lon180(src_lon)
    if x0 <= x1:
        inside = (lon >= x0) & (lon <= x1)
        if x1 >= 180:  # 180 itself is -180 after wrapping
            inside |= lon == -180
        cols = np.flatnonzero(inside)
        cols = cols[np.argsort(lon[cols], kind="stable")]
    else:
        east = np.flatnonzero(lon >= x0)
        west = np.flatnonzero(lon <= x1)
        cols = np.r_[east[np.argsort(lon[east], kind="stable")], west[np.argsort(lon[west], kind="stable")]]
    wrap = bool(spans_globe(src_lon) and cols.size == src_lon.size)
    return rows, cols, wrap


def unwrapped_lon(lon: np.ndarray) -> np.ndarray:
    """Monotonic longitudes (may exceed 180) for a job grid that crosses the antimeridian."""
    out = np.asarray(lon, np.float64).copy()
    jumps = np.r_[0, np.cumsum(np.diff(out) < 0)]
    return out + 360.0 * jumps


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Pixel edges half-way between centres (n + 1 values), extrapolated at the ends."""
    c = np.asarray(centres, np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.r_[c[0] - (mid[0] - c[0]), mid, c[-1] + (c[-1] - mid[-1])]


@dataclass(frozen=True)
class Layout:
    """Blocks x tiles of one job; chunk id = block * n_tiles + tile, tile = row * n_tile_cols + col."""

    n_steps: int
    height: int
    width: int
    block_steps: int
    tile_h: int
    tile_w: int

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_steps / self.block_steps)

    @property
    def n_tile_rows(self) -> int:
        return math.ceil(self.height / self.tile_h)

    @property
    def n_tile_cols(self) -> int:
        return math.ceil(self.width / self.tile_w)

    @property
    def n_tiles(self) -> int:
        return self.n_tile_rows * self.n_tile_cols

    @property
    def n_chunks(self) -> int:
        return self.n_blocks * self.n_tiles

    def block(self, b: int) -> tuple[int, int]:
        return b * self.block_steps, min(self.n_steps, (b + 1) * self.block_steps)

    def tile(self, t: int) -> tuple[int, int, int, int]:
        i, j = divmod(t, self.n_tile_cols)
        r0, c0 = i * self.tile_h, j * self.tile_w
        return r0, min(self.height, r0 + self.tile_h), c0, min(self.width, c0 + self.tile_w)

    def chunk(self, chunk_id: int) -> tuple[int, int, int, int, int, int]:
        """``(t0, t1, r0, r1, c0, c1)`` of a chunk."""
        b, t = divmod(chunk_id, self.n_tiles)
        return (*self.block(b), *self.tile(t))

    def tile_of(self, chunk_id: int) -> int:
        return chunk_id % self.n_tiles

    def tiles(self) -> list[tuple[int, int, int, int]]:
        """Every tile's ``(r0, r1, c0, c1)``, in tile order."""
        return [self.tile(t) for t in range(self.n_tiles)]


MIN_BLOCKS = 4  # time blocks a default plan aims for
MIN_BLOCK_STEPS = 6  # shorter default blocks would spend over 1/6 of their reads on halos
MAX_ARRAY_BLOCK_STEPS = 240
"""5 days of half-hourly steps (~20 s of map work on a global 0.1-degree tile). The reduce holds
two map blocks' rows: at 2,500 components a step (rain at its busiest) 240-step blocks keep
it near 1.5 GiB."""


def default_chunking(n_steps: int, height: int, width: int, memory_mb: float,
                     array_chunks: int | None = None) -> tuple[int, tuple[int, int]]:
    """Block length and tile from a per-worker memory budget.

    Memory of the map stage does not grow with the block length (steps stream), so blocks are
    at most 24 steps, and short enough that a job has at least :data:`MIN_BLOCKS` of them (two
    chunks per worker on a 2-core machine even when the grid is one tile; each block past the
    first reads one halo step more). Tiles are the whole grid when it fits the budget, else the
    largest square-ish tile that does.

    ``array_chunks`` (array backends: every chunk is a container that takes 10-60 s to start,
    and Fargate starts ~20 a second): blocks long enough that the map stage has about that many
    chunks, up to :data:`MAX_ARRAY_BLOCK_STEPS`; a 20-year half-hourly job then has blocks of
    ~180 steps, not 14,610 blocks of 24. Never shorter than the rule above.
    """
    max_pixels = max(1, int(memory_mb * 2**20 / BYTES_PER_PIXEL))
    if height * width <= max_pixels:
        tile = (height, width)
    else:
        side = int(math.sqrt(max_pixels))
        tile_h = min(height, side)
        tile = (tile_h, min(width, max(1, max_pixels // tile_h)))
    block = min(n_steps, 24, max(MIN_BLOCK_STEPS, math.ceil(n_steps / MIN_BLOCKS)))
    if array_chunks:
        tiles = math.ceil(height / tile[0]) * math.ceil(width / tile[1])
        block = max(block, min(n_steps, MAX_ARRAY_BLOCK_STEPS, math.ceil(n_steps * tiles / array_chunks)))
    return block, tile


def check_limits(layout: Layout, stage_chunks: dict[str, int], max_chunks: int, memory_mb: float) -> str | None:
    """Why this chunking is refused (None if it is fine): a stage over ``max_chunks`` chunks, or a
    map tile over the per-worker memory budget. The reason names a chunking that works."""
    tile_mb = layout.tile_h * layout.tile_w * BYTES_PER_PIXEL / 2**20
    if tile_mb > memory_mb:
        block, (th, tw) = default_chunking(layout.n_steps, layout.height, layout.width, memory_mb)
        return (f"tile [{layout.tile_h}, {layout.tile_w}] needs about {tile_mb:.0f} MB per worker, over the budget "
                f"of {memory_mb:.0f} MB (TOS2CA_MEMORY_MB); e.g. \"tile\": [{th}, {tw}]")
    worst = max(stage_chunks, key=stage_chunks.get)
    if stage_chunks[worst] <= max_chunks:
        return None
    tiles = layout.n_tiles
    if tiles > max_chunks:  # even one block is too many: bigger tiles
        block, (th, tw) = default_chunking(layout.n_steps, layout.height, layout.width, memory_mb)
        tiles = math.ceil(layout.height / th) * math.ceil(layout.width / tw)
    else:
        th, tw = layout.tile_h, layout.tile_w
    block = max(layout.block_steps, math.ceil(layout.n_steps / max(1, max_chunks // tiles)))
    return (f"the {worst} stage would have {stage_chunks[worst]:,} chunks, over the limit of {max_chunks:,} "
            f"(TOS2CA_MAX_CHUNKS); e.g. {{\"block_steps\": {block}, \"tile\": [{th}, {tw}]}}")


def stats_layout(n_steps: int, layout: Layout) -> Layout:
    """The stats pass: canonical blocks of ``STATS_BLOCK`` steps over the job's tiles."""
    return Layout(n_steps, layout.height, layout.width, STATS_BLOCK, layout.tile_h, layout.tile_w)


PERCENTILE_BYTES = 256 * 2**20  # what one percentile stats task may hold of its baseline's samples


def percentile_layout(n_steps: int, layout: Layout) -> Layout:
    """The percentile stats pass: each task holds every baseline step of a band of rows (within a
    job tile's columns), so a pixel's percentile sees all of its samples at once. Bands are as
    tall as ``PERCENTILE_BYTES`` allows (float64 samples, sorted: about 3 copies); a pixel's
    percentile is its own, so the banding never changes a bit of the result."""
    rows = PERCENTILE_BYTES // max(1, n_steps * layout.tile_w * 8 * 3)
    return Layout(n_steps, layout.height, layout.width, max(1, n_steps), max(1, min(layout.tile_h, rows)),
                  layout.tile_w)


def publish_layout(layout: Layout) -> Layout:
    """Publish works on whole time steps: one chunk per block, one tile."""
    return Layout(layout.n_steps, layout.height, layout.width, layout.block_steps, layout.height, layout.width)


PERIOD_LABEL = {"month": 6, "day": 8}  # characters of a YYYYMMDDhhmm time stamp that name the period


def period_ranges(timestamps: list[str], period: str) -> list[list]:
    """``[first step, end step, label]`` of each calendar ``period`` (month: ``YYYYMM``, day:
    ``YYYYMMDD``) the job's steps fall in, in order."""
    n = PERIOD_LABEL[period]
    out: list[list] = []
    for k, ts in enumerate(timestamps):
        if out and out[-1][2] == ts[:n]:
            out[-1][1] = k + 1
        else:
            out.append([k, k + 1, ts[:n]])
    return out
