"""The precision the training step computes in: ``train.precision`` = auto | fp32 | bf16.

``auto`` (the default) is bf16 autocast where the hardware computes bf16 natively and float32 elsewhere:

- CUDA: bf16 on GPUs with bf16 tensor cores (Ampere and later; the fused loss kernels accumulate in fp32),
  float32 on older ones.
- A CPU with AVX512_BF16 (AMD Zen 4/5, Intel Cooper Lake) or AMX-BF16 (Intel Sapphire Rapids and later): bf16.
  The smoke step ran 1.83x faster on an AMD AVX-512/bf16 workstation, 2.0-2.1x on an Intel Xeon with AMX (one
  thread; `python bench/step_flops.py --shapes smoke`).
- Any other CPU: float32. There bf16 is emulated and far slower: on an AVX2 CPU (AMD EPYC Zen 3) PyTorch does
  not hand bf16 convolutions to oneDNN at all and falls back to its im2col path (``aten::_slow_conv2d_*``),
  and the smoke step took 12.4x as long as in float32 (``python bench/step_flops.py --shapes smoke``).

Detection reads the CPU's flags through the cpuinfo library PyTorch itself uses
(``torch.cpu._is_avx512_bf16_supported``, ``torch.cpu._is_amx_tile_supported``), and honours oneDNN's own cap
``ONEDNN_MAX_CPU_ISA``: oneDNN never runs a bf16 instruction above that ISA, so ``ONEDNN_MAX_CPU_ISA=AVX2`` on
an AVX-512/bf16 machine means emulated bf16, and ``auto`` then picks float32. It also asks ATen whether it
routes bf16 convolutions to oneDNN at all (``torch.ops.mkldnn._is_mkldnn_bf16_supported``).

Only the autocast regions change: weights, gradients and optimiser state stay float32 (the parameters' dtype),
the losses are formed in float32 (``objectives.losses.at_least_fp32``; the fused kernels accumulate in fp32),
the equilibrium decision reads those float32 costs, R1's double backward runs outside autocast, and the
evaluation (the evaluator's features and every metric) runs in float32 without autocast.
"""

from __future__ import annotations

import os
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# oneDNN's ISA names (its documented ONEDNN_MAX_CPU_ISA values) from which bf16 dot products are native; the
# older AVX512_CORE_* and AVX2_* ones convert bf16 to fp32 and back in software.
_NATIVE_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                     "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
                     "ALL", "DEFAULT")


def cpu_bf16_features() -> tuple[str, ...]:
    """The CPU's native bf16 instruction sets, as cpuinfo reports them (empty: none). cpuinfo exposes AMX as its
    tile feature; every AMX CPU shipped (Sapphire Rapids and later) has AMX-BF16 with it."""
    found = []
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        found.append("avx512_bf16")
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        found.append("amx")
    return tuple(found)


def onednn_allows_native_bf16() -> bool:
    """False when ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``) caps oneDNN below native bf16."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return not cap or cap in _NATIVE_BF16_ISAS


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 convolutions and matmuls natively through oneDNN (see the module doc)."""
    aten_routes_bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return (bool(cpu_bf16_features()) and onednn_allows_native_bf16()
            and (aten_routes_bf16 is None or bool(aten_routes_bf16())))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on ``device``; None = no autocast (float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":  # Ampere and later; a V100 or T4 would only emulate it
        native = not torch.cuda.is_available() or torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


def describe(autocast_dtype: torch.dtype | None, device: torch.device) -> str:
    """One line for the start of a run: what the step computes in, and why."""
    computes = "bf16 autocast" if autocast_dtype is not None else "float32"
    if device.type == "cuda":
        return f"precision: {computes} on CUDA"
    native = "yes" if cpu_has_native_bf16() else "no"
    warning = ("; emulated bf16 is far slower than float32 (12x on an AVX2 CPU): train.precision=auto avoids it"
               if autocast_dtype is not None and native == "no" else "")
    return (f"precision: {computes} on CPU (native bf16: {native}; "
            f"bf16 instructions: {', '.join(cpu_bf16_features()) or 'none'}){warning}")
