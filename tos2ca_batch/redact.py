"""Keep secrets out of text: the password of any ``scheme://user:password@host`` URL."""

from __future__ import annotations

import re

# Greedy to the last "@" of the token, so a password holding "@", "#" or "/" is covered too.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")


def redact(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", str(text))
