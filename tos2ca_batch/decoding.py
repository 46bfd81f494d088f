"""netCDF's rules for turning stored values into numbers, applied without masked arrays.

netCDF4-python (auto mask-and-scale) masks a stored value when it equals a ``missing_value``
(any of them; NaN matches NaN), the ``_FillValue`` (with none, or one that does not cast to the
variable's type unchanged, netCDF's default fill of that type; bytes have no default), or lies
outside ``valid_range`` (else ``valid_min``/``valid_max``), each attribute used only where it
casts to the variable's type without change; then it unpacks with ``scale_factor`` and
``add_offset`` in the attributes' own types. :class:`Decoding` makes those choices once per
variable, from its attributes, and applies them with the same comparisons and the same
arithmetic on the same dtypes (a masked array's arithmetic is numpy's on its data), so its
numbers are netCDF4's to the bit (``tests/test_readers.py`` holds it to netCDF4 on every layout
the project reads) for a fraction of the cost of building and filling a masked array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# netcdf.h's NC_FILL_* values: what netCDF4.default_fillvals holds (a test checks it).
NC_DEFAULT_FILL = {"i1": -127, "u1": 255, "i2": -32767, "u2": 65535, "i4": -2147483647, "u4": 4294967295,
                   "i8": -9223372036854775806, "u8": 18446744073709551614,
                   "f4": 9.969209968386869e36, "f8": 9.969209968386869e36}
DECODING_ATTRIBUTES = ("_FillValue", "missing_value", "valid_range", "valid_min", "valid_max",
                       "scale_factor", "add_offset", "_Unsigned")


class NotDecodable(Exception):
    """Attributes whose meaning depends on more than the attributes: let netCDF4 decode."""


def _safe(attrs: Mapping[str, Any], name: str, dtype: np.dtype) -> np.ndarray | None:
    """The attribute cast to ``dtype`` if it exists and the cast changes no value (netCDF4's
    ``_check_safecast``), else None."""
    if name not in attrs:
        return None
    att = np.array(attrs[name])
    try:
        cast = np.array(att, dtype)
    except (ValueError, TypeError):
        return None
    try:
        with np.errstate(invalid="ignore"):
            same = bool(((att == cast) | (np.isnan(att) & np.isnan(cast))).all())
    except TypeError:
        same = bool((att == cast).all())
    return cast if same else None


@dataclass(frozen=True)
class Decoding:
    dtype: np.dtype
    missing: tuple  # missing values, each a 0-d array of the variable's type
    fill: np.ndarray | None  # the fill value in force (explicit or netCDF's default); None for bytes
    valid_min: np.ndarray | None
    valid_max: np.ndarray | None
    scale: Any  # the attribute values as netCDF4 returns them (numpy scalars), or None
    offset: Any

    @classmethod
    def from_attributes(cls, dtype: np.dtype, attrs: Mapping[str, Any]) -> Decoding:
        """``attrs``: the variable's attributes as ``netCDF4.Variable.getncattr`` returns them."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "iuf":
            raise NotDecodable(f"dtype {dtype}")
        if "_Unsigned" in attrs:
            raise NotDecodable("_Unsigned")
        code = dtype.str[1:]
        fill = _safe(attrs, "_FillValue", dtype)
        if fill is None and "_FillValue" not in attrs and code in ("i1", "u1"):
            raise NotDecodable("a byte variable without _FillValue: the file's no-fill setting decides")
        if fill is None and code not in ("i1", "u1"):
            fill = np.array(NC_DEFAULT_FILL[code], dtype)
        missing = _safe(attrs, "missing_value", dtype)
        missing = tuple(np.atleast_1d(missing)) if missing is not None else ()
        vrange, vmin, vmax = _safe(attrs, "valid_range", dtype), None, None
        if vrange is not None and vrange.size == 2:
            vmin, vmax = np.array(vrange[0], dtype), np.array(vrange[1], dtype)
        else:
            vmin, vmax = _safe(attrs, "valid_min", dtype), _safe(attrs, "valid_max", dtype)
        scale, offset = attrs.get("scale_factor"), attrs.get("add_offset")
        try:
            for x in (scale, offset):
                if x is not None:
                    float(x)
        except (TypeError, ValueError) as exc:
            raise NotDecodable("scale_factor/add_offset that are not numbers") from exc
        return cls(dtype, missing, fill, vmin, vmax, scale, offset)

    def mask(self, raw: np.ndarray) -> np.ndarray | None:
        """Where ``raw`` (stored values) is missing, or None where nothing can be."""
        masks = []
        for m in self.missing:
            masks.append(np.isnan(raw) if np.isnan(m) else raw == m)
        if self.fill is not None:
            masks.append(np.isnan(raw) if np.isnan(self.fill) else raw == self.fill)
        if self.valid_min is not None:
            masks.append(raw < self.valid_min)
        if self.valid_max is not None:
            masks.append(raw > self.valid_max)
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out |= m
        return out

    def unpack(self, raw: np.ndarray) -> np.ndarray:
        """Stored values -> numbers, as netCDF4 unpacks them (before masking)."""
        scale, offset = self.scale, self.offset
        if scale is not None and offset is not None:
            if offset != 0.0 or scale != 1.0:
                return raw * scale + offset
            return raw.astype(np.asarray(scale).dtype)
        if scale is not None and scale != 1.0:
            return raw * scale
        if offset is not None and offset != 0.0:
            return raw + offset
        return raw

    @property
    def in_place(self) -> bool:
        """Stored float32 values that are their own numbers (no packing): decoding only masks,
        so it can run on the reader's output array itself."""
        return self.dtype == np.float32 and self.scale is None and self.offset is None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` decoded to float32 with NaN where missing: what ``netCDF4`` auto-decoding then
        ``.astype(float32).filled(nan)`` gives. A float32 ``raw`` that needs no unpacking is
        decoded in place (the readers hand over arrays they own)."""
        mask = self.mask(raw)
        values = np.asarray(self.unpack(raw)).astype(np.float32, copy=False)
        if mask is not None and mask.any():
            if not values.flags.writeable:
                values = values.copy()
            np.copyto(values, np.float32(np.nan), where=mask)
        return values


def netcdf_value(value: Any) -> Any:
    """An HDF5 attribute value (h5py) as netCDF4 returns the attribute: text as ``str``, a
    one-element array as its numpy scalar."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO" and value.size == 1:
            return netcdf_value(value.reshape(-1)[0])
        if value.ndim == 1 and value.size == 1:
            return value[0]
    return value
