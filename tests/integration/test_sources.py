"""The reader's sources (http, brace patterns, pipe:, raw images), corrupt samples, augmentation, and
DataLoader workers inside a Ray actor."""

import functools
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest
import torch

from vaegan_dist.data.augment import Jitter
from vaegan_dist.data.manifest import DataError, read_manifest
from vaegan_dist.data.sources import open_source
from vaegan_dist.data.stream import first_images, training_stream
from vaegan_dist.data.synthetic import prepare_synthetic


@pytest.fixture(scope="module")
def http_server(faces32):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(faces32))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_streaming_over_http_from_a_local_server(http_server, faces32):
    src = open_source(http_server, "train")
    assert src.urls[0] == f"{http_server}/train-000000.tar" and src.image_size == 32
    images, attrs = next(training_stream(f"{http_server}/manifest.json", "train", 32, 8, shuffle_buffer=8))
    assert images.shape == (8, 3, 32, 32) and attrs.shape == (8, 20)
    remote, _ = first_images(http_server, "valid", 4)
    local, _ = first_images(faces32, "valid", 4)
    assert torch.equal(remote, local)


def test_brace_pattern_without_a_manifest(faces32):
    src = open_source(str(faces32 / "train-{000000..000004}.tar"))
    assert len(src.urls) == 5 and src.image_encoding == "png" and src.image_size == 32
    assert src.attributes == read_manifest(faces32).attributes
    images, _ = next(training_stream(str(faces32 / "train-{000000..000004}.tar"), "train", 32, 4, shuffle_buffer=0))
    assert images.shape == (4, 3, 32, 32)


def test_pipe_command(faces32):
    images, _ = first_images(f"pipe:cat {faces32}/test-000000.tar", "train", 3)
    assert torch.equal(images, first_images(faces32, "test", 3)[0])


def test_raw_encoding_reads_back_the_same_pixels(tmp_path, faces32):
    prepare_synthetic(tmp_path, num=20, size=32, seed=3, workers=1, shard_samples=10, encoding="raw", progress=False)
    raw, _ = first_images(tmp_path, "train", 5)
    png, _ = first_images(faces32, "train", 5)  # same seed and indices, PNG-encoded
    assert torch.equal(raw, png)


def test_corrupt_sample_inside_a_shard_is_skipped_and_counted(faces32, tmp_path, caplog):
    bad = tmp_path / "bad.tar"
    with tarfile.open(faces32 / "valid-000000.tar") as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers()[:6]:
            data = src.extractfile(member).read()
            if member.name == "00000193.png":
                data = data[:20]  # a broken image
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    images, _ = first_images(str(bad), "train", 3)
    assert len(images) == 2  # three samples in the shard, one skipped
    assert "skipped sample 00000193" in caplog.text and "(1 so far)" in caplog.text


def test_missing_sources_are_clear_errors(tmp_path, faces32):
    with pytest.raises(DataError, match=r"manifest.json: split 'holdout' is not in the manifest"):
        open_source(faces32, "holdout")
    with pytest.raises(DataError, match="no such shard"):
        open_source(str(tmp_path / "x-{000..001}.tar"))
    with pytest.raises(DataError, match="cannot be read"):
        open_source("http://127.0.0.1:9/manifest.json")


def test_jitter_is_small_seeded_and_keeps_shape():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    a = Jitter()(image, np.random.default_rng(1))
    b = Jitter()(image, np.random.default_rng(1))
    assert a.dtype == torch.uint8 and a.shape == image.shape and torch.equal(a, b)
    assert not torch.equal(a, image)
    smooth = torch.linspace(0, 255, 32).round().to(torch.uint8).expand(3, 32, 32).contiguous()
    moved = Jitter()(smooth, np.random.default_rng(2)).float()
    assert (moved - smooth.float()).abs().mean() < 30  # a nudge, not a different image
    identity = Jitter(0, 0, 0, 0, 0, 0, 0)(image, np.random.default_rng(0))
    assert (identity.float() - image.float()).abs().max() <= 1


def test_augmented_stream(faces32):
    images, _ = next(training_stream(faces32, "train", 32, 4, shuffle_buffer=0, augment=True, hflip=False))
    plain, _ = next(training_stream(faces32, "train", 32, 4, shuffle_buffer=0, augment=False, hflip=False))
    assert images.shape == plain.shape and not torch.equal(images, plain)


@pytest.mark.ray
def test_dataloader_workers_start_inside_a_ray_actor(faces32):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        @ray.remote(num_cpus=1)
        class Reader:
            def first_batch(self, source):
                stream = training_stream(source, "train", 32, 8, shuffle_buffer=8, loader_workers=2)
                return tuple(next(stream)[0].shape)

        assert ray.get(Reader.remote().first_batch.remote(str(faces32)), timeout=120) == (8, 3, 32, 32)
    finally:
        ray.shutdown()


def test_colour_matrix_matches_hsv_adjustments_for_small_changes():
    import torchvision.transforms.v2.functional as TF

    from vaegan_dist.data.augment import colour_matrix

    x = torch.rand(3, 16, 16) * 0.8 + 0.1
    grey = torch.full((3, 4, 4), 0.5)
    assert torch.allclose(torch.einsum("ij,jhw->ihw", colour_matrix(0.3, 1.0, 1.0), grey), grey, atol=1e-6)
    for hue, sat, val in ((0.01, 1.0, 1.0), (0.0, 1.08, 1.0), (0.0, 1.0, 0.93)):
        ours = torch.einsum("ij,jhw->ihw", colour_matrix(2 * torch.pi * hue, sat, val), x)
        ref = TF.adjust_brightness(TF.adjust_saturation(TF.adjust_hue(x, hue), sat), val)
        assert (ours - ref).abs().mean() < 0.02, (hue, sat, val)


def forbid_subprocesses(monkeypatch):
    import importlib
    import subprocess

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(importlib.import_module("webdataset.gopen"), "Popen", no_subprocess)  # curl, gsutil


def test_s3_and_gs_sources_are_read_through_pyarrow_without_a_subprocess(faces32, tmp_path, monkeypatch):
    """pyarrow's S3/GCS clients need a bucket; a local subtree stands in for it, behind the same calls."""
    import shutil

    from pyarrow import fs

    from vaegan_dist.data import remote

    shutil.copytree(faces32, tmp_path / "bucket" / "celeba64")
    opened = []

    def local_bucket(root):
        opened.append(root)
        return fs.SubTreeFileSystem(str(tmp_path), fs.LocalFileSystem()), root.split("://", 1)[1]

    monkeypatch.setattr(remote, "_filesystem", local_bucket)
    forbid_subprocesses(monkeypatch)
    local, _ = first_images(faces32, "valid", 4)
    for scheme in ("s3", "gs"):
        src = open_source(f"{scheme}://bucket/celeba64/", "valid")
        assert src.urls == [f"{scheme}://bucket/celeba64/valid-000000.tar"]
        assert torch.equal(first_images(src, "valid", 4)[0], local)
        images, _ = next(training_stream(f"{scheme}://bucket/celeba64", "train", 32, 4, shuffle_buffer=0))
        assert images.shape == (4, 3, 32, 32)
    assert set(opened) == {"s3://bucket", "gs://bucket"}


def test_http_is_read_with_urllib_not_curl(http_server, faces32, monkeypatch):
    forbid_subprocesses(monkeypatch)
    remote, _ = first_images(http_server, "valid", 4)
    assert torch.equal(remote, first_images(faces32, "valid", 4)[0])
