"""The image's install steps, replayed in a fresh venv exactly as the Dockerfile gives them
(no Docker engine here): COPY the same paths, run the same RUN pip line, set the same ENV,
then `tos2ca-batch --help` and a tiny job from the installed (not editable) package."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = "manifests/image-requirements.txt"


def parse_dockerfile() -> dict:
    env, copies, runs, workdirs, froms = {}, [], [], [], []
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        parts = line.strip().split(None, 1)
        if not parts or parts[0].startswith("#"):
            continue
        cmd, rest = parts[0].upper(), parts[1] if len(parts) > 1 else ""
        if cmd == "ENV":
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                env[k] = v
        elif cmd == "COPY":
            *src, _dest = rest.split()
            copies += src
        elif cmd == "RUN":
            runs.append(rest)
        elif cmd == "WORKDIR":
            workdirs.append(rest)
        elif cmd == "FROM":
            froms.append(rest)
    return {"env": env, "copies": copies, "runs": runs, "workdirs": workdirs, "froms": froms}


def locked_pins() -> dict[str, str]:
    text = (ROOT / LOCK).read_text()
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


def test_base_image_pinned_by_digest_and_python_matches_the_lock():
    (base,) = parse_dockerfile()["froms"]
    match = re.fullmatch(r"python:(\d+\.\d+)-slim@sha256:[0-9a-f]{64}", base)
    assert match, f"the base image is pinned by its index digest, not a moving tag: {base!r}"
    make = (ROOT / "Makefile").read_text()
    assert f"--python-version {match[1]} " in make, "the lock is resolved for the base image's Python"


def test_lock_satisfies_the_projects_requirements():
    """Edit pyproject.toml's dependencies without `make lock` and this fails: every requirement of
    the project, of the image's extras and of its build backend is met by one locked version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = re.search(r'"\.\[([^\]]*)\]"', " ".join(parse_dockerfile()["runs"]))[1].split(",")
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in extras:
        wanted += project["project"]["optional-dependencies"][extra]
    pins = locked_pins()
    for text in wanted:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"python_version": "3.11"}):
            continue
        version = pins.get(canonicalize_name(req.name))
        assert version, f"{req.name} is not in {LOCK}: run `make lock`"
        assert req.specifier.contains(version, prereleases=True), \
            f"{LOCK} pins {req.name}=={version}, outside {req.specifier}: run `make lock`"
    hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", (ROOT / LOCK).read_text())
    assert len(hashes) >= len(pins), "every locked version carries its files' hashes"


def test_image_install_steps(tmp_path):
    df = parse_dockerfile()
    app_dir = df["workdirs"][0]  # where the COPYs land and pip runs
    assert df["env"]["HDF5_USE_FILE_LOCKING"] == "FALSE"
    text = (ROOT / "Dockerfile").read_text()
    assert "USER tos2ca" in text and "python:3.11-slim@sha256:" in text
    app = tmp_path / "app"
    app.mkdir()
    for src in df["copies"]:
        s, d = ROOT / src, app / src
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():  # COPY merges into what is there
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy(s, d)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    pip_runs = [r for r in df["runs"] if r.startswith("pip install")]
    assert any("--require-hashes" in r and LOCK in r for r in pip_runs), "the image installs the lock, hash-checked"
    extras = re.search(r'"\.\[([^\]]*)\]"', " ".join(pip_runs))
    assert extras and {"mpi", "parquet", "earthdata"} <= set(extras.group(1).split(",")), \
        "the image installs the project with the mpi, parquet and earthdata extras"
    # Each RUN as the image's shell runs it, with the venv's pip and python first on PATH.
    shell_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    shell_env.pop("PYTHONPATH", None)
    for run_line in pip_runs:
        done = subprocess.run(run_line, shell=True, cwd=app, env=shell_env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{run_line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    frozen = subprocess.run([str(bin_dir / "python"), "-m", "pip", "freeze", "--all", "--exclude", "tos2ca-batch"],
                            env=shell_env, capture_output=True, text=True, check=True).stdout
    installed = {canonicalize_name(n): v for n, _, v in (ln.partition("==") for ln in frozen.split()) if v}
    pins = locked_pins()
    assert {k: installed.get(k) for k in pins} == pins, "the image holds exactly the locked versions"
    env = {k: v.replace(app_dir, str(app)) for k, v in df["env"].items()}
    env = {**os.environ, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TOS2CA_WORKDIR": str(tmp_path / "work")}
    env.pop("PYTHONPATH", None)
    exe = str(bin_dir / "tos2ca-batch")
    help_ = subprocess.run([exe, "--help"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert help_.returncode == 0 and "task" in help_.stdout
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import tos2ca_batch, mpi4py, earthaccess; print(tos2ca_batch.__file__)"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert str(venv) in where.stdout, "the installed package, not the checkout"
    syn = subprocess.run([exe, "synth", "--kind", "imerg", "--out", str(tmp_path / "data"), "--start",
                          "2020-01-04T00:00", "--end", "2020-01-04T02:00", "--res", "2.0"],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    catalog = json.loads(syn.stdout.strip().splitlines()[-1])["catalog"]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"stage": "phdef", "dataset": "GPM_3IMERGHH", "variable": "precipitation",
                                "operator": "greaterThan", "value": 10.0, "start": "2020-01-04T00:00",
                                "end": "2020-01-04T02:00", "bbox": [-180, -90, 180, 90],
                                "tracking": {"min_size": 3}}))
    run = subprocess.run([exe, "run", str(spec), "--catalog", catalog, "--workers", "1", "--products", "masks,toc"],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["status"] == "complete" and len(res["outputs"]) == 2
    # The built-in catalog came from the ENV path, as in the image.
    listed = subprocess.run([str(bin_dir / "python"), "-c",
                             "from tos2ca_batch.config import Config; print(sorted(Config.from_env().catalog()))"],
                            env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "MUR" in listed.stdout and "GPM_MERGIR" in listed.stdout
