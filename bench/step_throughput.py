"""Images/s of one full VAE/GAN training step: ours vs a straightforward implementation, side by side.

    python bench/step_throughput.py                 # smoke and celeba64 shapes on this machine
    python bench/step_throughput.py --shapes smoke --steps 20

Ours (vaegan_dist.train.step.TrainStep): one decoder pass on [z, z_p], one discriminator pass on
[x, x~, x_p], gradients routed with three pruned backward passes (four for the non-saturating loss).
Both run in each memory layout (channels-last, which training uses, and PyTorch's default NCHW, in
which the straightforward step is usually written), so the speedup isolates the algorithm.
Straightforward: separate decoder passes for z and z_p, three separate discriminator passes, and one
full ``loss.backward()`` per loss (encoder, decoder, discriminator) keeping only the owner's gradient,
then the three optimiser steps. Both follow the same update rules; "equal results" is checked by
comparing their gradients on identical weights with batch norm in eval mode (where per-pass batch
statistics cannot differ), for the preset's own objective (minimax or non-saturating, either weighting).

The two implementations alternate step by step so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

import vaegan_kernels as kernels
from vaegan_dist.config import build_config
from vaegan_dist.model import build_model
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep


class StraightforwardStep:
    """The VAE/GAN step as most implementations write it."""

    def __init__(self, model, optimizers, cfg, memory_format=torch.contiguous_format, device="cpu"):
        self.model, self.optimizers, self.cfg, self.memory_format = model, optimizers, cfg, memory_format
        self.device = torch.device(device)
        # On a GPU both steps run under bf16 autocast, as training does (vaegan_dist.train.runtime).
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def gradients(self, x, eps, z_p):
        enc, dec, dis = self.model.encoder, self.model.decoder, self.model.discriminator
        obj = self.cfg.objective
        mu, logvar = enc(x)
        z = mu + eps * torch.exp(0.5 * logvar)
        x_rec, x_p = dec(z), dec(z_p)
        logit_real, f_real = dis(x)
        logit_rec, f_rec = dis(x_rec)
        logit_p, _ = dis(x_p)
        l_prior = (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)).mean()
        l_llike = kernels.feature_nll(f_rec, f_real.detach())
        # The config's objective, written out independently of vaegan_dist.objectives.
        bce = F.binary_cross_entropy_with_logits
        fakes = [logit_p, logit_rec] if obj.fakes == "prior_and_reconstruction" else [logit_p]
        if obj.discriminator_weighting == "sum":
            l_gan = bce(logit_real, torch.ones_like(logit_real)) + sum(bce(f, torch.zeros_like(f)) for f in fakes)
            l_gen = -l_gan if obj.generator_loss == "minimax" else sum(bce(f, torch.ones_like(f)) for f in fakes)
        else:  # released code: per-image weights 0.5 (real), 0.5 * B / n_fakes (fakes), summed; the decoder's
            # gradient at Dis's input scaled by the inverse fake weight. Our losses are those sums over B.
            fk, b = torch.cat(fakes), logit_real.shape[0]
            gen_weight = 0.5 * b / len(fk)
            real_sum = bce(logit_real, torch.ones_like(logit_real), reduction="sum")
            l_gan = (0.5 * real_sum + gen_weight * bce(fk, torch.zeros_like(fk), reduction="sum")) / b
            ns_sum = bce(fk, torch.ones_like(fk), reduction="sum")
            l_gen = -l_gan / gen_weight if obj.generator_loss == "minimax" else ns_sum / b
        w = 1.0 if obj.decoder_gan_weight == "one" else 1.0 - obj.gamma
        losses = {"encoder": l_prior + l_llike, "decoder": obj.gamma * l_llike + w * l_gen, "discriminator": l_gan}
        grads = {}
        for i, (name, loss) in enumerate(losses.items()):
            self.model.zero_grad(set_to_none=True)
            loss.backward(retain_graph=i < 2)
            grads[name] = [p.grad.clone() for p in getattr(self.model, name).parameters()]
        for name, gs in grads.items():
            for p, g in zip(getattr(self.model, name).parameters(), gs):
                p.grad = g
        return grads

    def __call__(self, images, step):
        x = images.to(self.device).float().div(127.5).sub(1.0).contiguous(memory_format=self.memory_format)
        b, latent = x.shape[0], self.cfg.model.latent_dim
        with self.autocast:
            self.gradients(x, torch.randn(b, latent, device=self.device), torch.randn(b, latent, device=self.device))
        for opt in self.optimizers.values():
            opt.step()


def equal_results(cfg) -> float:
    """Largest relative gradient difference between the two implementations (BN in eval mode)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.image_size)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    b, s, latent = 4, cfg.data.image_size, cfg.model.latent_dim
    x, eps, z_p = torch.rand(b, 3, s, s) * 2 - 1, torch.randn(b, latent), torch.randn(b, latent)
    ours = copy.deepcopy(model)
    from vaegan_dist.objectives import compute_gradients, compute_losses, run_forward

    fwd = run_forward(ours.encoder, ours.decoder, ours.discriminator, x, eps, z_p)
    compute_gradients(fwd, compute_losses(fwd, cfg.objective), ours.encoder, ours.decoder, ours.discriminator,
                      cfg.objective)
    ref = StraightforwardStep(model, {}, cfg).gradients(x, eps, z_p)
    worst = 0.0
    for name, gs in ref.items():
        for p, g in zip(getattr(ours, name).parameters(), gs):
            worst = max(worst, ((p.grad - g).abs().max() / g.abs().max().clamp_min(1e-12)).item())
    return worst


