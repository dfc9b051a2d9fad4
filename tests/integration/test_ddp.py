"""DDP is provably right: with the same seed and global batch, 2 workers end with the same parameters
as 1 worker. Batch norm keeps per-replica statistics (plain DDP), so the 1-worker reference accumulates
the gradients of each replica's share of the batch separately, as DDP averages them."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from vaegan_dist.config import build_config
from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.model import build_model
from vaegan_dist.objectives import (
    GanPhase,
    compute_gradients,
    compute_losses,
    equilibrium_updates,
    run_forward,
)
from vaegan_dist.objectives.recipe import adaptive_gan_weight, r1_term
from vaegan_dist.train.optim import build_optimizers, set_lrs
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep

WORLD, PER_RANK, STEPS, LATENT = 2, 4, 3, 8


# The smoke objective, and the paper presets' minimax loss with the equilibrium trick (margin 0, so that
# nearly every step pauses one network: the skip decisions themselves must agree across ranks).
# The recipe options that change gradients (pinned off in the other two): the pixel term and lazy R1, whose
# extra discriminator forward runs outside DDP and must still be reduced with the step's one backward.
RECIPE_OFF = ["objective.pixel_weight=0", "objective.r1_gamma=0", "optim.ema_halflife_kimg=0"]
OBJECTIVES = {
    "non_saturating": ["objective.generator_loss=non_saturating", "objective.equilibrium=false", *RECIPE_OFF],
    "minimax_equilibrium": ["objective.generator_loss=minimax", "objective.equilibrium=true",
                            "objective.equilibrium_margin=0.0", *RECIPE_OFF],
    "recipe": ["objective.generator_loss=non_saturating", "objective.equilibrium=false", "objective.pixel_weight=1",
               "objective.r1_gamma=1", "objective.r1_every=2", "optim.ema_halflife_kimg=0"],
}


def _config(objective: str):
    return build_config("smoke", ["model.width=0.125", "model.encoder_fc=16", f"model.latent_dim={LATENT}",
                                  "model.discriminator_fc=8", f"data.batch_size={PER_RANK}", "objective.gamma=0.2",
                                  f"train.steps={STEPS}", *OBJECTIVES[objective]])


def _global_batches():
    g = torch.Generator().manual_seed(7)
    n = WORLD * PER_RANK
    return [(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
             torch.randn(n, LATENT, generator=g), torch.randn(n, LATENT, generator=g)) for _ in range(STEPS)]


def _initial_model(cfg):
    torch.manual_seed(0)
    return build_model(cfg.model, 32).to(memory_format=torch.channels_last)


def _worker(rank: int, port: int, out: str, torch_threads: int, objective: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    # Same thread count as the reference: CPU kernels reduce in a thread-dependent order, and batch norm
    # over 4 samples amplifies those last-bit differences to ~0.3% of a gradient within one step.
    torch.set_num_threads(torch_threads)
    cfg = _config(objective)
    model = _initial_model(cfg)
    optimizers = build_optimizers(model, cfg.optim)
    nets = {n: DDP(getattr(model, n)) for n in ("encoder", "decoder", "discriminator")}
    step_fn = TrainStep(nets, optimizers=optimizers, cfg=cfg, runtime=runtime_for(False, precision="fp32"),
                        noise_seed=0)
    share = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    for step, (images, eps, z_p) in enumerate(_global_batches()):
        step_fn(images[share], step, noise=(eps[share], z_p[share]))
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _single_worker_reference(objective: str):
    """Returns the final state and how many optimiser steps the equilibrium rule skipped."""
    cfg = _config(objective)
    obj = cfg.objective
    model = _initial_model(cfg)
    skipped = 0
    optimizers = build_optimizers(model, cfg.optim)
    runtime = runtime_for(False, precision="fp32")
    for step, (images, eps, z_p) in enumerate(_global_batches()):
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        costs = torch.zeros(2)
        for r in range(WORLD):  # each replica's share, its own batch statistics; gradients accumulate
            share = slice(r * PER_RANK, (r + 1) * PER_RANK)
            x = to_unit_range(images[share], runtime.device, runtime.memory_format)
            fwd = run_forward(model.encoder, model.decoder, model.discriminator, x, eps[share], z_p[share])
            losses = compute_losses(fwd, obj)
            phase = GanPhase.at(step, obj)
            r1 = r1_term(model.discriminator, x, None, obj) if phase.r1_now else None
            compute_gradients(fwd, losses, model.encoder, model.decoder, model.discriminator, obj, phase=phase,
                              dis_extra=r1)
            costs += torch.stack([losses.real_cost, losses.fake_cost]) / WORLD
        for p in model.parameters():
            p.grad /= WORLD  # DDP averages over ranks
        update = {"encoder": True, "decoder": True, "discriminator": True}
        if obj.equilibrium:  # decided on the costs averaged over all replicas
            decoder, discriminator = equilibrium_updates(costs[0], costs[1], obj.equilibrium_value,
                                                         obj.equilibrium_margin)
            update["decoder"], update["discriminator"] = bool(decoder), bool(discriminator)
        set_lrs(optimizers, step, cfg.train.steps, cfg.optim)
        for name, opt in optimizers.items():
            if update[name]:
                opt.step()
            skipped += not update[name]
    return model.state_dict(), skipped


@pytest.mark.slow
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_two_ddp_workers_match_one_worker(tmp_path, objective):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path), torch.get_num_threads(), objective), nprocs=WORLD, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    reference, skipped = _single_worker_reference(objective)
    assert (skipped > 0) == (objective == "minimax_equilibrium")
    initial = _initial_model(_config(objective)).state_dict()
    for name, value in reference.items():
        if "running" in name or "num_batches" in name:
            continue  # per-replica BN statistics are not synchronised (plain DDP); parameters are
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=f"replicas differ: {name}")
        torch.testing.assert_close(rank0[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert any(not torch.equal(initial[k], reference[k]) for k in reference if "weight" in k)


def _adaptive_batches():
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    h = torch.randn(WORLD * PER_RANK, 4, 6, 6, generator=g, dtype=torch.float64)
    g_llike, g_gen = (torch.randn(WORLD * PER_RANK, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    return weight, h, g_llike, g_gen


def _adaptive_weight_of(weight, h, g_llike, g_gen):
    last_layer = weight.clone().requires_grad_(True)
    x_fake = torch.nn.functional.conv2d(h, last_layer)
    return adaptive_gan_weight(x_fake, g_llike, g_gen, last_layer)


def _adaptive_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    weight, h, g_llike, g_gen = _adaptive_batches()
    share = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    # each rank's losses are means over its own share: their gradients at x_fake are the share's rows
    torch.save(_adaptive_weight_of(weight, h[share], g_llike[share], g_gen[share]), f"{out}/lambda{rank}.pt")
    dist.destroy_process_group()


def test_the_adaptive_gamma_of_two_ranks_is_the_whole_batchs(tmp_path):
    """Each rank computes lambda from its half of the batch; both must end with the lambda one process computes
    on the whole batch (whose mean losses' gradients are the rows / 2), not with a lambda of their own half."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_adaptive_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    per_rank = [torch.load(tmp_path / f"lambda{r}.pt") for r in range(WORLD)]
    weight, h, g_llike, g_gen = _adaptive_batches()
    whole = _adaptive_weight_of(weight, h, g_llike / WORLD, g_gen / WORLD)
    own_half = _adaptive_weight_of(weight, h[:PER_RANK], g_llike[:PER_RANK], g_gen[:PER_RANK])
    for value in per_rank:
        torch.testing.assert_close(value, whole, rtol=1e-12, atol=0)
    assert abs(float(own_half) - float(whole)) > 1e-3 * float(whole)  # the halves alone do differ


def _count_on_rank_0_worker(rank: int, port: int, out: str) -> None:
    """Rank 0 counts a step's FLOPs with the adaptive gamma on (as train/loop.py does before training) while rank 1
    goes straight to the next collective: if the count issued one, the two would pair up wrongly or hang."""
    import datetime

    from vaegan_dist.objectives import model_kind
    from vaegan_dist.train.flops import count_step_flops

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    cfg = build_config("smoke", ["model.width=0.125", "model.encoder_fc=16", f"model.latent_dim={LATENT}",
                                 "model.discriminator_fc=8", "objective.adaptive_gamma=true"])
    if rank == 0:
        model = build_model(cfg.model, 32)
        count_step_flops(model.networks(), model_kind("vaegan"), cfg.objective, LATENT, 32, 4)
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value)
    torch.save(value, f"{out}/sum{rank}.pt")
    dist.destroy_process_group()


