"""Batches mix the data set: converters shuffle entries before sharding, readers interleave shards."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from vaegan_dist.data.folder import prepare_folder
from vaegan_dist.data.manifest import Manifest, write_manifest
from vaegan_dist.data.shards import ShardSeriesWriter
from vaegan_dist.data.stream import training_stream

CLASSES = ("a", "b", "c", "d")  # class k has attributes bit1 = k // 2, bit0 = k % 2


def solid_png(k: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), (60 * k, 255 - 60 * k, 128), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def batch_mixes(stream, batches: int) -> list[np.ndarray]:
    """Each batch's share of every class."""
    mixes = []
    for _ in range(batches):
        attrs = next(stream)[1].numpy().astype(int)
        mixes.append(np.bincount(attrs[:, 0] * 2 + attrs[:, 1], minlength=4) / len(attrs))
    return mixes


def class_mix_of_split(out, manifest, split: str) -> np.ndarray:
    counts = np.zeros(4)
    for shard in manifest.shards(split):
        with tarfile.open(out / shard.name) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    a = json.loads(tar.extractfile(member).read())["attributes"]
                    counts[a["bit1"] * 2 + a["bit0"]] += 1
    return counts / counts.sum()


def test_a_folder_sorted_by_class_gives_mixed_batches(tmp_path):
    root, rows = tmp_path / "photos", ["file,bit1,bit0"]
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(100):
            (root / name / f"{i:03d}.png").write_bytes(solid_png(k))
            rows.append(f"{name}/{i:03d}.png,{k // 2},{k % 2}")
    (tmp_path / "classes.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    manifest, _ = prepare_folder(root, out, size=8, attributes=tmp_path / "classes.csv", shard_samples=25,
                                 workers=1, encoding="png", progress=False)
    overall = class_mix_of_split(out, manifest, "train")
    # a shuffle buffer about one shard long, as it is for large shards
    mixes = batch_mixes(training_stream(out, "train", 8, 16, shuffle_buffer=25, seed=0, hflip=False), 8)
    distance = np.mean([0.5 * np.abs(mix - overall).sum() for mix in mixes])  # total variation, 0..1
    classes_per_batch = np.mean([(mix > 0).sum() for mix in mixes])
    assert distance < 0.3 and classes_per_batch >= 3.0, (distance, classes_per_batch)


@pytest.mark.parametrize("open_shards", [4, 1])
def test_the_reader_interleaves_shards(tmp_path, open_shards):
    """Shards of one class each and no shuffle buffer: only interleaving mixes a batch."""
    with ShardSeriesWriter(tmp_path, "train", max_samples=50) as writer:
        for n, k in enumerate((0, 1, 2, 3, 0, 1, 2, 3)):
            for i in range(50):
                writer.write({"__key__": f"{n}-{i:03d}", "png": solid_png(k),
                              "json": json.dumps({"attributes": {"bit1": k // 2, "bit0": k % 2}})})
    write_manifest(Manifest("folder", 8, "png", ["bit1", "bit0"], {"train": writer.shards}), tmp_path)
    stream = training_stream(tmp_path, "train", 8, 16, shuffle_buffer=0, seed=0, hflip=False, open_shards=open_shards)
    classes_per_batch = np.mean([(mix > 0).sum() for mix in batch_mixes(stream, 8)])
    if open_shards == 4:
        assert classes_per_batch >= 2.0, classes_per_batch
    else:  # one shard at a time, as before: nearly one class per batch
        assert classes_per_batch < 1.5, classes_per_batch
