"""The package's shape, checked against ARCHITECTURE.md: every module imports on its own, imports
only from its own layer and the layers below it, no import loop, and only ``config`` touches the
environment."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tos2ca_batch.kernels

import tos2ca_batch

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name (kernels under their installed name)."""
    out = {}
    for package, base in (("tos2ca_batch", Path(tos2ca_batch.__file__).parent),
                          ("tos2ca_batch.kernels", Path(tos2ca_batch.kernels.__file__).parent)):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            if package == "tos2ca_batch" and rel[0] == "kernels":
                continue
            name = ".".join((package, *rel))
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Package modules that ``name`` imports anywhere in its code (lazy imports included)."""
    tree = ast.parse(path.read_text())
    if name == "tos2ca_batch":  # its PEP 562 __getattr__ hands out the API on first use (ARCHITECTURE.md)
        tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layers() -> list[tuple[int, str]]:
    """``(layer, pattern)`` rows of ARCHITECTURE.md's layer table."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|(.*?)\|", line)
        if m:
            rows += [(int(m.group(1)), p) for p in re.findall(r"`([\w.*]+)`", m.group(2))]
    return rows


LAYERS = _layers()


def layer_of(module: str) -> int:
    for layer, pattern in LAYERS:
        if module == pattern or (pattern.endswith(".*") and (module + ".").startswith(pattern[:-1])):
            return layer
    raise AssertionError(f"{module} is in no layer of ARCHITECTURE.md")


def test_layer_table_is_read():
    assert len(LAYERS) >= 20 and {layer for layer, _ in LAYERS} == set(range(12))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_its_layer_and_below(module):
    mine = layer_of(module)
    upward = sorted(f"{m} (layer {layer_of(m)})" for m in GRAPH[module] if layer_of(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports {upward}"


def test_no_import_loops():
    state: dict[str, int] = {}
    loops = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                loops.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not loops, loops


SHARED_BY_STAGES = {"tos2ca_batch.stages.common", "tos2ca_batch.stages.products", "tos2ca_batch.stages.report"}


def test_stages_import_no_other_stage_but_the_shared_ones():
    stages = {m for m in MODULES if m.startswith("tos2ca_batch.stages.")}
    assert SHARED_BY_STAGES <= stages
    for m in stages:
        others = GRAPH[m] & stages - SHARED_BY_STAGES
        assert not others, f"{m} imports {sorted(others)}"


def test_only_config_touches_the_environment():
    readers = []
    for name, path in MODULES.items():
        if name == "tos2ca_batch.config":
            continue
        text = path.read_text()
        if re.search(r"\bos\.environ\b|\bgetenv\(|\bputenv\(", text):
            readers.append(name)
    assert not readers, f"modules reading or writing the environment: {readers}"


def test_no_module_shadows_a_builtin():
    import builtins

    shadowing = [m for m in MODULES if m.rpartition(".")[2] in dir(builtins)]
    assert not shadowing, shadowing


def test_every_module_imports_alone():
    """Each module in a process with nothing of the package imported before it."""
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {sorted(m for m in MODULES if not m.endswith('__main__'))!r}:\n"
        "    for k in [k for k in sys.modules if k == 'tos2ca_batch' or k.startswith('tos2ca_batch.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
