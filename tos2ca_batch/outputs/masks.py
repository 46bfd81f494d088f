"""The TOS2CA masks file, table of contents and hierarchy (SPEC section 6)."""

from __future__ import annotations

import json

import deflate
import netCDF4
import numpy as np


def step_pixels(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anomaly pixels of one step ordered by anomaly id, then row-major: rows, cols, ids, flat index."""
    flat = ids.ravel()
    nz = np.flatnonzero(flat)
    order = np.argsort(flat[nz], kind="stable")
    nz = nz[order]
    width = ids.shape[1]
    return (nz // width).astype(np.int32), (nz % width).astype(np.int32), flat[nz].astype(np.int32), nz


def per_anomaly_stats(aid: np.ndarray, values: np.ndarray) -> dict[int, dict]:
    """count/min/max/mean/std (population) of ``values`` per anomaly id; ``aid`` sorted."""
    if aid.size == 0:
        return {}
    v = values.astype(np.float64)
    starts = np.flatnonzero(np.r_[True, aid[1:] != aid[:-1]])
    counts = np.diff(np.r_[starts, aid.size])
    sums = np.add.reduceat(v, starts)
    means = sums / counts
    dev = v - np.repeat(means, counts)
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / counts)
    out = {}
    for k, a in enumerate(aid[starts]):
        out[int(a)] = {
            "count": int(counts[k]), "min": float(v[starts[k]:starts[k] + counts[k]].min()),
            "max": float(v[starts[k]:starts[k] + counts[k]].max()), "mean": float(means[k]), "std": float(std[k]),
        }
    return out


# libdeflate level 1: on a rain-like step's pixels (43,000 of them) twice as fast to write as
# level 4 (netCDF4's zlib=True default) and no larger (93,189 against 93,941 bytes of indices);
# any level reads back the same.
MASKS_DEFLATE_LEVEL = 1
MASKS_CHUNKS = ("mask_indices", "data_values")  # the deflated arrays of step_chunks' table


def step_chunks(rows: np.ndarray, cols: np.ndarray, aid: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """One step's ``mask_indices`` and ``data_values`` as the deflate chunks the masks file stores
    them in (one chunk a variable, little-endian, zlib format: what HDF5's deflate filter reads).

    Publish compresses each step in parallel; finalize only writes the file's structure and these
    bytes (:func:`write_masks`), so compression is no longer serial work at the end of a job."""
    indices = np.column_stack([rows, cols, aid]).astype("<i4")
    return {
        "num_pixels": np.array([rows.size], np.int64),
        "mask_indices": np.frombuffer(deflate.zlib_compress(indices.tobytes(), MASKS_DEFLATE_LEVEL), np.uint8),
        "data_values": np.frombuffer(deflate.zlib_compress(np.asarray(values, "<f4").tobytes(),
                                                           MASKS_DEFLATE_LEVEL), np.uint8),
    }


def block_chunks(steps: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The :func:`step_chunks` of a block of consecutive steps as one table (each column's steps
    end to end, with their sizes): publish stores one table a block, not one a step, so a job
    writes and finalize reads a handful of chunk-store objects (files, S3 requests, Redis keys)
    instead of one a step."""
    return {
        "num_pixels": np.concatenate([s["num_pixels"] for s in steps]).astype(np.int64),
        **{name: np.concatenate([s[name] for s in steps]).astype(np.uint8) for name in MASKS_CHUNKS},
        **{f"{name}_bytes": np.array([s[name].size for s in steps], np.int64) for name in MASKS_CHUNKS},
    }


def split_block(table: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """:func:`block_chunks`' table back into each step's :func:`step_chunks`."""
    ends = {name: np.cumsum(table[f"{name}_bytes"]) for name in MASKS_CHUNKS}
    return [{"num_pixels": table["num_pixels"][k:k + 1],
             **{name: table[name][ends[name][k] - table[f"{name}_bytes"][k]:ends[name][k]] for name in MASKS_CHUNKS}}
            for k in range(table["num_pixels"].size)]


def write_masks(path: str, attrs: dict, lat, lon, timestamps: list[str], n_events: int, read_step) -> None:
    """``read_step(s)`` returns step s's :func:`step_chunks`.

    ``attrs`` holds TOS2CA's root attributes plus ``units`` and ``long_name`` of the variable,
    which ``data_values`` carries too. netCDF4 writes the structure (:func:`write_layout`), then
    h5py puts each variable's precompressed chunk in place (:func:`put_step_chunks`)."""
    steps = [read_step(s) for s in range(len(timestamps))]
    write_layout(path, attrs, lat, lon, timestamps, n_events, [int(step["num_pixels"][0]) for step in steps])
    put_step_chunks(path, timestamps, steps)


def write_layout(path: str, attrs: dict, lat, lon, timestamps: list[str], n_events: int, counts: list[int]) -> None:
    """The masks file without its data: groups, dimensions (``counts``: each step's pixels),
    variables of one deflated chunk each, attributes. It needs only the pixel counts, so a job
    lays it out while its steps are still being compressed; :func:`put_step_chunks` fills it."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        nav = ds.createGroup("navigation")
        nav.createDimension("lat", lat.size)
        nav.createDimension("lon", lon.size)
        nav.createVariable("lat", "f4", ("lat",))[:] = lat
        nav.createVariable("lon", "f4", ("lon",))[:] = lon
        nav["lat"].units = "degrees_north"
        nav["lon"].units = "degrees_east"
        ds.createGroup("masks")
        _add_groups(ds, attrs, timestamps, n_events, dict(enumerate(counts)))


def put_step_chunks(path: str, timestamps: list[str], steps: list[dict[str, np.ndarray]] | dict) -> None:
    """Each step's :func:`step_chunks` into the file :func:`write_layout` made (``steps``: a list
    by step, or a dict step -> chunks of some steps)."""
    by_step = steps if isinstance(steps, dict) else dict(enumerate(steps))
    chunks: dict[str, bytes] = {}
    for s, step in sorted(by_step.items()):
        if int(step["num_pixels"][0]):
            chunks[f"masks/{timestamps[s]}/mask_indices"] = step["mask_indices"].tobytes()
            chunks[f"masks/{timestamps[s]}/data_values"] = step["data_values"].tobytes()
    _put_chunks(path, chunks)


def append_masks(path: str, attrs: dict, timestamps: list[str], n_events: int, read_step) -> None:
    """Make ``path``, a copy of an earlier masks file of the same job (a prefix of its steps),
    the file :func:`write_masks` would write for ``timestamps``: the groups it lacks are added
    (``read_step(s)`` is asked only for those), the attributes set. Old groups are not touched,
    so a sync costs its new steps, not the job's history."""
    with netCDF4.Dataset(path, "a") as ds:
        have = set(ds["masks"].groups)
        new = {s: read_step(s) for s, ts in enumerate(timestamps) if ts not in have}
        _add_groups(ds, attrs, timestamps, n_events, {s: int(step["num_pixels"][0]) for s, step in new.items()})
    put_step_chunks(path, timestamps, new)


def _add_groups(ds, attrs: dict, timestamps: list[str], n_events: int, counts: dict[int, int]) -> None:
    """The root attributes, and a group for each step of ``counts`` (step -> its pixels)."""
    ds.setncatts(attrs)
    masks = ds["masks"]
    masks.num_events = np.int32(n_events)
    for s, n in sorted(counts.items()):
        g = masks.createGroup(timestamps[s])
        g.createDimension("num_pixels", n)
        g.createDimension("num_cols", 3)
        layout = {"zlib": True, "complevel": MASKS_DEFLATE_LEVEL, "shuffle": False, "endian": "little"}
        mi = g.createVariable("mask_indices", "i4", ("num_pixels", "num_cols"), **layout,
                              chunksizes=(n, 3) if n else None)
        mi.long_name = ("row and column of each anomalous pixel (indices into /navigation lat and lon) and "
                        "its anomaly id")
        mi.units = "1"
        dv = g.createVariable("data_values", "f4", ("num_pixels",), **layout, chunksizes=(n,) if n else None)
        dv.long_name = attrs.get("long_name", attrs.get("variable", ""))
        dv.units = attrs.get("units", "")


def _put_chunks(path: str, chunks: dict[str, bytes]) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        for name, data in chunks.items():  # low-level opens: a third of the high-level lookups' time
            dataset = h5py.h5d.open(f.id, name.encode())
            dataset.write_direct_chunk((0,) * dataset.rank, data)


def toc(anomaly_ids: np.ndarray, steps: np.ndarray, timestamps: list[str], n_events: int) -> list[dict]:
    out = []
    for a in range(1, n_events + 1):
        s = steps[anomaly_ids == a]
        out.append({"name": f"Anomaly {a}", "start_date": timestamps[int(s.min())],
                    "end_date": timestamps[int(s.max())]})
    return out


def hierarchy(timestamps: list[str]) -> dict:
    return {"navigation": ["lat", "lon"], "masks": {ts: ["mask_indices", "data_values"] for ts in timestamps}}


def dump_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
