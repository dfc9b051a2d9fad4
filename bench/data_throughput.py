"""Images/s per CPU core of the shard reader vs loading one file per image, side by side.

    python bench/data_throughput.py                       # 4,000 images at 64 px
    python bench/data_throughput.py --num 2000 --size 64 --batches 40

Both paths read the same images (JPEG, quality 95, 64 px) and produce the same uint8 batches with the
same random flip (and, in the "augment" rows, the same jitter), in one process (DataLoader num_workers=0,
so the figure is per core):
  shards: vaegan_dist.data.stream.training_stream over webdataset tar shards;
  files:  torchvision.datasets.ImageFolder over one .jpg per image, PIL decode, DataLoader batching.
"Cold" rows first evict the files from the page cache (posix_fadvise DONTNEED), as on a fresh node or a
network file system; "warm" rows read from memory.

Also measured: bytes per image and decode time per image of each stored encoding (png, jpg, raw), which
is how ``prepare celeba`` chose its default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms.v2 import functional as TF

from vaegan_dist.data.augment import Jitter
from vaegan_dist.data.codec import decode_image_bytes, encode_image
from vaegan_dist.data.stream import training_stream
from vaegan_dist.data.synthetic import prepare_synthetic
from vaegan_dist.data.synthetic_faces import face


def evict(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class FileTransform:
    """What an ImageFolder pipeline does per image: PIL -> uint8 tensor, flip, optional jitter."""

    def __init__(self, augment: bool):
        self.rng, self.jitter = np.random.default_rng(0), Jitter() if augment else None

    def __call__(self, img: Image.Image) -> torch.Tensor:
        x = TF.pil_to_tensor(img.convert("RGB"))
        if self.rng.random() < 0.5:
            x = x.flip(-1)
        return self.jitter(x, self.rng) if self.jitter else x


def time_batches(iterator, batches: int) -> float:
    next(iterator)  # start-up (buffer fill, first shard) is not throughput
    t0 = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - t0


def encodings(size: int, n: int = 300) -> None:
    print(f"\nstored encodings at {size}px ({n} images; 'noisy' adds Gaussian noise sigma 6 as a stand-in for "
          "photographic texture)")
    for label, noise in (("faces", 0.0), ("noisy", 6.0)):
        rng = np.random.default_rng(0)
        images = []
        for i in range(n):
            img = face(0, i, size)[0].astype(np.float32)
            images.append(np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8))
        for enc in ("png", "jpg", "raw"):
            blobs = [encode_image(im, enc) for im in images]
            t0 = time.perf_counter()
            for _ in range(3):
                for b in blobs:
                    decode_image_bytes(b, enc, size)
            us = (time.perf_counter() - t0) / (3 * n) * 1e6
            print(f"  {label:6s} {enc:4s} {statistics.mean(map(len, blobs)):8.0f} bytes/img {us:7.1f} us/img decode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=4000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        prepare_synthetic(shards, num=args.num, size=args.size, encoding="jpg", progress=False)
        files = Path(tmp) / "files" / "faces"
        files.mkdir(parents=True)
        from vaegan_dist.data.stream import first_images

        n_train = int(args.num * 0.8)
        images, _ = first_images(shards, "train", n_train)
        for i, img in enumerate(images):
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(files / f"{i:06d}.jpg", quality=95)
        shard_paths, file_paths = sorted(shards.glob("train-*.tar")), sorted(files.glob("*.jpg"))

        print(f"{args.num} images at {args.size}px, batch {args.batch}, {args.batches} batches, one process")
        for augment in (False, True):
            for cache in ("warm", "cold"):
                rates = {}
                for path in ("shards", "files"):
                    if cache == "cold":
                        evict(shard_paths + file_paths)
                    if path == "shards":
                        it = training_stream(shards, "train", args.size, args.batch, shuffle_buffer=1000,
                                             augment=augment)
                    else:
                        ds = ImageFolder(str(files.parent), transform=FileTransform(augment))
                        it = iter(DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=0, drop_last=True,
                                             collate_fn=lambda b: torch.stack([x for x, _ in b])))
                    rates[path] = args.batch * args.batches / time_batches(it, args.batches)
                print(f"  augment={str(augment):5s} {cache}: shards {rates['shards']:8.0f} img/s   files "
                      f"{rates['files']:8.0f} img/s   ratio {rates['shards'] / rates['files']:5.2f}x", flush=True)
    encodings(args.size)


if __name__ == "__main__":
    main()
