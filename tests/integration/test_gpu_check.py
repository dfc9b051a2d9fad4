"""bench/gpu_check.sh --dry-run: every part of the GPU readiness check that needs no GPU runs here, so the script
a GPU session runs (with minutes of device time at stake) is known to work before it gets there."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_dry_run_passes_every_row(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 6 and all("| ok |" in row for row in rows), "\n".join(rows)


def test_the_gpu_check_refuses_to_run_without_a_gpu_unless_dry():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the full check is bench/gpu_check.sh itself")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2 and "--dry-run" in done.stderr
