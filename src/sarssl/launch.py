"""Starting a pre-training from a Snakemake job: one process, torchrun on this node (one
process per GPU), or one torchrun per node of a SLURM allocation; then publishing the
finished run's files as the job's outputs."""

import json
import os
import shutil
import socket
from pathlib import Path

from sarssl.atomic import atomic_path, write_text_atomic
from sarssl.child import run_sarssl
from sarssl.errors import ConfigError
from sarssl.settings.pretrain import CHECKPOINT_NAME, COLLAPSE_NAME, METRICS_NAME, SETTINGS_NAME

RENDEZVOUS_PORT = 29400  # torchrun's c10d rendezvous on the job's first node


def launcher_commands(
    gpus: int, nodes: int, rendezvous_host: str, job_id: str
) -> tuple[list[str], list[str]]:
    """(prefix, launcher) of the training command `prefix python launcher -m sarssl.cli`:
    nothing for one process; torchrun on this node for several GPUs; for several nodes,
    one torchrun per node started by srun, which meet at a c10d rendezvous on the first."""
    if nodes == 1:
        standalone = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
        return [], standalone if gpus > 1 else []
    prefix = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1"]
    launcher = [
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--nproc-per-node={gpus}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rendezvous_host}:{RENDEZVOUS_PORT}",
        f"--rdzv-id={job_id}",
    ]
    return prefix, launcher


def launch(settings: dict, run_dir: str | Path, gpus: int, nodes: int = 1) -> Path:
    """Train in a child process (see sarssl.child), under torchrun on this node (one process
    per GPU; DDP), or on `nodes` nodes of a SLURM allocation (one torchrun per node).
    `settings` are the rule's (PretrainSettings.as_dict, checked when the DAG was built):
    they go to the run folder as they are, and the training processes read them from there.
    """
    run_dir = Path(run_dir)
    settings_file = run_dir / SETTINGS_NAME
    write_text_atomic(settings_file, json.dumps(settings, indent=2))
    job_id = os.environ.get("SLURM_JOB_ID")
    if nodes > 1 and not job_id:
        raise ConfigError(
            f"pretrain {settings['name']}: nodes: {nodes} starts one torchrun per node with srun, "
            f"which needs a SLURM allocation of {nodes} nodes (run with --profile slurm)"
        )
    # The batch script runs on the allocation's first node: the rendezvous is there.
    prefix, launcher = launcher_commands(gpus, nodes, socket.gethostname(), job_id or "")
    run_sarssl(
        ["pretrain", "--settings", str(settings_file), "--run-dir", str(run_dir)],
        launcher,
        prefix,
    )
    return run_dir / CHECKPOINT_NAME


def publish(
    run_dir: str | Path, checkpoint: str | Path, metrics: str | Path, collapse: str | Path
) -> None:
    """Copy a finished run's checkpoint, metrics and collapse verdict to the workflow's
    outputs, atomically."""
    run_dir = Path(run_dir)
    for source, target in (
        (run_dir / CHECKPOINT_NAME, checkpoint),
        (run_dir / METRICS_NAME, metrics),
        (run_dir / COLLAPSE_NAME, collapse),
    ):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
