"""Readers: the same field comes back from every file layout and missing-value convention."""

from datetime import datetime

import netCDF4
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tos2ca_batch.catalog import CatalogEntry, file_for, load_catalog
from tos2ca_batch.rawchunks import top_byte, top_byte_below
from tos2ca_batch.readers import CandidateStep, HDF5File, StepReader, index_runs
from tos2ca_batch.synth import grid, synthesize

T = datetime(2020, 1, 1, 0, 0)
LAT = np.linspace(-10, 10, 9)
LON360 = np.arange(0, 360, 30.0)


def truth():
    rng = np.random.default_rng(1)
    v = rng.uniform(270, 300, (LAT.size, LON360.size)).round(3)
    v[2, 3] = np.nan
    return v


def write(path, layout):
    v = truth()
    lat, field = LAT, v
    lon = LON360
    if layout.get("desc"):
        lat, field = LAT[::-1], v[::-1]
    if layout.get("lon180"):
        lon = ((LON360 + 180) % 360) - 180
        order = np.argsort(lon)
        lon, field = lon[order], field[:, order]
    dims = ("time", "lon", "lat") if layout.get("lonlat") else ("time", "lat", "lon")
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in (("time", 3), ("lat", lat.size), ("lon", lon.size)):
            ds.createDimension(d, n)
        tv = ds.createVariable("time", "i4", ("time",))
        tv.units = "hours since 2019-12-31 23:00:00"
        tv[:] = [0, 1, 2]  # the wanted step is the middle one
        ds.createVariable("lat", "f8", ("lat",))[:] = lat
        ds.createVariable("lon", "f8", ("lon",))[:] = lon
        if layout.get("packed"):
            var = ds.createVariable("sst", "i2", dims, fill_value=np.int16(-32768))
            var.scale_factor, var.add_offset = 0.001, 285.0
            var.valid_range = np.array([-20000, 20000], np.int16)
        else:
            var = ds.createVariable("sst", "f4", dims, fill_value=np.float32(-1.0))
            var.missing_value = np.float32(-2.0)
        data = np.ma.masked_invalid(field)
        data = np.ma.array(np.where(np.isnan(field), 285.0, field), mask=np.isnan(field))
        stack = np.ma.stack([data * 0, data, data * 0])
        var[:] = stack.transpose(0, 2, 1) if layout.get("lonlat") else stack


LAYOUTS = [{}, {"desc": True}, {"lon180": True}, {"lonlat": True}, {"packed": True},
           {"desc": True, "lon180": True, "lonlat": True, "packed": True}]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "+".join(d) or "plain")
