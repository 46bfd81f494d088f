"""A real single-node Slurm for the tests: Debian's munged, slurmctld and slurmd, started in a
private directory with their own ports, key and socket, so they touch nothing of the machine's
(no /etc/slurm, no /run/munge) and several runs can live side by side.

``MaxArraySize`` is small on purpose: a job of a few chunks already needs a stage split into
several arrays. Clients (``sbatch``, ``squeue``...) find the cluster through ``SLURM_CONF``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def installed() -> str | None:
    """Why no Slurm can be started here (None when it can)."""
    missing = [d for d in DAEMONS + ("sbatch", "squeue", "scontrol", "scancel")
               if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """``start()`` brings the three daemons up and waits until the node is idle; ``stop()`` ends them."""

    def __init__(self, root: Path, cpus: int = 2, max_array: int = 3, memory_mb: int = 8000):
        self.root = Path(root)
        self.cpus, self.max_array, self.memory_mb = cpus, max_array, memory_mb
        self.host = socket.gethostname()
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"
        self.procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """What a client of this cluster needs in its environment."""
        return {"SLURM_CONF": str(self.conf)}

    def _write(self) -> None:
        for d in ("munge", "state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        log = self.root / "log"
        self.conf.write_text("\n".join([
            "ClusterName=tos2ca-test",
            f"SlurmctldHost={self.host}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket},cred_expire=10",  # a requeued job waits this long (default 120 s)
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobRequeue=1",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            f"MaxArraySize={self.max_array}",
            "MinJobAge=3600",
            "KillWait=5",
            "InactiveLimit=0",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        self._write()
        env = dict(os.environ, **self.env)
        munge = self.root / "munge"
        self.procs.append(subprocess.Popen(
            [_daemon("munged"), "-F", "--force", f"--socket={self.socket}", f"--key-file={munge / 'munge.key'}",
             f"--pid-file={munge / 'munged.pid'}", f"--log-file={self.root / 'log' / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        self._wait(lambda: self.socket.exists(), timeout, "munged's socket")
        for daemon in ("slurmctld", "slurmd"):
            args = [_daemon(daemon), "-D", "-f", str(self.conf)] + (["-i"] if daemon == "slurmctld" else [])
            self.procs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               start_new_session=True))
        self._wait(lambda: self.node_state() in ("idle", "mixed", "allocated"), timeout, "the node to be idle")
        return self

    def node_state(self) -> str | None:
        out = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
        return out.stdout.strip().rstrip("*~#") if out.returncode == 0 else None

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(args, env=dict(os.environ, **self.env), capture_output=True, text=True, check=check,
                              timeout=60)

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; logs in {self.root / 'log'}: {self.logs()}")
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; logs in {self.root / 'log'}: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text()[-3000:] for p in sorted((self.root / "log").glob("*.log")))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
