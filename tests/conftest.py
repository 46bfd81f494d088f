import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
pytest_plugins = ["services"]
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


def _find_shared() -> Path | None:
    for base in (ROOT.parent / "shared", ROOT / "shared"):
        if (base / "design" / "fortracc-cases.json").exists():
            return base
    return None


def _design_file(name: str) -> dict:
    shared = _find_shared()
    path = ROOT / "tests" / "data" / name
    if shared and (shared / "design" / name).exists():
        path = shared / "design" / name
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def fortracc_cases() -> dict:
    return _design_file("fortracc-cases.json")


@pytest.fixture(scope="session")
def fragmented_cases() -> dict:
    """Overlaps in several pieces, with the expected anomalies of both overlap fractions."""
    return _design_file("fortracc-fragmented-cases.json")