def test_same_field_from_every_layout(tmp_path, layout):
    write(tmp_path / "f.nc", layout)
    entry = CatalogEntry("f", str(tmp_path / "f.nc"), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with StepReader(entry, "sst") as r:
        lat, lon = r.grid(T)
        rows = np.argsort(lat)
        lon180 = ((lon + 180) % 360) - 180
        cols = np.argsort(lon180)
        got = r.read(T, rows, cols)
    want = truth()[:, np.argsort(((LON360 + 180) % 360) - 180)]
    np.testing.assert_allclose(got, want, atol=1e-3 if layout.get("packed") else 0)
    assert np.isnan(got).sum() == 1


def test_fill_missing_and_valid_range_are_nan(tmp_path):
    write(tmp_path / "f.nc", {"packed": True})
    with netCDF4.Dataset(tmp_path / "f.nc", "a") as ds:
        raw = ds["sst"]
        raw.set_auto_maskandscale(False)
        raw[1, 0, 0] = 25000  # outside valid_range
    entry = CatalogEntry("f", str(tmp_path / "f.nc"), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with StepReader(entry, "sst") as r:
        got = r.read(T, np.arange(LAT.size), np.arange(LON360.size))
    assert np.isnan(got[0, 0]) and np.isnan(got[2, 3]) and np.isfinite(got).sum() == got.size - 2


def test_index_runs_cover_wrapped_and_descending():
    idx = np.r_[np.arange(10, 14), np.arange(0, 3), np.arange(8, 5, -1)]
    runs = index_runs(idx)
    assert runs == [(0, 4, 10, 14), (4, 7, 0, 3), (7, 10, 6, 9)]


@pytest.mark.parametrize("kind,res", [("imerg", 2.0), ("mergir", 2.0), ("merra2", 4.0), ("mur", 2.0)])
def test_synthetic_layouts_read_back(tmp_path, kind, res):
    end = datetime(2020, 1, 1, 12 if kind == "mur" else 3)
    cat = synthesize(kind, tmp_path, datetime(2020, 1, 1), end, res=res)
    import json

    name = next(iter(json.loads(cat.read_text())))
    entry = load_catalog([str(cat)])[name]
    t = entry.first
    assert file_for(entry, t).startswith(str(tmp_path))
    with StepReader(entry, entry.variables[0]) as r:
        lat, lon = r.grid(t)
        got = r.read(t, np.argsort(lat), np.arange(lon.size))
    glat, glon = grid(res)
    assert got.shape == (glat.size, glon.size)
    assert np.isnan(got).any() == (kind != "merra2"), "fill and NaN pixels come back as NaN"
    assert np.isfinite(got).mean() > 0.5
    if kind == "mur":
        want = 280.0 + 0.1 * glat[glat.size // 2] + 0.01 * glon[0]
        np.testing.assert_allclose(got[glat.size // 2, 0], want, atol=0.05 * 4 + 0.001)


CALENDAR_CASES = [
    # calendar, units, value, label
    ("standard", "hours since 2000-01-01", 24 * 366, datetime(2001, 1, 1)),
    ("gregorian", "days since 1970-01-01 00:00:00", 18262.5, datetime(2020, 1, 1, 12)),
    ("proleptic_gregorian", "minutes since 2020-02-28", 1440, datetime(2020, 2, 29)),
    # IMERG V07: the GPS epoch in the julian calendar; labels equal Gregorian ones in 1901-2099.
    ("julian", "seconds since 1980-01-06 00:00:00 UTC", 1262304000 - 315964800, datetime(2010, 1, 1)),
    ("julian", "seconds since 1980-01-06 00:00:00 UTC", 1262304000 - 315964800 + 59 * 86400 + 1800,
     datetime(2010, 3, 1, 0, 30)),
    ("noleap", "days since 2019-02-28", 1, datetime(2019, 3, 1)),
    ("365_day", "days since 2020-02-28", 1, datetime(2020, 3, 1)),
    ("360_day", "days since 2000-01-01", 29, datetime(2000, 1, 30)),
    ("all_leap", "days since 2019-02-28", 1, None),  # 29 February 2019: no UTC label
]


@pytest.mark.parametrize("calendar,units,value,label", CALENDAR_CASES)
def test_file_times_decoded_with_their_own_calendar(calendar, units, value, label):
    from tos2ca_batch.timeutil import decode_file_times

    if label is None:  # all_leap's 29 February 2019 has no UTC label: refused, naming the file
        with pytest.raises(ValueError, match="f.nc4: time 2019-02-29"):
            decode_file_times([value], units, calendar, "f.nc4")
        return
    assert decode_file_times([value], units, calendar, "f.nc4") == [label]


def test_a_calendar_date_with_no_utc_label_is_refused_naming_the_file(tmp_path):
    from tos2ca_batch.timeutil import decode_file_times

    with pytest.raises(ValueError, match=r"x\.nc: time 2000-02-30 .*360_day"):
        decode_file_times([59], "days since 2000-01-01", "360_day", "x.nc")
    with pytest.raises(ValueError, match=r"x\.nc: time calendar 'mayan'"):
        decode_file_times([0], "days since 2000-01-01", "mayan", "x.nc")
    with pytest.raises(ValueError, match=r"x\.nc: time units 'days'"):
        decode_file_times([0], "days", "standard", "x.nc")


def test_imerg_v07_layout_reads_and_opens_in_xarray_without_time_warnings(tmp_path):
    import warnings

    import xarray as xr

    cat = synthesize("imerg", tmp_path, T, datetime(2020, 1, 1, 1, 0), res=2.0)
    entry = load_catalog([str(cat)])["GPM_3IMERGHH"]
    path = file_for(entry, datetime(2020, 1, 1, 0, 30))
    with netCDF4.Dataset(path) as ds:
        g = ds["Grid"]
        assert g["time"].calendar == "julian"
        assert g["time"].units == g["time"].Units == "seconds since 1980-01-06 00:00:00 UTC"
        assert g["time"].bounds == "time_bnds" and g["time_bnds"].shape == (1, 2)
        assert g["lat_bnds"].shape == (90, 2) and g["lon_bnds"].shape == (180, 2)
        assert g["precipitation"].CodeMissingValue == "-9999.9"
        assert g["precipitation"].filters()["zlib"] and g["precipitation"].filters()["shuffle"]
    with StepReader(entry, "precipitation") as r:
        r.read(datetime(2020, 1, 1, 0, 30), np.arange(3), np.arange(3))
        assert r._times == [datetime(2020, 1, 1, 0, 30)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_dataset(path, group="Grid")
        assert str(ds["time"].values[0]) == "2020-01-01 00:30:00"
        ds.close()


# -- the libdeflate raw-chunk path gives netCDF4's own decoded values, bit for bit ----------------


def _netcdf4_reference(path: str, group, variable: str, step: int, lonlat: bool) -> np.ndarray:
    """What netCDF4's auto mask-and-scale returns for one step, as float32 with NaN (lat, lon)."""
    with netCDF4.Dataset(path) as ds:
        var = (ds[group] if group else ds)[variable]
        var.set_auto_maskandscale(True)
        block = var[step] if var.ndim == 3 else var[:]
        block = block.T if lonlat else block
        if np.ma.isMaskedArray(block):
            block = block.astype(np.float32).filled(np.nan)
        return np.asarray(block, np.float32)


def _read_both_ways(entry, variable, t, rows, cols):
    out = {}
    for fast in (True, False):
        with StepReader(entry, variable) as r:
            r.fast = fast
            out[fast] = r.read(t, rows, cols)
            # into a caller's array, as the map reads every step (its last step's values in it)
            reused = np.full((rows.size, cols.size), -7.5, np.float32)
            assert r.read(t, rows, cols, reused) is reused and reused.tobytes() == out[fast].tobytes()
            if fast:
                handle = r.handle(t)
                took_fast = isinstance(handle, HDF5File) and handle.chunks is not None
    return out[True], out[False], took_fast


@pytest.mark.parametrize("kind", ["imerg", "mergir", "merra2", "mur"])
def test_raw_chunk_reads_equal_netcdf4_bit_for_bit(tmp_path, kind):
    """Every synthetic layout (deflate+shuffle IMERG, deflate MERGIR/MERRA-2/MUR; descending
    latitude; 0..360 reordering; multi-step files), whole grids and partial, wrapped tiles."""
    end = datetime(2020, 1, 1, 12 if kind == "mur" else 3)
    cat = synthesize(kind, tmp_path, datetime(2020, 1, 1), end, res=1.0)
    import json

    entry = load_catalog([str(cat)])[next(iter(json.loads(cat.read_text())))]
    variable = entry.variables[0]
    lonlat = (entry.dimension_order or ("time", "lat", "lon"))[1] == "lon"
    t = entry.last if kind != "mergir" else entry.first
    path = file_for(entry, t)
    with StepReader(entry, variable) as r:
        lat, lon = r.grid(t)
        r.read(t, np.arange(2), np.arange(2))
        step = r._time_index(t) or 0
    ref = _netcdf4_reference(path, entry.group, variable, step, lonlat)
    order_r = np.argsort(lat, kind="stable")
    order_c = np.argsort(((lon + 180) % 360) - 180, kind="stable")
    picks = [(order_r, order_c), (np.arange(5, 40), np.arange(100, 200)),
             (order_r[::-1][10:30], np.r_[np.arange(lon.size - 7, lon.size), np.arange(0, 9)])]
    for rows, cols in picks:
        fast, slow, took_fast = _read_both_ways(entry, variable, t, rows, cols)
        want = ref[np.ix_(rows, cols)]
        assert took_fast, f"{kind}: the raw-chunk path was not taken"
        assert fast.tobytes() == want.tobytes() and slow.tobytes() == want.tobytes()
    assert np.isnan(ref).any() or kind == "merra2"  # fill values are masked, not passed through


def test_a_read_into_an_array_of_another_shape_or_type_is_refused(tmp_path):
    cat = synthesize("imerg", tmp_path, datetime(2020, 1, 1), datetime(2020, 1, 1), res=1.0)
    import json

    entry = load_catalog([str(cat)])[next(iter(json.loads(cat.read_text())))]
    with StepReader(entry, entry.variables[0]) as r:
        for wrong in (np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float64), np.zeros((3, 2), np.float32).T):
            with pytest.raises(ValueError, match=r"C-contiguous float32 \(2, 3\)"):
                r.read(entry.first, np.arange(2), np.arange(3), wrong)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "+".join(d) or "plain")
@pytest.mark.parametrize("compression", [{"zlib": True, "shuffle": True}, {"zlib": True, "shuffle": False},
                                         {"zlib": False}])
def test_raw_chunks_of_packed_and_filled_layouts(tmp_path, layout, compression):
    """Packed int16 with scale/offset/valid_range, float fill + missing_value, both dimension
    orders, chunked with deflate (with or without shuffle) or stored plainly, three steps a file."""
    path = tmp_path / "f.nc"
    write(path, layout)
    with netCDF4.Dataset(path) as src, netCDF4.Dataset(tmp_path / "g.nc", "w") as dst:
        for name, dim in src.dimensions.items():
            dst.createDimension(name, len(dim))
        for name, var in src.variables.items():
            var.set_auto_maskandscale(False)
            fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            out = dst.createVariable(name, var.dtype, var.dimensions, fill_value=fill,
                                     chunksizes=(1, 4, 5) if var.ndim == 3 else None, **compression)
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
            out.set_auto_maskandscale(False)
            out[:] = var[:]
    entry = CatalogEntry("g", str(tmp_path / "g.nc"), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with StepReader(entry, "sst") as r:
        lat, lon = r.grid(T)
    ref = _netcdf4_reference(str(tmp_path / "g.nc"), None, "sst", 1, bool(layout.get("lonlat")))
    for rows, cols in [(np.arange(lat.size), np.arange(lon.size)), (np.arange(7, 1, -1), np.r_[10, 11, 0, 1, 2])]:
        fast, slow, took_fast = _read_both_ways(entry, "sst", T, rows, cols)
        assert took_fast
        want = ref[np.ix_(rows, cols)]
        assert fast.tobytes() == want.tobytes() and slow.tobytes() == want.tobytes()


def test_default_fill_table_is_netcdf4s():
    from tos2ca_batch.decoding import NC_DEFAULT_FILL

    assert {k: netCDF4.default_fillvals[k] for k in NC_DEFAULT_FILL} == NC_DEFAULT_FILL


# Attribute sets whose every rule netCDF4 applies in its own way: each is decoded by h5py +
# Decoding and compared with netCDF4's auto mask-and-scale, bit for bit.
ATTRIBUTE_CASES = {
    "no attributes (default fill)": ("f4", None, {}),
    "fill NaN": ("f4", np.float32(np.nan), {}),
    "missing_value not castable (ignored)": ("i2", None, {"missing_value": np.int32(70000)}),
    "missing_value vector with NaN": ("f4", np.float32(-1), {"missing_value": np.array([np.nan, -5.0], "f4")}),
    "valid_min only": ("f8", None, {"valid_min": 1.0}),
    "valid_max only, int": ("i4", np.int32(-1), {"valid_max": np.int32(40)}),
    "valid_range of 3 values (ignored)": ("f4", None, {"valid_range": np.array([0, 1, 2], "f4")}),
    "scale only": ("i2", np.int16(-32768), {"scale_factor": np.float32(0.5)}),
    "offset only, float64": ("i2", np.int16(-32768), {"add_offset": 100.0}),
    "scale 1 and offset 0 (astype)": ("i2", np.int16(-32768), {"scale_factor": np.float64(1.0), "add_offset": 0.0}),
    "scale and offset, float32": ("u2", np.uint16(65535), {"scale_factor": np.float32(0.01),
                                                          "add_offset": np.float32(-5.0)}),
    "byte with fill": ("i1", np.int8(-128), {"scale_factor": 0.25}),
}


@pytest.mark.parametrize("case", list(ATTRIBUTE_CASES))
def test_decoding_equals_netcdf4_on_every_attribute_rule(tmp_path, case):
    dtype, fill, attrs = ATTRIBUTE_CASES[case]
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    shape = (2, 6, 8)
    if info is not None:
        raw = rng.integers(max(info.min, -200), min(info.max, 200), shape).astype(dtype)
    else:
        raw = rng.uniform(-10, 60, shape).astype(dtype)
    flat = raw.reshape(-1)
    specials = [v for v in (fill, -5.0, 70000 % 65536 if info is not None else None,
                            netCDF4.default_fillvals[np.dtype(dtype).str[1:]]) if v is not None]
    for k, v in enumerate(specials):
        try:
            flat[3 * k + 1] = np.array(v).astype(dtype)
        except (OverflowError, ValueError):
            pass
    if info is None:
        flat[5] = np.nan
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in zip(("time", "lat", "lon"), shape):
            ds.createDimension(d, n)
        ds.createVariable("lat", "f8", ("lat",))[:] = np.arange(shape[1])
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(shape[2]) * 10.0
        var = ds.createVariable("v", dtype, ("time", "lat", "lon"), fill_value=fill, zlib=True, shuffle=True,
                                chunksizes=(1, 3, 4))
        for k, v in attrs.items():
            var.setncattr(k, v)
        var.set_auto_maskandscale(False)
        var[:] = raw
    entry = CatalogEntry("a", str(path), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with netCDF4.Dataset(path) as ds:
        want = ds["v"][1]
        want = np.asarray(want.astype(np.float32).filled(np.nan) if np.ma.isMaskedArray(want) else want, np.float32)
    with StepReader(entry, "v") as r:
        handle = r.handle(T)
        assert isinstance(handle, HDF5File), "read by h5py and Decoding, not netCDF4"
        got = handle.decode(handle.raw((1, slice(0, shape[1]), slice(0, shape[2]))))
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes(), case


def test_a_byte_variable_without_fill_is_left_to_netcdf4(tmp_path):
    path = tmp_path / "b.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in (("lat", 3), ("lon", 4)):
            ds.createDimension(d, n)
        ds.createVariable("lat", "f8", ("lat",))[:] = [0, 1, 2]
        ds.createVariable("lon", "f8", ("lon",))[:] = [0, 1, 2, 3]
        ds.createVariable("flag", "i1", ("lat", "lon"), fill_value=False)[:] = np.arange(12).reshape(3, 4) - 127
    entry = CatalogEntry("b", str(path), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with StepReader(entry, "flag") as r:
        assert not isinstance(r.handle(T), HDF5File)
        got = r.read(T, np.arange(3), np.arange(4))
    assert got.tolist() == (np.arange(12).reshape(3, 4) - 127).astype(np.float32).tolist()


def test_s3_reads_fetch_only_the_chunks_a_tile_needs(tmp_path, bucket):
    """Through moto: a tile of a MUR-layout file (MUR's 1023 x 2047 chunks; 2 x 2 of them at
    0.1 degree) costs one chunk's byte range and the file's metadata, not the object; the values
    equal a local read."""
    import boto3

    from tos2ca_batch.rawchunks import RangeFile

    cat = synthesize("mur", tmp_path / "local", datetime(2020, 1, 1), datetime(2020, 1, 1, 12), res=0.1)
    entry = load_catalog([str(cat)])["MUR"]
    t = entry.first
    local = file_for(entry, t)
    key = "mur/" + local.rsplit("/", 1)[-1]
    boto3.client("s3").upload_file(local, bucket, key)
    remote = CatalogEntry.from_json("MUR", {**entry.to_json(), "location": f"s3://{bucket}/{key}"})
    rows, cols = np.arange(700, 900), np.arange(1500, 1900)
    with StepReader(entry, "analysed_sst") as r:
        want = r.read(t, rows, cols)
    with StepReader(remote, "analysed_sst") as r:
        got = r.read(t, rows, cols)
        handle = r.handle(t)
        assert isinstance(handle, HDF5File) and isinstance(handle.source, RangeFile)
        fetched, size, requests = handle.source.bytes_fetched, handle.source.size, handle.source.requests
    assert got.tobytes() == want.tobytes()
    assert fetched < size / 2, f"fetched {fetched} of {size} bytes"
    assert requests <= 12, requests



def test_dimension_names_are_those_of_the_dimension_scales(tmp_path):
    """``HDF5File`` names a variable's dimensions from its ``DIMENSION_LIST`` references: the
    names h5py's ``dims[k][0]`` gives, None where no scale is attached or none exist at all."""
    import json

    import h5py

    for kind, res in (("imerg", 2.0), ("mergir", 2.0), ("merra2", 4.0), ("mur", 2.0)):
        end = datetime(2020, 1, 1, 12 if kind == "mur" else 3)
        catalog = synthesize(kind, tmp_path / kind, datetime(2020, 1, 1), end, res=res)
        entry = load_catalog([str(catalog)])[next(iter(json.loads(catalog.read_text())))]
        with h5py.File(file_for(entry, entry.first)) as f:
            var = f[entry.group or "/"][entry.variables[0]]
            want = [d[0].name.rsplit("/", 1)[-1] if len(d) else None for d in var.dims]
            assert HDF5File._dimension_names(var) == want and None not in want
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        plain = f.create_dataset("v", (2, 3, 4), "f4")
        assert HDF5File._dimension_names(plain) == [None, None, None]
        f["y"] = np.arange(3.0)
        f["y"].make_scale("y")
        plain.dims[1].attach_scale(f["y"])
        assert HDF5File._dimension_names(plain) == [None, "y", None]


@pytest.mark.parametrize("fast", [True, False], ids=["hdf5", "netcdf4"])
def test_named_attributes_are_the_full_set_restricted(tmp_path, fast):
    """``attributes(t, names)`` (what the plan reads: units and long_name) is the full set's
    entries of those names, a missing name left out; the HDF5 reader opens no raw chunk index for it."""
    write(tmp_path / "f.nc", {"packed": True})
    entry = CatalogEntry("f", str(tmp_path / "f.nc"), 60, {"lat": "lat", "lon": "lon", "time": "time"})
    with StepReader(entry, "sst") as r:
        r.fast = fast
        every = r.attributes(T)
        named = r.attributes(T, ("scale_factor", "long_name", "valid_range"))
        assert isinstance(r.handle(T), HDF5File) is fast
        if fast:
            assert r.handle(T)._chunks is False  # not read: no value was asked for
    assert set(every) >= {"scale_factor", "add_offset", "valid_range", "_FillValue"}
    assert set(named) == {"scale_factor", "valid_range"}
    for k in named:
        np.testing.assert_array_equal(named[k], every[k])


def _same_at_and_above(full: np.ndarray, got: np.ndarray, floor: float) -> None:
    """Every ``> T`` and ``>= T`` mask with ``T >= floor`` and its values: as a whole read's."""
    f32 = np.float32(floor)
    for threshold in {floor, float(f32), float(np.nextafter(f32, np.float32(np.inf))), floor * 1.5}:
        if threshold < floor:
            continue
        for name, mask in (("greater", np.greater), ("greater_equal", np.greater_equal)):
            with np.errstate(invalid="ignore", over="ignore"):
                want, have = mask(full, threshold), mask(got, threshold)
            assert np.array_equal(want, have), f"{name} {threshold!r} (floor {floor!r})"
            assert full[want].tobytes() == got[want].tobytes()


@pytest.mark.parametrize("kind", ["imerg", "mergir", "merra2", "mur"])
def test_reads_at_least_a_floor_equal_whole_reads_there(tmp_path, kind):
    """The map's read for ``> T`` jobs: from every synthetic layout (IMERG's shuffled float32
    chunks skip what cannot reach the floor; packed MUR and the rest are read whole), whole grids,
    windows and wrapped, descending tiles, one step array reused from read to read."""
    cat = synthesize(kind, tmp_path, datetime(2020, 1, 1), datetime(2020, 1, 1, 12 if kind == "mur" else 3),
                     res=1.0, **({"field": "fractal"} if kind == "imerg" else {}))
    import json

    entry = load_catalog([str(cat)])[next(iter(json.loads(cat.read_text())))]
    variable = entry.variables[0]
    with StepReader(entry, variable) as r:
        lat, lon = r.grid(entry.first)
        picks = [(np.arange(lat.size), np.arange(lon.size)), (np.arange(5, 40), np.arange(100, 200)),
                 (np.arange(lat.size)[::-1][10:30], np.r_[np.arange(lon.size - 7, lon.size), np.arange(0, 9)])]
        values = r.read(entry.first, *picks[0])
        finite = values[np.isfinite(values)]
        floors = [float(np.quantile(finite, q)) for q in (0.5, 0.9, 0.99)] + [1e-30, 0.0, -5.0]
        for rows, cols in picks:
            step = CandidateStep((rows.size, cols.size))
            for floor in floors:  # each step read over the other's leftovers
                for t in (entry.first, entry.last, entry.first):
                    full = r.read(t, rows, cols).copy()
                    _same_at_and_above(full, r.read_at_least(t, rows, cols, step, floor), floor)
        if kind == "imerg":  # the skipping path was taken, and skipped most of a rain-like step
            handle = r.handle(entry.first)
            assert isinstance(handle, HDF5File) and handle.chunks is not None and handle.chunks.top_bytes
            r.read_at_least(entry.first, *picks[0], step := CandidateStep(values.shape), floors[1])
            assert np.isnan(step.values).mean() > 0.8


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-40, max_value=1e39, allow_nan=False, allow_infinity=False))
def test_the_top_byte_below_a_floor_is_that_of_every_value_that_reaches_it(floor):
    top = top_byte_below(floor)
    with np.errstate(over="ignore"):
        nearest = np.float32(floor)
        low = nearest if float(nearest) <= floor else np.nextafter(nearest, np.float32(0))
        reaching = [np.nextafter(low, np.float32(np.inf)), np.float32(3.4028235e38), np.float32(np.inf)]
        reaching += [low] if float(low) >= floor else []
        reaching += [np.nextafter(nearest, np.float32(np.inf))] if np.isfinite(nearest) else []
    if top is None:  # only where the top byte is 0 (below 2**-125): then nothing is skipped
        assert float(low) < 2.0 ** -125
        return
    for v in reaching:
        assert top_byte(v) >= top, (floor, v)
    assert top_byte(low) == top  # and no lower: it skips all it can


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
                min_size=1, max_size=40), st.integers(0, 2**31), st.sampled_from([0.5, 10.0, 3e38, 2.0 ** -120]),
       st.booleans(), st.sampled_from([-9999.9, 1e20]))
def test_any_float32_bits_read_at_least_a_floor_as_whole(tmp_path_factory, specials, seed, floor, shuffle, fill):
    """IMERG's layout, (time, lon, lat) shuffled or not, chunks that do not divide the grid and
    one never written (all fill: a fill above the floor reads as NaN both ways), with every kind
    of float32: NaNs, infinities, signed zeros, subnormals, the fill, the floor and its neighbours."""
    rng = np.random.default_rng(seed)
    nlon, nlat = 11, 7
    f32 = np.float32(floor)
    pool = np.array(specials + [fill, floor, np.nextafter(f32, np.float32(0)), np.nextafter(f32, np.float32(np.inf)),
                                -floor, 0.0, -0.0], np.float32)
    with np.errstate(over="ignore"):
        field = rng.choice(pool, (nlon, nlat)) * rng.choice(np.float32([1, 1, 1, 0.999, 1.001]), (nlon, nlat))
    folder = tmp_path_factory.mktemp("bits")
    path = folder / "f.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in (("time", 1), ("lon", nlon), ("lat", nlat)):
            ds.createDimension(d, n)
        tv = ds.createVariable("time", "i4", ("time",))
        tv.units = "hours since 2020-01-01 00:00:00"
        tv[:] = [0]
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-30, 30, nlat)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.linspace(-150, 150, nlon)
        var = ds.createVariable("precipitation", "f4", ("time", "lon", "lat"), zlib=True, shuffle=shuffle,
                                chunksizes=(1, 4, 3), fill_value=np.float32(fill))
        var.set_auto_maskandscale(False)
        var[0, :8, :] = field[:8]  # lon 8..10 (lat 0..2 of them: a whole chunk) never written
        var[0, 8:, 3:] = field[8:, 3:]
    entry = CatalogEntry("f", str(path), 60, {"lat": "lat", "lon": "lon", "time": "time"},
                         dimension_order=("time", "lon", "lat"))
    rows, cols = np.arange(nlat), np.arange(nlon)
    with StepReader(entry, "precipitation") as r:
        full = r.read(T, rows, cols).copy()
        step = CandidateStep((nlat, nlon))
        for _ in range(2):  # the second read into the same array sets back what the first wrote
            _same_at_and_above(full, r.read_at_least(T, rows, cols, step, floor), floor)
        assert r.handle(T).chunks is not None
