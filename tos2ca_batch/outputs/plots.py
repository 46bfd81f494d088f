"""PNG plots: one per time step (variable, anomaly outlines and ids) and the track summary, on
coastlines with degree-labelled axes (``outputs.coastlines``)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tos2ca_batch.outputs import coastlines  # noqa: E402

MAX_PIXELS_ACROSS = 1600


def _outline(ax, geom, **kw) -> None:
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors]:
            x, y = ring.xy
            ax.plot(x, y, **kw)


def step_png(path: str, values: np.ndarray, lat_edges, lon_edges, anomalies: list[dict], title: str,
             units: str, scale: tuple[float, float] | None = None, width: float = 10.0, dpi: int = 100) -> None:
    """``anomalies``: dicts with ``id``, ``geometry`` (unwrapped lon) and ``centroid`` (lon, lat);
    ``scale``: the colour range, one for every step of a job so that frames compare; missing
    pixels are grey."""
    stride = max(1, int(np.ceil(max(values.shape) / MAX_PIXELS_ACROSS)))
    shown = values[::stride, ::stride]
    aspect = (lat_edges[-1] - lat_edges[0]) / max(lon_edges[-1] - lon_edges[0], 1e-9)
    fig, ax = plt.subplots(figsize=(width, max(0.3 * width, width * aspect * 0.9)), dpi=dpi)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.75")
    vmin, vmax = scale if scale is not None else (None, None)
    im = ax.imshow(shown, origin="lower", cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax,
                   extent=(lon_edges[0], lon_edges[-1], lat_edges[0], lat_edges[-1]), aspect="auto")
    fig.colorbar(im, ax=ax, label=f"{units} (grey: missing)", shrink=0.8)
    for a in anomalies:
        _outline(ax, a["geometry"], color="red", linewidth=0.8)
        ax.text(*a["centroid"], str(a["id"]), color="white", fontsize=8, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.5, "lw": 0})
    coastlines.draw(ax, lon_edges[0], lon_edges[-1], lat_edges[0], lat_edges[-1], color="white")
    ax.set_xlim(lon_edges[0], lon_edges[-1])
    ax.set_ylim(lat_edges[0], lat_edges[-1])
    coastlines.degree_axes(ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def tracks_png(path: str, tracks: dict[int, list[tuple[float, float]]], bounds, title: str,
               spans: dict[int, str] | None = None) -> None:
    """Centroid paths (unwrapped lon, lat) of every anomaly; a dot marks the start; ``spans``
    (id -> "start to end") label the legend (the first 20 tracks)."""
    fig, ax = plt.subplots(figsize=(10, 6), dpi=100)
    cmap = plt.get_cmap("tab20")
    for a, path_pts in sorted(tracks.items()):
        x, y = (np.array(v, np.float64) for v in zip(*path_pts))
        if bounds[2] - bounds[0] >= 359:  # global map: draw crossings of the map edge as breaks
            x = (x - bounds[0]) % 360 + bounds[0]
            jump = np.flatnonzero(np.abs(np.diff(x)) > 180) + 1
            x, y = np.insert(x, jump, np.nan), np.insert(y, jump, np.nan)
        color = cmap((a - 1) % 20)
        label = f"{a}: {spans[a]}" if spans and a in spans and a <= 20 else None
        ax.plot(x, y, "-", color=color, linewidth=1.2, label=label)
        ax.plot(x[0], y[0], "o", color=color, markersize=4)
        ax.text(x[-1], y[-1], str(a), fontsize=8, color=color)
    coastlines.draw(ax, bounds[0], bounds[2], bounds[1], bounds[3])
    ax.set_xlim(bounds[0], bounds[2])
    ax.set_ylim(bounds[1], bounds[3])
    if spans:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
                  title="anomaly: start to end (UTC)" + (f"; 20 of {len(tracks)}" if len(tracks) > 20 else ""),
                  title_fontsize=7)
    coastlines.degree_axes(ax)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def anomaly_png(path: str, rows: np.ndarray, title: str, units: str) -> None:
    """The curated variable on one anomaly's mask pixels (rows: lat, lon, value)."""
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    lon = np.unwrap(rows[:, 1], period=360.0)
    sc = ax.scatter(lon, rows[:, 0], c=rows[:, 2], s=12, marker="s", cmap="plasma")
    fig.colorbar(sc, ax=ax, label=units, shrink=0.8)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def anomaly_steps_png(path: str, frames: list[tuple[str, np.ndarray, tuple[float, float, float, float]]]) -> None:
    """One anomaly at each step shown: ``frames`` of (title, cells, (lon0, lon1, lat0, lat1)) where
    cells are 2 (this anomaly), 1 (another) or 0 (none), on coastlines."""
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#ffffff", "#c8c8c8", "#c0392b"])
    fig, axes = plt.subplots(1, len(frames), figsize=(1.0 + 1.9 * len(frames), 2.3), dpi=80, squeeze=False)
    for ax, (title, cells, (x0, x1, y0, y1)) in zip(axes[0], frames):
        ax.imshow(cells, origin="lower", cmap=cmap, vmin=0, vmax=2, interpolation="nearest",
                  extent=(x0, x1, y0, y1), aspect="auto")
        coastlines.draw(ax, x0, x1, y0, y1)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        coastlines.degree_axes(ax)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


MAX_ANIMATION_FRAMES = 480  # the animation shows the job's last steps: 10 days of half-hourly data


def _palette():
    """One palette for every frame of every animation (viridis, greys, the outlines' red), so a
    frame read back from a GIF is the frame written and a sync can append to the job's GIF."""
    from PIL import Image

    colours = [tuple(int(255 * c) for c in plt.get_cmap("viridis")(k / 191)[:3]) for k in range(192)]
    colours += [(g, g, g) for g in np.linspace(0, 255, 56).astype(int)]
    colours += [(255, 0, 0), (191, 0, 0), (255, 128, 128), (128, 0, 0), (255, 255, 255), (0, 0, 0), (191, 191, 191),
                (64, 64, 64)]
    image = Image.new("P", (1, 1))
    image.putpalette([v for c in colours[:256] for v in c])
    return image


def step_frame(values: np.ndarray, lat_edges, lon_edges, anomalies: list[dict], title: str, units: str,
               scale, tmp: str) -> bytes:
    """A small PNG of one step, as the animation shows it (``step_png`` at two thirds of the size)."""
    path = f"{tmp}/frame.png"
    step_png(path, values, lat_edges, lon_edges, anomalies, title, units, scale, width=9.0, dpi=75)
    with open(path, "rb") as f:
        return f.read()


def write_gif(path: str, frames: list[bytes], earlier: str | None = None, ms: int = 400) -> None:
    """An animated GIF of the PNG ``frames`` (after the frames of the GIF ``earlier``, when a sync
    grows a job's), the last ``MAX_ANIMATION_FRAMES`` of them, each on the one palette."""
    import io

    from PIL import GifImagePlugin, Image, ImageSequence

    palette = _palette()
    images = []
    if earlier is not None:
        GifImagePlugin.LOADING_STRATEGY = GifImagePlugin.LoadingStrategy.RGB_AFTER_DIFFERENT_PALETTE_ONLY
        with Image.open(earlier) as gif:
            images = [frame.copy() for frame in ImageSequence.Iterator(gif)]
    for png in frames[-MAX_ANIMATION_FRAMES:]:
        with Image.open(io.BytesIO(png)) as im:
            images.append(im.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE))
    images = images[-MAX_ANIMATION_FRAMES:]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0,
                   optimize=False, disposal=1)
