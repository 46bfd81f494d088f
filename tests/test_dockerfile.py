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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_dockerfile() -> dict:
    env, copies, runs, workdirs = {}, [], [], []
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
    return {"env": env, "copies": copies, "runs": runs, "workdirs": workdirs}


def test_image_install_steps(tmp_path):
    df = parse_dockerfile()
    app_dir = df["workdirs"][0]  # where the COPYs land and pip runs
    assert df["env"]["HDF5_USE_FILE_LOCKING"] == "FALSE"
    text = (ROOT / "Dockerfile").read_text()
    assert "USER tos2ca" in text and "python:3.11-slim" in text
    app = tmp_path / "app"
    app.mkdir()
    for src in df["copies"]:
        s = ROOT / src
        (shutil.copytree if s.is_dir() else shutil.copy)(s, app / src)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    pip_runs = [r for r in df["runs"] if r.startswith("pip install")]
    extras = re.search(r'"\.\[([^\]]*)\]"', pip_runs[0]) if pip_runs else None
    assert extras and {"mpi", "parquet", "earthdata"} <= set(extras.group(1).split(",")), \
        "the image installs the project with the mpi, parquet and earthdata extras"
    subprocess.run(f"{bin_dir}/{pip_runs[0]}", shell=True, cwd=app, check=True, capture_output=True, timeout=900)
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
