"""Timestamps: parsing user times, the ``YYYYMMDDhhmm`` form, and a dataset's time axis."""

from __future__ import annotations

from datetime import datetime, timedelta

TS_FORMAT = "%Y%m%d%H%M"
_INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d%H%M")


def parse_time(text: str) -> datetime:
    """Parse ``2020-01-04T00:00`` (also with seconds, a space, a date alone or ``YYYYMMDDhhmm``)."""
    if isinstance(text, str):
        for fmt in _INPUT_FORMATS:
            try:
                return datetime.strptime(text.rstrip("Z"), fmt)
            except ValueError:
                pass
    raise ValueError(f"expected a time like 2020-01-04T00:00, got {text!r}")


def to_ts(t: datetime) -> str:
    return t.strftime(TS_FORMAT)


def from_ts(ts: str) -> datetime:
    return datetime.strptime(ts, TS_FORMAT)


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
