"""The Slurm batch script starts one multi-node torchrun per node through the launcher."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from training.launch import build_command

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "slurm" / "train-s1.sbatch"


def test_sbatch_script_launches_a_rendezvous(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho gpu-node-07\necho gpu-node-08\n")
    (bin_dir / "srun").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/srun-args\n')
    for tool in ("scontrol", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        SLURM_SUBMIT_DIR=str(REPO),
        SLURM_JOB_NODELIST="gpu-node-[07-08]",
        SLURM_NNODES="2",
        SLURM_JOB_ID="4242",
        SLURM_GPUS_ON_NODE="8",
    )
    proc = subprocess.run(["bash", str(SCRIPT), "--epochs", "3"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    args = (tmp_path / "srun-args").read_text().splitlines()
    assert args[:2] == ["--kill-on-bad-exit=1", str(REPO / ".venv" / "bin" / "python")]
    assert args[2:4] == ["-m", "training.launch"]
    cmd = build_command(args[4:])
    head = cmd[: cmd.index("training.sft")]
    assert head[head.index("--nnodes") + 1] == "2"
    assert head[head.index("--nproc-per-node") + 1] == "8"
    assert head[head.index("--rdzv-endpoint") + 1] == "gpu-node-07:29500"
    assert head[head.index("--rdzv-id") + 1] == "4242"
    train_args = cmd[cmd.index("training.sft") + 1 :]
    assert train_args == ["--config", str(REPO / "training" / "recipes" / "s1.1-32b.toml"), "--epochs", "3"], (
        shlex.join(train_args)
    )
