"""The fused loss kernels vs eager PyTorch vs torch.compile, forward + backward, at the model's shapes.

    python bench/fused_kernels.py                 # on a GPU: timings (triton.testing.do_bench) and GB/s
                                            # anywhere: bytes moved per feature element by each path

Shapes: feature_nll at batch 64 and 256 with 16,384 features (Dis_l at 64 px), bf16; reparameterize_kl
at batch 64 and 256 with 128 latents.

Bytes moved: for eager PyTorch they are counted from the graph it runs (every ATen op's inputs read and
outputs written once, views excluded), recorded with a TorchDispatchMode on this machine; for the fused
path they follow from the kernels' loads and stores. Achieved bandwidth on a GPU is reported against the
minimum any implementation must move (read f_rec and f_target, write the gradient) and the card's peak.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import vaegan_kernels as kernels
from vaegan_kernels.feature_nll import feature_nll_reference

PEAK_GB_S = {"H100 SXM": 3350, "H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H200": 4800, "A100-SXM4-80GB": 2039,
             "A100-SXM4-40GB": 1555, "A100 80GB PCIe": 1935, "L40S": 864, "RTX 4090": 1008}
NO_DATA = {"view", "_unsafe_view", "reshape", "t", "transpose", "expand", "permute", "detach", "alias", "slice",
           "select", "squeeze", "unsqueeze", "as_strided", "lift_fresh", "_to_copy_noop"}


class ByteCounter(TorchDispatchMode):
    """Sums the bytes every ATen op reads (tensor inputs) and writes (tensor outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if name not in NO_DATA:
            tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
            self.bytes += sum(t.numel() * t.element_size() for t in tensors)
            self.ops.append(name)
        return out


def eager_feature_nll(f_rec, f_target):
    return feature_nll_reference(f_rec, f_target).mean()


def bytes_per_element_eager(rows: int = 4, d: int = 16384, dtype=torch.bfloat16) -> tuple[float, list[str]]:
    f_rec = torch.randn(rows, d, dtype=dtype, requires_grad=True)
    f_target = torch.randn(rows, d, dtype=dtype)
    with ByteCounter() as counter:
        loss = eager_feature_nll(f_rec, f_target)
        loss.backward()
    return counter.bytes / (rows * d), counter.ops


def bytes_per_element_fused(dtype=torch.bfloat16) -> float:
    """Forward: load f_rec and f_target, store the gradient buffer; backward: load it, store the scaled
    gradient. Per-chunk partial sums (one fp32 per 2,048 elements) are negligible."""
    size = torch.tensor([], dtype=dtype).element_size()
    return 3 * size + 2 * size


def gpu_timings() -> None:
    import triton.testing

    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_GB_S.items() if k in name), None)
    print(f"\n{name} (peak {peak or '?'} GB/s), median of triton.testing.do_bench, forward + backward")
    compiled = torch.compile(eager_feature_nll)
    for rows in (64, 256):
        f_rec = torch.randn(rows, 16384, dtype=torch.bfloat16, device="cuda", requires_grad=True)
        f_target = torch.randn(rows, 16384, dtype=torch.bfloat16, device="cuda")
        paths = {"fused": lambda: kernels.feature_nll(f_rec, f_target).backward(),
                 "eager": lambda: eager_feature_nll(f_rec, f_target).backward(),
                 "compile": lambda: compiled(f_rec, f_target).backward()}
        with kernels.use_backend("reference"):
            ms = {k: triton.testing.do_bench(v) for k, v in paths.items() if k != "fused"}
        ms["fused"] = triton.testing.do_bench(paths["fused"])
        minimum = rows * 16384 * 2 * 3  # read f_rec, f_target; write the gradient (bf16)
        gbs = minimum / ms["fused"] / 1e6
        print(f"feature_nll B={rows:3d}: fused {ms['fused'] * 1e3:7.1f} us, eager {ms['eager'] * 1e3:7.1f} us "
              f"({ms['eager'] / ms['fused']:4.1f}x), compile {ms['compile'] * 1e3:7.1f} us "
              f"({ms['compile'] / ms['fused']:4.1f}x); {gbs:6.0f} GB/s"
              + (f" = {100 * gbs / peak:3.0f}% of peak" if peak else ""))
    for rows in (64, 256):
        mu = torch.randn(rows, 128, dtype=torch.bfloat16, device="cuda", requires_grad=True)
        logvar = torch.randn(rows, 128, dtype=torch.bfloat16, device="cuda", requires_grad=True)
        eps = torch.randn(rows, 128, device="cuda")

        def step():
            z, kl = kernels.reparameterize_kl(mu, logvar, eps)
            (z.float().sum() + kl.mean()).backward()

        fused = triton.testing.do_bench(step)
        with kernels.use_backend("reference"):
            eager = triton.testing.do_bench(step)
        print(f"reparameterize_kl B={rows:3d}: fused {fused * 1e3:6.1f} us, eager {eager * 1e3:6.1f} us "
              f"({eager / fused:4.1f}x)")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    eager, ops = bytes_per_element_eager()
    fused = bytes_per_element_fused()
    print("feature_nll forward + backward, bf16, bytes moved per feature element:")
    print(f"  eager PyTorch: {eager:5.1f}  ({len(ops)} ATen ops: {', '.join(ops)})")
    print(f"  fused Triton:  {fused:5.1f}  (forward: load f_rec, f_target, store grad; backward: load, store)")
    print(f"  ratio:         {eager / fused:5.1f}x fewer bytes")
    if torch.cuda.is_available():
        gpu_timings()
    else:
        print("\nno GPU here: timings need one (see bench/RESULTS.md for the ahead-of-time table)")


if __name__ == "__main__":
    main()
