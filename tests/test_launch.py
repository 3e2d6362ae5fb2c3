"""Launching a pre-training (sarssl.launch): the torchrun and srun commands per layout."""

from sarssl.launch import RENDEZVOUS_PORT, launcher_commands


def test_several_nodes_run_one_torchrun_per_node_through_srun():
    prefix, launcher = launcher_commands(4, 2, "gpu-node-01", "12345")
    assert prefix == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1"]
    assert launcher[:2] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d"} <= set(launcher)
    assert f"--rdzv-endpoint=gpu-node-01:{RENDEZVOUS_PORT}" in launcher
    assert "--rdzv-id=12345" in launcher
    assert launcher_commands(1, 1, "x", "") == ([], [])
    assert launcher_commands(2, 1, "x", "")[1][2] == "--standalone"
