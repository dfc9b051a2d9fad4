"""Chooses, once per process, between the fused Triton kernels and the PyTorch reference.

    auto       (default) Triton for CUDA tensors when Triton is installed, the reference otherwise
    reference  always the reference (debugging, or a platform where Triton misbehaves)
    triton     always Triton: on CPU tensors this needs TRITON_INTERPRET=1 set before triton is
               imported, which is how the tests run the kernels without a GPU

The choice comes from the environment variable ``VAEGAN_KERNELS`` at import; tests switch it with
:func:`use_backend`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Literal

import torch

Backend = Literal["auto", "reference", "triton"]
BACKENDS: tuple[str, ...] = ("auto", "reference", "triton")
TRITON_AVAILABLE: bool = importlib.util.find_spec("triton") is not None
INTERPRETING: bool = os.environ.get("TRITON_INTERPRET") == "1"


def _from_environment() -> Backend:
    value = os.environ.get("VAEGAN_KERNELS", "auto").strip().lower()
    if value not in BACKENDS:
        raise ValueError(f"VAEGAN_KERNELS={value!r} is not one of {', '.join(BACKENDS)}")
    return value  # type: ignore[return-value]


_backend: Backend = _from_environment()


@contextlib.contextmanager
def use_backend(backend: Backend) -> Iterator[None]:
    """Force a backend inside a ``with`` block (tests compare both paths on the same inputs)."""
    global _backend
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    previous, _backend = _backend, backend
    try:
        yield
    finally:
        _backend = previous


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether this call runs the Triton kernels."""
    if _backend == "reference":
        return False
    if _backend == "triton":
        if not TRITON_AVAILABLE:
            raise RuntimeError("VAEGAN_KERNELS=triton, but triton is not installed")
        if not INTERPRETING and not all(t.is_cuda for t in tensors):
            raise RuntimeError("the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)")
        return True
    return TRITON_AVAILABLE and all(t.is_cuda for t in tensors)
