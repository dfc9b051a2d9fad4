"""`python -m vaegan_kernels.check`: every fused kernel compiled ahead of time for sm_80 and sm_90, no GPU
needed. A fresh process without TRITON_INTERPRET (the suite's interpreter would stop Triton compiling)."""

import json
import os
import subprocess
import sys

import pytest

from vaegan_kernels.dispatch import TRITON_AVAILABLE


@pytest.mark.skipif(not TRITON_AVAILABLE, reason="needs triton")
def test_ahead_of_time_check_compiles_every_kernel_for_sm80_and_sm90_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-m", "vaegan_kernels.check", "--json"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    assert {(r["arch"], r["dtype"]) for r in rows} == {(a, d) for a in ("sm_80", "sm_90") for d in ("bf16", "fp32")}
    assert len({r["kernel"] for r in rows}) == 4
    assert all(r["local"] == 0 and r["stack"] == 0 and 0 < r["registers"] <= 255 for r in rows)
