import hashlib
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from vaegan_dist.data.manifest import DataError, read_manifest
from vaegan_dist.data.shards import ShardSeriesWriter
from vaegan_dist.data.stream import first_images, shards_for, training_stream
from vaegan_dist.data.synthetic import prepare_synthetic
from vaegan_dist.data.synthetic_faces import ATTRIBUTES, face


def test_manifest_describes_the_shards(faces32):
    m = read_manifest(faces32)
    assert (m.dataset, m.image_size, m.image_encoding) == ("synthetic", 32, "png")
    assert {k: m.samples(k) for k in m.splits} == {"train": 192, "valid": 24, "test": 24}
    assert [s.name for s in m.shards("train")] == [f"train-{i:06d}.tar" for i in range(5)]
    for split in m.splits.values():
        for shard in split:
            data = (faces32 / shard.name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == shard.sha256 and len(data) == shard.bytes
    assert not list(faces32.glob("*.tmp"))


def test_shards_open_with_tarfile_and_hold_exactly_the_rendered_faces(faces32):
    with tarfile.open(faces32 / "valid-000000.tar") as tar:
        names = tar.getnames()
        assert sorted(names[:2]) == ["00000192.json", "00000192.png"]
        png = tar.extractfile("00000192.png").read()
        meta = json.loads(tar.extractfile("00000192.json").read())
    image, attributes = face(3, 192, 32)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), image)  # PNG is lossless
    assert meta == {"attributes": attributes, "source": "synthetic:3:192"}
    assert list(attributes) == list(ATTRIBUTES)


def test_plain_webdataset_reads_the_shards(faces32):
    ds = wds.WebDataset(str(faces32 / "test-000000.tar"), shardshuffle=False).decode("rgb8").to_tuple("png", "json")
    images = [img for img, _ in ds]
    assert len(images) == 24 and images[0].shape == (32, 32, 3)


def test_rendering_is_deterministic_per_index():
    a, attrs_a = face(0, 5, 32)
    b, attrs_b = face(0, 5, 32)
    assert np.array_equal(a, b) and attrs_a == attrs_b
    assert not np.array_equal(face(0, 6, 32)[0], a)


def test_interrupted_writer_leaves_no_partial_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardSeriesWriter(tmp_path, "train", max_samples=2) as w:
            for i in range(3):
                w.write({"__key__": f"{i:03d}", "txt": "x"})
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar"]


def test_prepare_refuses_to_overwrite(faces32):
    with pytest.raises(DataError, match="a data set is already there"):
        prepare_synthetic(faces32, num=20, size=32, progress=False)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}/manifest.json: no manifest here"):
        read_manifest(tmp_path)


def test_shard_assignment_is_disjoint_by_rank_then_worker():
    urls = [f"s{i}" for i in range(8)]
    parts = [shards_for(urls, r, 2, w, 2) for r in range(2) for w in range(2)]
    assert sorted(sum(parts, [])) == sorted(urls) and all(len(p) == 2 for p in parts)
    assert shards_for(urls[:3], 1, 2, 0, 2) == ["s1"]  # too few for every worker: split by rank only
    assert shards_for(urls[:1], 1, 2, 0, 1) == ["s0"]  # fewer shards than ranks: all shards


def test_stream_gives_full_batches_forever_on_every_rank(faces32):
    streams = [training_stream(faces32, "train", 32, 8, rank=r, world_size=2, seed=1, shuffle_buffer=16)
               for r in range(2)]
    for _ in range(40):  # 40 x 8 > the 96 images of either rank: it resamples instead of ending
        for s in streams:
            images, attrs = next(s)
            assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8
            assert attrs.shape == (8, len(ATTRIBUTES))


def test_stream_is_seeded(faces32):
    def first(seed, stream_id):
        return next(training_stream(faces32, "train", 32, 8, seed=seed, stream_id=stream_id, shuffle_buffer=16))[0]

    assert torch.equal(first(1, 0), first(1, 0))
    assert not torch.equal(first(1, 0), first(1, 5))


def test_stream_with_loader_workers(faces32):
    stream = training_stream(faces32, "train", 32, 8, shuffle_buffer=8, loader_workers=2)
    images, _ = next(stream)
    assert images.shape == (8, 3, 32, 32)


def test_stream_rejects_the_wrong_image_size(faces32):
    with pytest.raises(DataError, match="images are 32px but data.image_size=64"):
        training_stream(faces32, "train", 64, 8)


def test_first_images_are_in_shard_order_and_match_the_attributes(faces32):
    images, attrs = first_images(faces32, "valid", 3)
    for k in range(3):
        image, attributes = face(3, 192 + k, 32)
        assert torch.equal(images[k], torch.from_numpy(image.copy()).permute(2, 0, 1))
        assert attrs[k].tolist() == [attributes[name] for name in ATTRIBUTES]


def test_resolving_a_bare_shard_list_does_not_import_the_stream(faces32):
    """Sources open shards without the stream (and its DataLoader machinery): checked in a fresh interpreter
    (moved here from tests/unit, which starts no processes)."""
    code = ("import sys; from vaegan_dist.data.sources import open_source; "
            f"src = open_source({str(faces32 / 'train-000000.tar')!r}); "
            "assert src.image_size == 32, src; "
            "assert 'vaegan_dist.data.stream' not in sys.modules, 'sources imported the stream'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1000:]
