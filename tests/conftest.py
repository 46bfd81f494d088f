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


@pytest.fixture(scope="session")
def fortracc_cases() -> dict:
    shared = _find_shared()
    path = (shared / "design" / "fortracc-cases.json") if shared else ROOT / "tests" / "data" / "fortracc-cases.json"
    return json.loads(path.read_text())
