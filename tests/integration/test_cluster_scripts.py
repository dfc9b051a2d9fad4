"""The cluster scripts parse: `bash -n` on each (a process of its own, hence not in tests/unit; what they do
on a real cluster: tests/integration/test_job_submit.py)."""

import subprocess
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("script", ["local_cluster.sh", "submit.sh"])
def test_cluster_script_has_valid_bash_syntax(script):
    subprocess.run(["bash", "-n", str(CLUSTER / script)], check=True, timeout=30)
