"""Timestamps: parsing user times, the ``YYYYMMDDhhmm`` form, a dataset's time axis, file times."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

import cftime
import numpy as np

TS_FORMAT = "%Y%m%d%H%M"
_COMPACT = re.compile(r"^\d{12}$")
# ISO 8601 as users write it: a date, optionally a time with seconds and fractions, optionally
# ``Z`` or a numeric offset. Anything else (``...ZZZ``, words, week dates) is refused.
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
CALENDARS = ("standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day", "360_day",
             "all_leap", "366_day")


def parse_time(text: str) -> datetime:
    """A user time as a naive UTC datetime.

    Takes ISO 8601 (``2020-01-04T00:00``, with seconds, fractions, ``Z`` or an offset such as
    ``+02:00``, which is converted to UTC; a date alone means midnight) or ``YYYYMMDDhhmm``.
    """
    if isinstance(text, str):
        s = text.strip()
        if _COMPACT.match(s):
            return datetime.strptime(s, TS_FORMAT)
        if _ISO.match(s):
            s = s.replace(",", ".")
            frac = re.search(r"\.(\d+)", s)
            if frac and len(frac.group(1)) > 6:  # fromisoformat takes at most microseconds
                s = s.replace(frac.group(0), "." + frac.group(1)[:6])
            try:
                t = datetime.fromisoformat(s)
            except ValueError:
                pass
            else:
                if t.tzinfo is not None:
                    t = t.astimezone(UTC).replace(tzinfo=None)
                return t
    raise ValueError(f"expected an ISO 8601 time like 2020-01-04T00:00 or 2020-01-04T00:00:00+00:00, got {text!r}")


def to_ts(t: datetime) -> str:
    return t.strftime(TS_FORMAT)


def from_ts(ts: str) -> datetime:
    """``to_ts``'s inverse. A plan's stamps are always 12 digits, read by slicing (``strptime``
    costs 40 us a stamp, and a long job's steps are read many times); anything else, or an
    impossible date, goes through ``strptime`` for its exact answer or error."""
    if len(ts) == 12 and ts.isdigit():
        try:
            return datetime(int(ts[:4]), int(ts[4:6]), int(ts[6:8]), int(ts[8:10]), int(ts[10:12]))
        except ValueError:
            pass
    return datetime.strptime(ts, TS_FORMAT)


def decode_file_times(values, units: str, calendar: str | None, where: str) -> list[datetime]:
    """Decode a time coordinate with its own ``units`` and ``calendar`` into UTC wall-clock labels.

    The labels are the calendar's own (year, month, day, hour, ...): for ``julian`` between 1901
    and 2099 they equal the Gregorian ones because both calendars have the same leap years
    there and the reference date is read in the same calendar. A label with no Gregorian
    counterpart (``360_day``'s 30 February) is refused, naming ``where`` (the file).
    """
    cal = (calendar or "standard").strip().lower()
    if cal not in CALENDARS:
        raise ValueError(f"{where}: time calendar {calendar!r} is not one of {', '.join(CALENDARS)}")
    if not isinstance(units, str) or " since " not in units:
        raise ValueError(f"{where}: time units {units!r} are not of the form '<unit> since <date>'")
    vals = np.atleast_1d(np.asarray(values))
    if np.ma.isMaskedArray(values) and np.ma.getmaskarray(values).any():
        raise ValueError(f"{where}: the time coordinate has missing values")
    try:
        decoded = cftime.num2date(vals, units.strip(), cal, only_use_cftime_datetimes=True)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{where}: cannot decode times with units {units!r}, calendar {cal!r} ({exc})") from None
    out = []
    for d in np.atleast_1d(decoded):
        try:
            out.append(datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond))
        except ValueError:
            raise ValueError(f"{where}: time {d} of calendar {cal!r} has no UTC date label") from None
    return out


def step_end(t: datetime, time_step) -> datetime:
    """Where the time step starting at ``t`` ends (the next step's start)."""
    step = step_minutes(time_step)
    if step == "monthly":
        y, m = t.year + t.month // 12, t.month % 12 + 1
        return t.replace(year=y, month=m, day=min(t.day, calendar.monthrange(y, m)[1]))
    return t + timedelta(minutes=step)


def step_minutes(time_step) -> int | str:
    """A catalog ``timeStep``: minutes (int) or ``daily``/``monthly``."""
    if isinstance(time_step, str):
        if time_step == "daily":
            return 1440
        if time_step == "monthly":
            return "monthly"
        return int(time_step)
    return int(time_step)


def axis(first: datetime, step, start: datetime, end: datetime) -> list[datetime]:
    """Dataset times ``first + k*step`` that fall inside ``[start, end]``."""
    step = step_minutes(step)
    out = []
    if step == "monthly":
        y, m = first.year, first.month
        t = first
        while t <= end:
            if t >= start:
                out.append(t)
            m += 1
            y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
            t = first.replace(year=y, month=m)
        return out
    delta = timedelta(minutes=step)
    k0 = max(0, -(-int((start - first).total_seconds()) // (step * 60)))
    t = first + k0 * delta
    while t <= end:
        out.append(t)
        t += delta
    return out
