"""Ahead-of-time check of every kernel, without a GPU: compile for sm_80 and sm_90 at the model's shapes,
read registers and spills from the cubin with the cuobjdump shipped in the triton wheel, print a table,
and exit 1 if any kernel spills.

    python -m vaegan_kernels.check            # the table; exit status 1 on spills
    python -m vaegan_kernels.check --json     # the same rows as JSON

The signatures mark pointers and 16-divisible sizes (16,384 features, 128 latents, row strides) as
divisible by 16, which is how Triton's JIT specialises them at these shapes, so the code checked is the
code that runs. Must run without TRITON_INTERPRET (the interpreter replaces compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ARCHS = (80, 90)
DTYPES = ("bf16", "fp32")


@dataclass
class Row:
    kernel: str
    dtype: str
    arch: str
    registers: int
    stack: int
    local: int
    shared: int

    @property
    def spills(self) -> bool:
        return self.stack > 0 or self.local > 0


def _specs(dtype: str) -> list[tuple[object, dict, dict, int]]:
    """(kernel, signature, constexprs, num_warps); argument names must match the kernels'."""
    import triton.language as tl

    from vaegan_kernels._scale import SCALE_BLOCK, _scale_rows_kernel
    from vaegan_kernels.feature_nll import BLOCK, _feature_nll_forward_kernel
    from vaegan_kernels.reparameterize_kl import (
        _reparameterize_kl_backward_kernel,
        _reparameterize_kl_forward_kernel,
    )

    p, acc = f"*{dtype}", tl.float32
    return [
        (_feature_nll_forward_kernel,
         {"f_rec_ptr": p, "f_target_ptr": p, "rec_stride": "i32", "target_stride": "i32", "grad_ptr": p,
          "partial_ptr": "*fp32", "D": "i32", "chunks": "i32", "grad_scale": "fp32", "BLOCK": "constexpr",
          "ACC": "constexpr"}, {"BLOCK": BLOCK, "ACC": acc}, 4),
        (_scale_rows_kernel,
         {"grad_ptr": p, "scale_ptr": "*fp32", "scale_stride": "i32", "out_ptr": p, "D": "i32",
          "BLOCK": "constexpr", "ACC": "constexpr"}, {"BLOCK": SCALE_BLOCK, "ACC": acc}, 4),
        (_reparameterize_kl_forward_kernel,
         {"mu_ptr": p, "logvar_ptr": p, "eps_ptr": "*fp32", "z_ptr": p, "kl_ptr": "*fp32",
          "dz_dlogvar_ptr": "*fp32", "dkl_dlogvar_ptr": "*fp32", "L": "i32", "BLOCK": "constexpr",
          "ACC": "constexpr"}, {"BLOCK": 128, "ACC": acc}, 1),
        (_reparameterize_kl_backward_kernel,
         {"grad_z_ptr": p, "grad_kl_ptr": "*fp32", "mu_ptr": p, "dz_dlogvar_ptr": "*fp32",
          "dkl_dlogvar_ptr": "*fp32", "grad_mu_ptr": p, "grad_logvar_ptr": p, "L": "i32",
          "HAS_GRAD_Z": "constexpr", "HAS_GRAD_KL": "constexpr", "BLOCK": "constexpr", "ACC": "constexpr"},
         {"HAS_GRAD_Z": True, "HAS_GRAD_KL": True, "BLOCK": 128, "ACC": acc}, 1),
    ]


SIZES_DIVISIBLE_BY_16 = {"rec_stride", "target_stride", "D", "mu_stride", "logvar_stride", "L"}


def _divisible(kernel, signature: dict) -> dict:
    """Pointers and the sizes/strides that are multiples of 16 at the model's shapes (16,384 features,
    128 latents): the JIT specialises on exactly these."""
    return {(i,): [["tt.divisibility", 16]] for i, name in enumerate(kernel.arg_names)
            if signature.get(name, "").startswith("*") or name in SIZES_DIVISIBLE_BY_16}


_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def resource_usage(cubin: bytes) -> tuple[int, int, int, int]:
    """(registers, stack, shared, local) from ``cuobjdump --dump-resource-usage``."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True, check=True)
    match = _USAGE.search(out.stdout)
    if match is None:
        raise RuntimeError(f"cuobjdump printed no resource usage:\n{out.stdout}")
    return tuple(int(v) for v in match.groups())  # type: ignore[return-value]


def check() -> list[Row]:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("vaegan_kernels.check compiles real GPU code: run it without TRITON_INTERPRET=1")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    rows = []
    for dtype in DTYPES:
        for kernel, signature, constexprs, num_warps in _specs(dtype):
            for arch in ARCHS:
                src = ASTSource(kernel, signature, constexprs=constexprs, attrs=_divisible(kernel, signature))
                compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
                regs, stack, shared, local = resource_usage(compiled.asm["cubin"])
                rows.append(Row(kernel.__name__.strip("_").removesuffix("_kernel"), dtype, f"sm_{arch}", regs, stack,
                                local, shared))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = check()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print(f"{'kernel':32s} {'dtype':5s} {'arch':6s} {'regs':>5s} {'stack':>6s} {'local':>6s} {'shared':>7s}")
        for r in rows:
            print(f"{r.kernel:32s} {r.dtype:5s} {r.arch:6s} {r.registers:5d} {r.stack:6d} {r.local:6d} {r.shared:7d}"
                  + ("  SPILLS" if r.spills else ""))
    spilled = [r for r in rows if r.spills]
    if spilled:
        print(f"{len(spilled)} kernel build(s) spill registers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
