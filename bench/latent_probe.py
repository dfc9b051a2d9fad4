"""Does a trained encoder's code carry an attribute? A logistic probe on the posterior means of training images,
scored on the test images, beside the majority-class accuracy and the evaluator's read of the reconstructions.

    python bench/latent_probe.py --runs ~/vaegan-dist/runs/faces64-... --attributes Eyeglasses Smiling Blond_Hair

An edit (``vaegan-dist edit``) moves a code along the mean difference of the codes with and without an
attribute; if a linear probe cannot tell the two groups apart from the codes, the reconstruction cannot keep the
attribute and the vector can only push the decoder towards drawing it, whatever the face. This separates the
encoder (is it in the code?) from the decoder (is it drawn?). The probe is L-BFGS on standardised codes with a
small L2 penalty: enough for a linear read-out; a stronger probe would answer a different question.

``--pixels SIDE`` adds the same probe on the images themselves, average-pooled to SIDE x SIDE, as the reference
a code is held to: a face's pose moves its mouth by several pixels, so even the pixels do not give a linear
read-out of a smile (AUC 0.73 at 32 x 32 on the built-in faces at 64 px, where the evaluator, a CNN, reads 99%).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.stream import first_images
from vaegan_dist.evaluate.editing import reads_of
from vaegan_dist.evaluate.run import open_trained

CPU = torch.device("cpu")


@torch.no_grad()
def codes(trained, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior means, attribute labels and uint8 images of the first ``n`` images of ``split``."""
    x, y = first_images(trained.sources[split], split, n)
    mu = torch.cat([trained.model.encode(to_unit_range(chunk, CPU)).float() for chunk in x.split(128)])
    return mu, y.float(), x


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The probability that a random positive scores above a random negative (ties count half): 0.5 is no
    information, whatever the classes' balance (accuracy sits at the majority class for a weak signal)."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean()).item()


def probe(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
          test_labels: torch.Tensor, l2: float = 1e-3) -> tuple[float, float]:
    """Test accuracy and AUC of a logistic read-out of the codes."""
    mean, std = train_codes.mean(0), train_codes.std(0) + 1e-6
    a, b = (train_codes - mean) / std, (test_codes - mean) / std
    w = torch.zeros(a.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=300)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a @ w + bias, train_labels) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        scores = b @ w + bias
        return ((scores > 0).float() == test_labels).float().mean().item(), auc(scores, test_labels)


def pooled(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 [N, 3, S, S] images as [N, 3 * side * side] averages of (S / side)^2 pixels in [0, 1]. The stronger
    L2 penalty the caller uses with these (1e-2) is for their 768-3072 inputs, against a code's 32-128."""
    return F.avg_pool2d(images.float() / 255.0, images.shape[-1] // side).flatten(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run directories or checkpoints")
    parser.add_argument("--attributes", nargs="+", default=["Eyeglasses", "Smiling", "Blond_Hair", "Male"])
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--test-images", type=int, default=800)
    parser.add_argument("--pixels", type=int, default=0, metavar="SIDE",
                        help="also probe the images, average-pooled to SIDE x SIDE (a divisor of the image side)")
    args = parser.parse_args()
    if args.pixels < 0:
        parser.error(f"--pixels {args.pixels}: 0 (off) or a positive divisor of the image side")
    torch.manual_seed(0)
    print("| run | attribute | probe on the codes: accuracy | AUC | majority class | evaluator right: originals | "
          "reconstructions |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        trained = open_trained(run, splits=("train", "test"), log=lambda *_: None)
        names = trained.sources["train"].attributes
        unknown = [a for a in args.attributes if a not in names]
        if unknown:
            raise SystemExit(f"{run}: the data has no attribute {unknown[0]!r}; it has: {', '.join(names)}")
        train_mu, train_y, train_x = codes(trained, "train", args.train_images)
        test_mu, test_y, test_x = codes(trained, "test", args.test_images)
        if args.pixels and test_x.shape[-1] % args.pixels:
            raise SystemExit(f"--pixels {args.pixels}: not a divisor of the image side {test_x.shape[-1]}")
        with torch.no_grad():
            recon = torch.cat([trained.model.reconstruct(to_unit_range(c, CPU)).float() for c in test_x.split(128)])
        for attribute in args.attributes:
            i = names.index(attribute)
            accuracy, area = probe(train_mu, train_y[:, i], test_mu, test_y[:, i])
            share = test_y[:, i].mean().item()
            reads = reads_of(trained.evaluator, attribute, test_x, recon)
            agree = "n/a" if reads is None else (
                f"{(reads[0] == test_y[:, i].bool()).float().mean().item():.1%} | "
                f"{(reads[1] == test_y[:, i].bool()).float().mean().item():.1%}")
            print(f"| {trained.name} (step {trained.step}) | {attribute} | {accuracy:.1%} | {area:.2f} | "
                  f"{max(share, 1 - share):.1%} | {agree} |", flush=True)
            if args.pixels:
                accuracy, area = probe(pooled(train_x, args.pixels), train_y[:, i], pooled(test_x, args.pixels),
                                       test_y[:, i], l2=1e-2)
                print(f"| the images at {args.pixels} x {args.pixels} | {attribute} | {accuracy:.1%} | {area:.2f} | "
                      f"{max(share, 1 - share):.1%} | | |", flush=True)


if __name__ == "__main__":
    main()
