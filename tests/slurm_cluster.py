"""A real single-node SLURM cluster on localhost, started and stopped by the tests.

Uses Debian's `slurm-wlm` and `munge` (installed by .ci/run). The daemons run in the
foreground as child processes and are stopped by their PIDs. Facts this relies on:
- the executor's job-step plugin drops SLURM_CONF from the job's environment, so the config
  must be at /etc/slurm/slurm.conf (a symlink to ours);
- without slurmdbd there is no accounting, so the workflow queries status with squeue, and
  MinJobAge stays well above three times the first status-check delay;
- `Gres=gpu:1` with `File=/dev/null` lets `gpu=1` jobs schedule on a node without a GPU;
- munge without systemd needs /run/munge and its log owned by the munge user.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

ETC_SLURM_CONF = Path("/etc/slurm/slurm.conf")
MIN_JOB_AGE_S = 300
FIRST_STATUS_CHECK_S = 5


def slurm_available() -> str | None:
    """None if a cluster can be started here, else the reason it cannot."""
    missing = [
        b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if not shutil.which(b)
    ]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} missing); .ci/install-slurm installs it"
        )
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    if ETC_SLURM_CONF.exists() and not ETC_SLURM_CONF.is_symlink():
        return f"{ETC_SLURM_CONF} belongs to an installed cluster; not replacing it"
    return None


def slurm_conf(state: Path, cpus: int, memory_mb: int) -> str:
    return f"""ClusterName=sarssl-test
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge={MIN_JOB_AGE_S}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=localhost CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    def __init__(self, state: Path):
        self.state = state
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        for sub in ("ctld", "d"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        conf = self.state / "slurm.conf"
        conf.write_text(slurm_conf(self.state, cpus, memory_mb))
        (self.state / "gres.conf").write_text("Name=gpu File=/dev/null\n")
        ETC_SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        ETC_SLURM_CONF.unlink(missing_ok=True)
        ETC_SLURM_CONF.symlink_to(conf)
        gres = ETC_SLURM_CONF.parent / "gres.conf"
        gres.unlink(missing_ok=True)
        gres.symlink_to(self.state / "gres.conf")
        self._start_munge()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._spawn("slurmd", ["slurmd", "-D"])
        self._wait_for_idle_node()

    def _start_munge(self) -> None:
        for directory in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
            directory.mkdir(parents=True, exist_ok=True)
            shutil.chown(directory, "munge", "munge")
        log = Path("/var/log/munge/munged.log")
        log.touch()
        shutil.chown(log, "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged", "-F", "--force"])
        self._wait(
            lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, "munge"
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.state / f"{name}.out", "w") as log:  # the child keeps its own handle
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _wait_for_idle_node(self) -> None:
        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mix")

        self._wait(idle, "the SLURM node")

    def _wait(self, ready, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.5)
        raise RuntimeError(f"{what} did not start; see the logs in {self.state}")

    def stop(self) -> None:
        """Stop the daemons this object started, by their PIDs, newest first."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        for link in (ETC_SLURM_CONF, ETC_SLURM_CONF.parent / "gres.conf"):
            if link.is_symlink():
                link.unlink()