def test_counting_flops_on_rank_0_alone_issues_no_collective(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_count_on_rank_0_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    assert [float(torch.load(tmp_path / f"sum{r}.pt")) for r in range(WORLD)] == [3.0, 3.0]


EVAL_IMAGES, EVAL_BATCH = 52, 8  # 7 batches: rank 0 scores 4 of them, rank 1 the other 3


def _eval_inputs():
    from vaegan_dist.evaluate import Evaluator
    from vaegan_dist.evaluate.classifier import AttributeClassifier

    torch.manual_seed(3)
    evaluator = Evaluator(AttributeClassifier(32, 3).eval(), ["Male", "Smiling", "Young"], 32, "f" * 64, "/d", {})
    images = torch.randint(0, 256, (EVAL_IMAGES, 3, 32, 32), generator=torch.Generator().manual_seed(5),
                           dtype=torch.uint8)
    model = _initial_model(_config("recipe"))
    model.decoder.apply(lambda m: m.reset_running_stats() if hasattr(m, "reset_running_stats") else None)
    return evaluator, images, model


def _shared_eval_worker(rank: int, port: int, out: str, torch_threads: int) -> None:
    from vaegan_dist.evaluate import CHEAP_METRICS, HeldOut, model_metrics
    from vaegan_dist.evaluate.shares import process_group_share
    from vaegan_dist.train.ema import generator_copy
    from vaegan_dist.train.evaluation import receive_rank0s

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(torch_threads)
    evaluator, images, model = _eval_inputs()
    if rank == 1:  # other weights than rank 0's: what it scores must be rank 0's, received
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    share = process_group_share()
    held_out = HeldOut.of(images, evaluator, batch=EVAL_BATCH, share=share)
    shown = receive_rank0s(model, None if rank == 0 else generator_copy(model))
    values = model_metrics(shown, evaluator, held_out, CHEAP_METRICS, seed=11, batch=EVAL_BATCH, share=share)
    torch.save({"values": values, "features": held_out.features}, f"{out}/eval{rank}.pt")
    dist.destroy_process_group()


def test_evaluation_shared_by_two_ranks_equals_one_process(tmp_path):
    """Each rank scores its share of the batches of rank 0's weights; rank 0's metrics are one process's at the same
    N and seed (to float tolerance), and the other rank gets none."""
    import socket

    from vaegan_dist.evaluate import CHEAP_METRICS, HeldOut, model_metrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_shared_eval_worker, args=(port, str(tmp_path), torch.get_num_threads()), nprocs=WORLD, join=True)
    evaluator, images, model = _eval_inputs()
    held_out = HeldOut.of(images, evaluator, batch=EVAL_BATCH)
    one = model_metrics(model, evaluator, held_out, CHEAP_METRICS, seed=11, batch=EVAL_BATCH)
    rank0, rank1 = (torch.load(tmp_path / f"eval{r}.pt") for r in range(WORLD))
    assert rank1["values"] is None
    torch.testing.assert_close(rank0["features"], held_out.features)  # every rank holds all the held-out features
    torch.testing.assert_close(rank1["features"], held_out.features)
    assert set(rank0["values"]) == set(one) and all(v is not None for v in one.values())
    for name, value in one.items():
        assert rank0["values"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    # rank 1's own weights score otherwise: had it scored its share with them, rank 0's numbers would differ
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    own = model_metrics(model, evaluator, held_out, CHEAP_METRICS, seed=11, batch=EVAL_BATCH)
    assert own["fd_recon"] != pytest.approx(one["fd_recon"], rel=1e-3)