def bench(shape: str, steps: int, batch: int | None, device: str = "cpu") -> dict[str, float]:
    overrides = [f"data.batch_size={batch}"] if batch else []
    cfg = build_config(shape, overrides)
    b, s = cfg.data.batch_size, cfg.data.image_size
    images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8)
    torch.manual_seed(0)
    base = build_model(cfg.model, s)
    gpu = device == "cuda"
    candidates = {}
    for layout, fmt in (("channels_last", torch.channels_last), ("nchw", torch.contiguous_format)):
        # fp32 on a CPU (the straightforward step has no CPU autocast): the comparison isolates the algorithm
        runtime = replace(runtime_for(gpu, torch.device(device), "auto" if gpu else "fp32"), memory_format=fmt)
        m1, m2 = (copy.deepcopy(base).to(device, memory_format=fmt) for _ in range(2))
        candidates[f"ours_{layout}"] = TrainStep(m1.networks(), build_optimizers(m1, cfg.optim), cfg, runtime,
                                                 noise_seed=0)
        candidates[f"straightforward_{layout}"] = StraightforwardStep(m2, build_optimizers(m2, cfg.optim), cfg, fmt,
                                                                      device)
    times = {name: [] for name in candidates}
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    for i in range(steps + 2):  # two warm-up steps each
        for name, fn in candidates.items():
            sync()
            t0 = time.perf_counter()
            fn(images, i)
            sync()
            if i >= 2:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"shape": shape, "batch": b, "image_size": s, "img_s": {k: b / v for k, v in med.items()},
            "max_rel_grad_diff": equal_results(cfg)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["smoke", "celeba64"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per implementation")
    parser.add_argument("--batch", type=int, default=None, help="override the preset's batch size")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"images/s, median of {args.steps} steps; speedup = ours / straightforward in the same layout")
    for shape in args.shapes:
        r = bench(shape, args.steps, args.batch)
        ips = r["img_s"]
        for layout in ("channels_last", "nchw"):
            ours, sf = ips[f"ours_{layout}"], ips[f"straightforward_{layout}"]
            print(f"{r['shape']:9s} batch {r['batch']:3d} {r['image_size']:3d}px {layout:13s} ours {ours:7.1f} "
                  f"straightforward {sf:7.1f}  speedup {ours / sf:4.2f}x", flush=True)
        best = max(ips["ours_channels_last"], ips["ours_nchw"])
        print(f"{r['shape']:9s} ours (best layout) vs straightforward as usually written (NCHW): "
              f"{best / ips['straightforward_nchw']:4.2f}x; max relative gradient difference "
              f"{r['max_rel_grad_diff']:.1e}", flush=True)

if __name__ == "__main__":
    main()
